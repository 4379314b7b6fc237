"""Export a network: standalone Flax model, SavedModel, TFLite float/int8,
checks and a report, written atomically into one directory.

Three entry points differ only in where the network and its weights come
from:

* `export_arch`: an architecture of a trained supernet's space; weights are
  inherited from the supernet and BatchNorm is recalibrated on training data.
* `export_spec`: any `NetSpec` (a reference network, a network-spec file)
  with random or given weights, e.g. for Edge TPU compile checks.
* `export_network`: an already built `hwnas.models.Network`.

Everything is built in a temporary directory beside `out` and renamed into
place at the end, so a failure (bad architecture, missing checkpoint,
conversion error) leaves no partial `out` behind. Inputs are validated
before anything heavy runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import pathlib
import shutil
import tempfile
from typing import Any, Sequence

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, errors, netspec, tflite
from hwnas.export import checks, flax_io, report as report_lib
from hwnas.netspec import NetSpec

FORMATS = ("flax", "saved_model", "tflite", "tflite-int8")
FLOAT_TFLITE = "model_float.tflite"
INT8_TFLITE = "model_int8.tflite"
SAVED_MODEL_DIR = "saved_model"
EDGETPU_DIR = "edgetpu"


@dataclasses.dataclass(frozen=True)
class ExportOptions:
  """Knobs of an export (CLI flags of `hwnas export`).

  Attributes:
    formats: subset of `FORMATS` to write.
    calibration_steps: representative samples (batch 1) from the training
      split for int8 calibration.
    dataset: dataset name for calibration, BN recalibration and accuracy
      (`hwnas.data.load`); None: random calibration data, no accuracy.
    eval_split: held-out split for accuracy ('test' is never used by search).
    eval_samples: at most this many held-out samples for accuracy.
    bn_batches: batches for BatchNorm recalibration (0: keep statistics).
    batch_size: batch size for recalibration and Flax evaluation.
    latency_repeats: timed LiteRT invokes (median of these, FINDINGS G18).
    latency_warmup: untimed invokes first.
    seed: data order and random initialisation.
    overwrite: replace an existing `out` (atomically, after success).
    compile_edgetpu: run `edgetpu_compiler` when it is on PATH.
  """

  formats: tuple[str, ...] = FORMATS
  calibration_steps: int = 100
  dataset: str | None = None
  eval_split: str = "test"
  eval_samples: int = 500
  bn_batches: int = 20
  batch_size: int = 32
  latency_repeats: int = 200
  latency_warmup: int = 20
  seed: int = 0
  overwrite: bool = False
  compile_edgetpu: bool = True

  def __post_init__(self):
    unknown = sorted(set(self.formats) - set(FORMATS))
    if unknown or not self.formats:
      raise errors.HwnasError(
          f"--formats: unknown or empty {unknown or list(self.formats)}; "
          f"allowed: {','.join(FORMATS)}")
    for name in ("calibration_steps", "eval_samples", "latency_repeats",
                 "batch_size"):
      if getattr(self, name) < 1:
        raise errors.HwnasError(f"--{name.replace('_', '-')} must be >= 1")
    if self.bn_batches < 0 or self.latency_warmup < 0:
      raise errors.HwnasError("--bn-batches and warm-up must be >= 0")


# ----------------------------------------------------------- validation --

def check_out_dir(out: str | os.PathLike[str], *, overwrite: bool
                  ) -> pathlib.Path:
  """Validates the output directory before any work is done."""
  p = pathlib.Path(out)
  if p.exists() and not overwrite:
    raise errors.HwnasError(f"{p}: already exists; fix: choose a new --out "
                            "or pass --overwrite")
  if p.exists() and not p.is_dir():
    raise errors.HwnasError(f"{p}: exists and is not a directory")
  return p


def _load_table(table):
  if table is None:
    return None
  from hwnas import latency  # pylint: disable=g-import-not-at-top
  if isinstance(table, latency.LatencyTable):
    return table
  return latency.load_table(table)


def _predict_latency(table, spec: NetSpec) -> dict[str, Any] | None:
  if table is None:
    return None
  return {"ms": float(table.predict(spec)), "table": table.path or table.name,
          "provenance": table.describe(),
          "header": {k: v for k, v in table.header.items()
                     if isinstance(v, (str, int, float, bool))}}


def _load_dataset(name: str | None):
  if name is None:
    return None
  from hwnas import data  # pylint: disable=g-import-not-at-top
  return data.load(name)


@contextlib.contextmanager
def _staging(out: pathlib.Path, overwrite: bool):
  """Yields a temp dir beside `out`; renames it to `out` on success only."""
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-",
                                      dir=out.parent))
  try:
    yield tmp
    if out.exists():
      if not overwrite:
        raise errors.HwnasError(f"{out}: appeared during export; not replaced")
      trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.old-",
                                            dir=out.parent))
      os.replace(out, trash / out.name)
      os.replace(tmp, out)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.replace(tmp, out)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------- pieces --

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
    return x, f"{len(x)} samples of {ds.info.name} train"
  rng = np.random.default_rng(o.seed)
  shape = (o.calibration_steps, spec.resolution, spec.resolution,
           spec.in_channels)
  return (rng.standard_normal(shape).astype(np.float32),
          f"{o.calibration_steps} standard-normal random inputs (no dataset)")


def _edgetpu_section(int8_bytes: bytes, tmp: pathlib.Path,
                     out: pathlib.Path, o: ExportOptions) -> dict[str, Any]:
  from hwnas import edgetpu  # pylint: disable=g-import-not-at-top
  ops = edgetpu.check_ops(tflite.op_list(int8_bytes))
  float_ops = tflite.float_ops(int8_bytes)
  command = " ".join(edgetpu.compiler_command(out / INT8_TFLITE,
                                              out / EDGETPU_DIR))
  section: dict[str, Any] = {"ops": ops.to_dict(), "float_ops": float_ops,
                             "compile_command": command, "compiler": None}
  if o.compile_edgetpu and edgetpu.find_compiler():
    try:
      result = edgetpu.compile_model(tmp / INT8_TFLITE, tmp / EDGETPU_DIR)
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


# ---------------------------------------------------------- entry points --

def export_network(model, out: str | os.PathLike[str], *,
                   arch=None, source: dict[str, Any] | None = None,
                   options: ExportOptions = ExportOptions(),
                   table=None, dataset=None,
                   bn_recalibration: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
  """Exports a built `hwnas.models.Network` (weights as they are).

  Args:
    model: the standalone network; its depthwise convs are switched to
      'lax' (exact DEPTHWISE_CONV_2D in TFLite, FINDINGS G10).
    out: export directory; must not exist unless `options.overwrite`.
    arch: the `ArchChoice` it was decoded from, if any (written as
      arch.json and shown in the report).
    source: `{"kind": ..., "description": ...}` for the report.
    options: see `ExportOptions`.
    table: latency table (path, shipped name or `LatencyTable`) whose
      prediction the report compares with the measured latency.
    dataset: a loaded `hwnas.data.Dataset` (default: load
      `options.dataset`).
    bn_recalibration: how BatchNorm was recalibrated, for the report.

  Returns:
    The report dict (also written to `out/report.json` and `report.md`).
  """
  from hwnas.models import set_depthwise_impl  # pylint: disable=g-import-not-at-top
  o = options
  out_p = check_out_dir(out, overwrite=o.overwrite)
  spec: NetSpec = model.spec
  table = _load_table(table)
  predicted = _predict_latency(table, spec)
  ds = dataset if dataset is not None else _load_dataset(o.dataset)
  if ds is not None and ds.info.num_classes != spec.num_classes:
    raise errors.HwnasError(
        f"{spec.name}: {spec.num_classes} outputs but dataset "
        f"{ds.info.name} has {ds.info.num_classes} classes; fix: pass the "
        "dataset the network was trained on")
  set_depthwise_impl(model, "lax")
  fn = _pure_fn(model)
  shape = (1, spec.resolution, spec.resolution, spec.in_channels)
  r: dict[str, Any] = {
      "schema": "hwnas/export-report@1",
      "source": source or {"kind": "network", "description": spec.name},
      "architecture": None if arch is None else {
          "string": arch_lib.to_string(arch), "json": arch_lib.to_dict(arch)},
      "network": _network_info(spec),
      "formats": list(o.formats),
      "input": {"shape": list(shape), "dtype": "float32",
                "int8_model_input": "int8 (quantised from the normalised "
                                    "float input)"},
      "normalisation": None if ds is None else {
          "dataset": ds.info.name, "mean": list(ds.info.mean),
          "std": list(ds.info.std),
          "pixel_max": float(getattr(ds.info, "pixel_max", 255.0)),
          "formula": "(raw / pixel_max - mean) / std"},
      "bn_recalibration": bn_recalibration,
      "checks": {}, "latency": {"predicted": predicted, "measured": {}},
      "operators": {}, "edgetpu": None,
  }
  with _staging(out_p, o.overwrite) as tmp:
    netspec.save(spec, tmp / flax_io.NETSPEC_FILE)
    if arch is not None:
      (tmp / flax_io.ARCH_FILE).write_text(arch_lib.to_json(arch, indent=1)
                                           + "\n")
    if "flax" in o.formats:
      flax_io.save_flax(model, tmp)
    if "saved_model" in o.formats:
      tflite.save_saved_model(fn, shape, tmp / SAVED_MODEL_DIR)
    float_bytes = int8_bytes = None
    if "tflite" in o.formats:
      float_bytes = tflite.convert(fn, shape)
      (tmp / FLOAT_TFLITE).write_bytes(float_bytes)
    if "tflite-int8" in o.formats:
      rep, rep_desc = _calibration_samples(ds, spec, o)
      int8_bytes = tflite.convert(fn, shape, int8=True,
                                  representative=[x[None] for x in rep])
      (tmp / INT8_TFLITE).write_bytes(int8_bytes)
      r["int8_calibration"] = rep_desc
    _run_checks(r, model, float_bytes, int8_bytes, ds, spec, o)
    r["latency"]["comparison"] = _compare_latency(r["latency"])
    for name, b in (("tflite float32", float_bytes),
                    ("tflite int8", int8_bytes)):
      if b is not None:
        r["operators"][name] = {"counts": tflite.op_counts(b),
                                "total": len(tflite.op_list(b)),
                                "sequence": tflite.op_list(b)}
    if int8_bytes is not None:
      r["edgetpu"] = _edgetpu_section(int8_bytes, tmp, out_p.absolute(), o)
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
                spec: NetSpec, o: ExportOptions) -> None:
  """Fills r['checks'] and r['latency']['measured']."""
  if ds is not None:
    images, labels = checks.take_samples(
        ds, o.eval_split, o.eval_samples, resolution=spec.resolution,
        seed=o.seed, shuffle=False, batch_size=o.batch_size)
  else:
    rng = np.random.default_rng([o.seed, 1])
    images = rng.standard_normal(
        (min(o.eval_samples, 16), spec.resolution, spec.resolution,
         spec.in_channels)).astype(np.float32)
    labels = None
  flax_logits = checks.predict(model, images, batch_size=o.batch_size)
  runs: dict[str, np.ndarray] = {}
  runtime = None
  for name, b in (("float32", float_bytes), ("int8", int8_bytes)):
    if b is None:
      continue
    runner = tflite.Runner(b, num_threads=1)
    runs[name] = runner.run(images)
    stats = runner.time(o.latency_repeats, o.latency_warmup,
                        rng=np.random.default_rng(o.seed))
    r["latency"]["measured"][f"tflite {name}"] = stats.to_dict()
    runtime = _litert_runtime()
  r["latency"]["runtime"] = runtime
  if "float32" in runs:
    r["checks"]["float_tflite_vs_flax"] = checks.agreement(
        flax_logits, runs["float32"]).to_dict()
  if "int8" in runs:
    r["checks"]["int8_vs_flax"] = checks.agreement(
        flax_logits, runs["int8"]).to_dict()
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


def _litert_runtime() -> str:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    version = metadata.version("ai-edge-litert")
  except metadata.PackageNotFoundError:
    version = "?"
  return (f"LiteRT (ai-edge-litert {version}) XNNPACK, 1 thread, batch 1, "
          f"{os.cpu_count()} CPUs")


def export_spec(spec: NetSpec, out: str | os.PathLike[str], *,
                weights: str | os.PathLike[str] | None = None,
                options: ExportOptions = ExportOptions(), table=None,
                arch=None, source: dict[str, Any] | None = None
                ) -> dict[str, Any]:
  """Exports a `NetSpec` with random (seeded) or given weights.

  Args:
    spec: the network.
    out: export directory.
    weights: an export directory (or its `flax/` checkpoint) or a `hwnas
      train` workdir of the same network; None: random initialisation from
      `options.seed`. With random weights and a dataset, the classifier is
      resized to the dataset's classes and BatchNorm is recalibrated on its
      training split.
    options, table, arch, source: see `export_network`.

  Returns:
    The report dict.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network  # pylint: disable=g-import-not-at-top
  o = options
  check_out_dir(out, overwrite=o.overwrite)
  ds = _load_dataset(o.dataset)
  if weights is None and ds is not None and (
      spec.num_classes != ds.info.num_classes):
    spec = netspec.with_num_classes(spec, ds.info.num_classes)
  model = Network(spec, rngs=nnx.Rngs(o.seed), depthwise="lax")
  if weights is not None:
    model = _load_weights(model, pathlib.Path(weights))
    init = f"weights from {weights}"
    bn = None
  else:
    init = f"random initialisation (seed {o.seed})"
    bn = _recalibrate(model, ds, spec, o) if ds is not None else None
  source = dict(source or {"kind": "netspec"})
  source["description"] = (f"{source.get('description', spec.name)}; "
                           f"{init}")
  return export_network(model, out, arch=arch, source=source, options=o,
                        table=table, dataset=ds, bn_recalibration=bn)


def _load_weights(model, w: pathlib.Path):
  """Weights from an export dir, its Flax checkpoint or a `hwnas train`
  workdir (config.json + checkpoints/); the network must be the same."""
  if (w / "config.json").is_file() and (w / "checkpoints").is_dir():
    from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
    from hwnas.models import set_depthwise_impl  # pylint: disable=g-import-not-at-top
    trained = train_standalone.restore(w)
    if trained.spec.layers != model.spec.layers:
      raise errors.HwnasError(
          f"{w}: trained network {trained.spec.name} is not the network to "
          f"export ({model.spec.name}); fix: export the architecture it was "
          "trained with")
    set_depthwise_impl(trained, "lax")
    return trained
  ckpt = w / flax_io.FLAX_DIR if (w / flax_io.FLAX_DIR).is_dir() else w
  if not ckpt.is_dir():
    raise errors.HwnasError(f"{w}: no such weights directory; fix: pass an "
                            "export directory or a `hwnas train` workdir")
  flax_io.restore_flax(model, ckpt)
  return model


def _recalibrate(model, ds, spec: NetSpec, o: ExportOptions
                 ) -> dict[str, Any] | None:
  if o.bn_batches == 0:
    return None
  from hwnas import data  # pylint: disable=g-import-not-at-top
  it = data.batches(ds, "train", batch_size=o.batch_size,
                    resolution=spec.resolution, seed=o.seed, shuffle=True,
                    repeat=True, drop_remainder=True)
  n = checks.recalibrate_bn(model, (next(it)["image"]
                                    for _ in range(o.bn_batches)))
  return {"batches": n, "batch_size": o.batch_size, "dataset": ds.info.name,
          "split": "train", "method": "hwnas.export.checks.recalibrate_bn"}


def load_arch_for(arch_or_path, space) -> Any:
  """Loads an architecture file (or takes a choice) and validates it against
  `space`; raises a one-line SpaceError when it is not a member."""
  a = (arch_lib.load(arch_or_path)
       if isinstance(arch_or_path, (str, os.PathLike)) else arch_or_path)
  arch_lib.validate(space, a)
  return a


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
  """'flax,tflite' -> ('flax', 'tflite'), validated."""
  items = text.split(",") if isinstance(text, str) else list(text)
  formats = tuple(dict.fromkeys(f.strip() for f in items if f.strip()))
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown or not formats:
    raise errors.HwnasError(f"--formats: unknown {unknown or '(empty)'}; "
                            f"allowed: {','.join(FORMATS)}")
  return formats


def export_supernet(supernet, arch_or_path, out: str | os.PathLike[str], *,
                    options: ExportOptions = ExportOptions(), table=None,
                    dataset=None, source: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
  """Exports one architecture of an in-memory `hwnas.supernet` Supernet.

  The standalone network gets the supernet's shared weights (exact shapes,
  `hwnas.supernet.model.subnet`); its BatchNorm statistics are then
  recalibrated on `options.bn_batches` training batches when a dataset is
  given (cumulative average, as Once-for-All), and kept otherwise.

  Raises:
    SpaceError: the architecture is not a member of the supernet's space.
  """
  from hwnas.supernet import model as supernet_model  # pylint: disable=g-import-not-at-top
  o = options
  check_out_dir(out, overwrite=o.overwrite)
  choice = load_arch_for(arch_or_path, supernet.space)
  ds = dataset if dataset is not None else _load_dataset(o.dataset)
  model = supernet_model.subnet(supernet, choice, depthwise="lax")
  bn = (_recalibrate(model, ds, model.spec, o) if ds is not None else None)
  source = dict(source or {"kind": "supernet",
                           "description": "in-memory supernet"})
  return export_network(model, out, arch=choice, source=source, options=o,
                        table=table, dataset=ds, bn_recalibration=bn)


def export_arch(arch_or_path, supernet: str | os.PathLike[str],
                out: str | os.PathLike[str], *,
                options: ExportOptions = ExportOptions(), table=None
                ) -> dict[str, Any]:
  """Exports an architecture with weights inherited from a trained supernet.

  Args:
    arch_or_path: an `ArchChoice` or an architecture JSON file (a choice,
      or search output such as best.json).
    supernet: the `hwnas supernet train` workdir (config.json + Orbax
      checkpoints).
    out: export directory.
    options: see `ExportOptions`; `options.dataset` defaults to the dataset
      the supernet was trained on (same validation hold-out).
    table: latency table for the predicted-vs-measured comparison.

  Returns:
    The report dict.

  Raises:
    HwnasError: missing/corrupt workdir or checkpoint, or an architecture
      that is not in the supernet's space; nothing is written to `out`.
  """
  from hwnas.export import supernet_source  # pylint: disable=g-import-not-at-top
  check_out_dir(out, overwrite=options.overwrite)
  if isinstance(arch_or_path, (str, os.PathLike)):
    arch_or_path = arch_lib.load(arch_or_path)
  space, net, config = supernet_source.load(supernet)
  try:
    arch_lib.validate(space, arch_or_path)
  except errors.HwnasError as e:
    raise errors.SpaceError(
        f"{pathlib.Path(supernet) / 'config.json'}: the architecture is not "
        f"in the supernet's space ({e})") from None
  ds = supernet_source.load_dataset(config, options.dataset)
  source = {"kind": "supernet", "supernet": str(supernet),
            "description": f"supernet {supernet} (space {space.name}, "
                           f"dataset {ds.info.name}); shared weights of the "
                           "architecture"}
  return export_supernet(net, arch_or_path, out, options=options,
                         table=table, dataset=ds, source=source)
