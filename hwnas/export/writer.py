"""The artifact writer of an export: from a built standalone network to
an export directory (`flax/`, `saved_model/`, TFLite float and int8,
`netspec.json`, `arch.json`) with its checks (TFLite vs Flax, accuracy,
the int8 gate, measured vs predicted latency, Edge TPU operators) and
`report.json` / `report.md`, written atomically (`options.staging`).

The entry points (`hwnas.export.sources`) decide where the network and its
weights come from and validate the inputs; `write` takes them as they are.
"""

from __future__ import annotations

import datetime
import os
import pathlib
from typing import Any

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, errors, netspec, tflite
from hwnas.export import checks, flax_io
from hwnas.export import options as options_lib
from hwnas.export import report as report_lib
from hwnas.export.options import ExportOptions
from hwnas.netspec import NetSpec


def with_lax_depthwise(model):
  """A copy of `hwnas.models.Network` `model` with the 'lax' depthwise
  conv and the same weights (the caller's model is left as it is)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network  # pylint: disable=g-import-not-at-top
  from hwnas.models import standalone  # pylint: disable=g-import-not-at-top
  copy = nnx.eval_shape(lambda: Network(model.spec, rngs=nnx.Rngs(0),
                                        depthwise="lax"))
  nnx.update(copy, nnx.state(model))
  # Shift layers export as ordinary convs with power-of-two weights.
  standalone.bake_shift_weights(copy)
  return copy


def _load_table(table):
  if table is None:
    return None
  from hwnas import latency  # pylint: disable=g-import-not-at-top
  t = table if isinstance(table, latency.LatencyTable) else (
      latency.load_table(table))
  if t.units != "ms":
    raise errors.HwnasError(
        f"--table {t.path or table}: an energy table ({t.units}); export "
        "compares the measured latency with a latency table, give one "
        "(`hwnas table show` lists them) or none")
  return t


def _predict_latency(table, spec: NetSpec) -> dict[str, Any] | None:
  if table is None:
    return None
  from hwnas.latency import table as tbl  # pylint: disable=g-import-not-at-top
  return {"ms": float(table.predict(spec)), "table": table.path or table.name,
          "provenance": table.describe() + (
              f"; {tbl.SHIFT_NOTE}" if table.shift_as_mult(spec.layers)
              else ""),
          "header": {k: v for k, v in table.header.items()
                     if isinstance(v, (str, int, float, bool))}}


def _network_info(spec: NetSpec) -> dict[str, Any]:
  c = counting.count(spec)
  return {"name": spec.name, "resolution": spec.resolution,
          "in_channels": spec.in_channels, "num_classes": spec.num_classes,
          "num_layers": len(spec.layers), "macs": c.macs, "params": c.params,
          "trainable_params": c.trainable_params, "int8_bytes": c.int8_bytes,
          "layers": [l.key() for l in spec.layers]}


def _pure_fn(model):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  graphdef, state = nnx.split(model)
  return lambda x: nnx.merge(graphdef, state)(x, train=False)


def _calibration_samples(ds, spec: NetSpec, o: ExportOptions
                         ) -> tuple[np.ndarray, str]:
  if ds is not None:
    x, _ = checks.take_samples(ds, "train", o.calibration_steps,
                               resolution=spec.resolution, seed=o.seed,
                               shuffle=True, batch_size=o.batch_size)
    # Time-series windows [n, T, C] enter as [n, 1, T, C] (spec.input_shape).
    return (x.reshape((len(x), *spec.input_shape)),
            f"{len(x)} samples of {ds.info.name} train")
  rng = np.random.default_rng(o.seed)
  shape = (o.calibration_steps, *spec.input_shape)
  return (rng.standard_normal(shape).astype(np.float32),
          f"{o.calibration_steps} standard-normal random inputs (no dataset)")


def _edgetpu_section(int8_bytes: bytes, tmp: pathlib.Path,
                     out: pathlib.Path, o: ExportOptions,
                     table=None) -> dict[str, Any]:
  from hwnas import edgetpu  # pylint: disable=g-import-not-at-top
  from hwnas.latency import edgetpu_table  # pylint: disable=g-import-not-at-top
  # The operator table of the compiler version the latency table follows
  # (the one its cost model and the search used), else the default.
  compiler = (edgetpu_table.compiler_of(table) if table is not None
              and edgetpu_table.is_edgetpu_table(table) else None)
  ops = edgetpu.check_ops(tflite.op_list(int8_bytes), compiler)
  float_ops = tflite.float_ops(int8_bytes)
  command = " ".join(edgetpu.compiler_command(out / options_lib.INT8_TFLITE,
                                              out / options_lib.EDGETPU_DIR))
  section: dict[str, Any] = {"ops": ops.to_dict(), "float_ops": float_ops,
                             "operator_table": "edgetpu_compiler "
                             f"{edgetpu.ops.compiler_key(compiler)}",
                             "compile_command": command, "compiler": None}
  if o.compile_edgetpu and edgetpu.find_compiler():
    try:
      result = edgetpu.compile_model(tmp / options_lib.INT8_TFLITE, tmp / options_lib.EDGETPU_DIR)
      log = pathlib.Path(result.log_path).relative_to(tmp)
      section["compiler"] = {"result": result.to_dict(), "log": str(log)}
      section["compiler"]["result"]["log_path"] = str(out / log)
    except errors.HwnasError as e:
      section["compiler"] = {"error": str(e)}
  compiled = (section["compiler"] or {}).get("result")
  mapped = compiled["all_mapped"] if compiled else ops.all_mapped
  if float_ops:
    verdict = "not Edge TPU ready: float operators remain"
  elif mapped:
    verdict = ("all operators map to the Edge TPU (compiled)" if compiled
               else "all operators map to the Edge TPU (static check; "
               "compile to confirm)")
  else:
    verdict = f"CPU fallback: {ops.summary()}"
  section["verdict"] = verdict
  section["edgetpu_ready"] = bool(mapped and not float_ops)
  return section


def _files(tmp: pathlib.Path) -> list[str]:
  out = []
  for p in sorted(tmp.iterdir()):
    if p.is_dir():
      n = sum(1 for f in p.rglob("*") if f.is_file())
      size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
      out.append(f"{p.name}/ ({n} files, {size:,} bytes)")
    else:
      out.append(f"{p.name} ({p.stat().st_size:,} bytes)")
  return out + ["report.json", "report.md"]


def write(model, out: options_lib.OutDir, *, dataset, arch=None,
          source: dict[str, Any] | None = None,
          options: ExportOptions = ExportOptions(), table=None,
          bn_recalibration: dict[str, Any] | None = None,
          random_weights: bool = False) -> dict[str, Any]:
  """Writes every artifact of a built `hwnas.models.Network`, checks them
  and writes the report (the entry points in `hwnas.export.sources` have
  validated `out`, the architecture and the dataset).

  Args:
    model: the standalone network (not modified: the export runs a copy
      with the 'lax' depthwise conv, which TFLite converts to one
      DEPTHWISE_CONV_2D; the shift-add version becomes dozens of slices).
    out: the checked export directory.
    dataset: the loaded `hwnas.data.Dataset`, or None (random calibration
      inputs, no accuracy).
    arch: the `ArchChoice` it was decoded from, if any (written as
      arch.json and shown in the report).
    source: `{"kind": ..., "description": ...}` for the report.
    options: see `ExportOptions`.
    table: latency table (path, shipped name or `LatencyTable`) whose
      prediction the report compares with the measured latency.
    bn_recalibration: how BatchNorm was recalibrated, for the report.
    random_weights: the weights are a random initialisation: the int8 gate
      is recorded but not enforced.

  Returns:
    The report dict (also written to `out/report.json` and `report.md`).
  """
  o, ds, out_p = options, dataset, out.path
  spec: NetSpec = model.spec
  table = _load_table(table)
  if table is not None:
    from hwnas.latency import host_calibration  # pylint: disable=g-import-not-at-top
    host_calibration.warn_if_other_host(table)
  predicted = _predict_latency(table, spec)
  if ds is not None and ds.info.num_classes != spec.num_classes:
    raise errors.HwnasError(
        f"{spec.name}: {spec.num_classes} outputs but dataset "
        f"{ds.info.name} has {ds.info.num_classes} classes; fix: pass the "
        "dataset the network was trained on")
  model = with_lax_depthwise(model)
  fn = _pure_fn(model)
  shape = (1, *spec.input_shape)   # (1, 1, T, C) for a time series
  r = _report_skeleton(spec, shape, arch=arch, source=source, ds=ds,
                       options=o, predicted=predicted,
                       bn_recalibration=bn_recalibration)
  with options_lib.staging(out) as tmp:
    float_bytes, int8_bytes = _write_models(tmp, r, model, fn, shape, arch,
                                            ds, o)
    _run_checks(r, model, float_bytes, int8_bytes, ds, spec, o,
                enforce_int8=not random_weights)
    r["latency"]["comparison"] = _compare_latency(r["latency"])
    for name, b in (("tflite float32", float_bytes),
                    ("tflite int8", int8_bytes)):
      if b is not None:
        r["operators"][name] = {"counts": tflite.op_counts(b),
                                "total": len(tflite.op_list(b)),
                                "sequence": tflite.op_list(b)}
    if int8_bytes is not None:
      r["edgetpu"] = _edgetpu_section(int8_bytes, tmp, out_p.absolute(), o,
                                      table)
    r["files"] = _files(tmp)
    r["out"] = str(out_p)
    r["hwnas_version"] = _version()
    r["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    report_lib.write(tmp, r)
  return r


def _compare_latency(lat: dict[str, Any]) -> dict[str, Any] | None:
  """Measured / predicted for the model whose precision the table has."""
  pred = lat.get("predicted")
  if not pred:
    return None
  precision = str(pred["header"].get("precision", ""))
  name = "tflite int8" if "int8" in precision else "tflite float32"
  measured = lat["measured"].get(name)
  if measured is None:
    return {"note": f"no {name} model exported to compare with the "
                    f"{precision} table"}
  same_host = str(pred["header"].get("backend", "")).startswith("litert")
  return {"model": name, "predicted_ms": pred["ms"],
          "measured_ms": measured["median_ms"],
          "ratio": measured["median_ms"] / pred["ms"] if pred["ms"] else None,
          "note": ("the table was measured with LiteRT, like this "
                   "measurement" if same_host else
                   "the table describes another device/runtime; the ratio "
                   "only shows how this CPU compares")}


def _version() -> str:
  import hwnas  # pylint: disable=g-import-not-at-top
  return hwnas.__version__


def _run_checks(r: dict[str, Any], model, float_bytes, int8_bytes, ds,
                spec: NetSpec, o: ExportOptions, *, enforce_int8: bool
                ) -> None:
  """Fills r['checks'] and r['latency']['measured'] (and the int8
  model's input/output quantisation in r['input'])."""
  if ds is not None:
    images, labels = checks.take_samples(
        ds, o.eval_split, o.eval_samples, resolution=spec.resolution,
        seed=o.seed, shuffle=False, batch_size=o.batch_size)
    images = images.reshape((len(images), *spec.input_shape))
  else:
    rng = np.random.default_rng([o.seed, 1])
    images = rng.standard_normal(
        (min(o.eval_samples, 16), *spec.input_shape)).astype(np.float32)
    labels = None
  flax_logits = checks.predict(model, images, batch_size=o.batch_size)
  shift = _shift_check(model, int8_bytes)
  if shift:
    r["checks"]["shift_weights"] = shift
  runs: dict[str, np.ndarray] = {}
  quant = None
  runtime = None
  for name, b in (("float32", float_bytes), ("int8", int8_bytes)):
    if b is None:
      continue
    runner = tflite.Runner(b, num_threads=1)
    runs[name] = runner.run(images)
    if name == "int8":
      quant = (runner.input_quantization, runner.output_quantization)
    stats = runner.time(o.latency_repeats, o.latency_warmup,
                        rng=np.random.default_rng(o.seed))
    r["latency"]["measured"][f"tflite {name}"] = stats.to_dict()
    runtime = _litert_runtime()
  r["latency"]["runtime"] = runtime
  if "float32" in runs:
    r["checks"]["float_tflite_vs_flax"] = checks.agreement(
        flax_logits, runs["float32"]).to_dict()
  if "int8" in runs:
    r["checks"]["int8_gate"] = checks.int8_gate(
        flax_logits, runs["int8"], input_quantization=quant[0],
        output_quantization=quant[1], min_agreement=o.int8_min_agreement,
        enforced=enforce_int8, allowed=o.allow_int8_drop).to_dict()
    r["input"]["int8_quantization"] = {
        "input": {"scale": quant[0][0], "zero_point": quant[0][1]},
        "output": {"scale": quant[1][0], "zero_point": quant[1][1]},
        "formula": "real = scale * (q - zero_point)"}
  if labels is not None:
    acc = {"dataset": ds.info.name, "split": o.eval_split,
           "num_samples": int(len(labels)),
           "flax": checks.accuracy(flax_logits, labels)}
    for name, y in runs.items():
      acc[f"tflite_{name.replace('32', '')}"] = checks.accuracy(y, labels)
    if "int8" in runs:
      ref = acc.get("tflite_float", acc["flax"])
      acc["int8_drop"] = ref - acc["tflite_int8"]
    r["checks"]["accuracy"] = acc


def _shift_kernels(model) -> list[tuple[str, np.ndarray]]:
  from hwnas.models import standalone  # pylint: disable=g-import-not-at-top
  return [(p, np.asarray(w)) for p, w in standalone.shift_kernels(model)]


def _shift_check(model, int8_bytes: bytes | None = None
                 ) -> dict[str, Any] | None:
  """Whether the exported shift layers' conv weights are exactly signed
  powers of two (None when the network has no shift layer) and, with an
  int8 model, which of their channels its int8 weights hold exactly."""
  from hwnas.models import deepshift  # pylint: disable=g-import-not-at-top
  kernels = _shift_kernels(model)
  if not kernels:
    return None
  bad = [p for p, w in kernels if not deepshift.is_power_of_two(w)]
  out = {"convs": len(kernels), "bits": deepshift.DEFAULT_BITS,
         "not_powers_of_two": bad, "passed": not bad}
  if int8_bytes is not None and not bad:
    layers = [r.to_dict() for r in
              tflite.power_of_two_weights(int8_bytes, kernels)]
    out["int8"] = {
        "levels": tflite.POW2_LEVELS, "layers": layers,
        "channels": sum(l["channels"] for l in layers),
        "exact_channels": sum(l["exact_channels"] for l in layers),
        "what": "int8 weights = m_c x the power of two, one m_c per output "
                "channel (its scale); a channel holds them exactly when its "
                "exponents span fewer than 7 powers of two (int8 holds "
                "64 ... 1 under one scale)"}
  return out


def _litert_runtime() -> str:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    version = metadata.version("ai-edge-litert")
  except metadata.PackageNotFoundError:
    version = "?"
  return (f"LiteRT (ai-edge-litert {version}) XNNPACK, 1 thread, batch 1, "
          f"{os.cpu_count()} CPUs")


def _report_skeleton(spec: NetSpec, shape, *, arch, source, ds, options,
                     predicted, bn_recalibration) -> dict[str, Any]:
  """The report's fields known before anything is converted."""
  return {
      "schema": "hwnas/export-report@1",
      "source": source or {"kind": "network", "description": spec.name},
      "architecture": None if arch is None else {
          "string": arch_lib.to_string(arch), "json": arch_lib.to_dict(arch)},
      "network": _network_info(spec),
      "formats": list(options.formats),
      "input": {"shape": list(shape), "dtype": "float32",
                "int8_model_input": "int8 (quantised from the normalised "
                                    "float input)"},
      "normalisation": None if ds is None else {
          "dataset": ds.info.name, "mean": list(ds.info.mean),
          "std": list(ds.info.std),
          "pixel_max": float(ds.info.pixel_max),
          "formula": "(raw / pixel_max - mean) / std"},
      "bn_recalibration": bn_recalibration,
      "checks": {}, "latency": {"predicted": predicted, "measured": {}},
      "operators": {}, "edgetpu": None,
  }


def _write_models(tmp: pathlib.Path, r: dict[str, Any], model, fn, shape,
                   arch, ds, o: ExportOptions) -> tuple[bytes | None,
                                                        bytes | None]:
  """Writes netspec/arch, Flax, SavedModel and TFLite files into `tmp`;
  returns the (float, int8) TFLite bytes (None where not requested)."""
  spec = model.spec
  netspec.save(spec, tmp / flax_io.NETSPEC_FILE)
  if arch is not None:
    (tmp / flax_io.ARCH_FILE).write_text(arch_lib.to_json(arch, indent=1)
                                         + "\n")
  if "flax" in o.formats:
    flax_io.save_flax(model, tmp)
  if "saved_model" in o.formats:
    tflite.save_saved_model(fn, shape, tmp / options_lib.SAVED_MODEL_DIR)
  float_bytes = int8_bytes = None
  if "tflite" in o.formats:
    float_bytes = tflite.convert(fn, shape)
    (tmp / options_lib.FLOAT_TFLITE).write_bytes(float_bytes)
  if "tflite-int8" in o.formats:
    rep, rep_desc = _calibration_samples(ds, spec, o)
    int8_bytes = tflite.convert(fn, shape, int8=True,
                                representative=[x[None] for x in rep])
    kernels = _shift_kernels(model)
    if kernels:
      # Shift layers' channels whose powers of two fit int8 under one
      # scale are re-quantised to hold them exactly (`_shift_check` says
      # which do not).
      int8_bytes = tflite.align_power_of_two_weights(int8_bytes, kernels)
    (tmp / options_lib.INT8_TFLITE).write_bytes(int8_bytes)
    r["int8_calibration"] = rep_desc
  return float_bytes, int8_bytes
