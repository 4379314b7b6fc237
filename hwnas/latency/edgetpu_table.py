"""The Edge TPU cost model as a latency table and a measurement backend.

`hwnas.edgetpu.cost_model` is pure (no tables, no backends); this module
wraps it:

* `make_table(space, link=..., clock=...)` writes an `estimated` table whose
  entries are per-layer compute and whose header's `network_model` (kind
  `edgetpu-model`, looked up in `hwnas.latency.network_models`) carries the
  other parts, so `table.predict(spec) == estimate(spec).total_ms`.
* `EdgeTPUModelBackend` is `hwnas table measure --backend edgetpu-model`.
* `validate_published` checks a table's constants against the published
  Coral figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas import errors
from hwnas.edgetpu import calibration
from hwnas.edgetpu import ops as ops_lib
from hwnas.edgetpu import published as pub
from hwnas.edgetpu.cost_model import (
    CLOCKS_MHZ, DEFAULT_HARNESS, DEFAULTS, FITTED, MEASURE_HINT, MODEL_NAME,
    MODEL_VERSION, EdgeTPUEstimate, EdgeTPUParams, _check_clock,
    _check_harness, _check_link, estimate, layer_compute_ms, layer_extras)
from hwnas.latency import space_layers, table_schema
from hwnas.latency import table as tbl
from hwnas.latency.timing import Timing
from hwnas.netspec import Layer, NetSpec

def _provenance(link: str, clock: str, harness: str, space_name: str = "S"
                ) -> dict[str, Any]:
  fit = pub.rows(use="fit")
  rng = pub.calibration_range()
  band = calibration.default_band()
  return {
      "kind": "estimated", "model": MODEL_NAME, "version": MODEL_VERSION,
      "link": link, "clock": clock, "harness": harness,
      "calibration": {
          "data": (f"hwnas.edgetpu.published: {len(fit)} published "
                   f"whole-model latencies of {len(rng['networks'])} "
                   "networks (Coral benchmarks and models pages, pycoral "
                   "reference CSVs, google-coral/edgetpu issue #151), each "
                   "tagged with its harness (cpp / python)"),
          "method": ("bounded least squares on log latency with weak priors "
                     "(hwnas.edgetpu.calibration.calibrate)"),
          "fitted": list(FITTED),
          "range": {"macs": rng["macs"], "param_bytes": rng["param_bytes"],
                    "resolution": rng["resolution"],
                    "networks": rng["networks"]}},
      "uncertainty": {
          "band": "network_model.band: predict_band(spec) -> (low, high) ms",
          "ratio_low": round(band.ratio_low, 4),
          "ratio_high": round(band.ratio_high, 4),
          "method": ("leave-one-network-out: min/max of the refits' "
                     "estimates, times the smallest/largest published / "
                     "held-out-predicted ratio of the calibration networks")},
      "extrapolated": [
          "cpu_fallback: not validated by any fitted row (no published "
          "Coral network falls back); its host rates come from "
          "google-coral/edgetpu#272 and #353 (docs/edgetpu_sources.md); "
          "searches on Edge TPU tables exclude fallen-back networks unless "
          "--allow-cpu-fallback",
          f"networks below {rng['macs'][0] / 1e6:.0f} M MACs, outside "
          f"{rng['param_bytes'][0] / 2**20:.1f}-"
          f"{rng['param_bytes'][1] / 2**20:.0f} MiB of int8 parameters or "
          f"{rng['resolution'][0]}-{rng['resolution'][1]} px: outside the "
          "calibration range (the small-network regime is dominated by "
          "per-invoke cost fitted on 224-px networks only)"],
      "measure_real": MEASURE_HINT,
      "command": (f"hwnas table measure --backend {MODEL_NAME} --space "
                  f"{space_name} --link {link} --option clock={clock} "
                  f"--option harness={harness} --out T"),
  }


def _device(link: str, clock: str, harness: str) -> str:
  device = {"usb3": "Coral USB Accelerator on a desktop host (USB 3)",
            "usb2": "Coral USB Accelerator on a USB 2 host",
            "pcie": "Coral Edge TPU on PCIe (Dev Board / M.2)"}[link]
  return (f"{device}, {CLOCKS_MHZ[clock]:g} MHz, {harness} harness "
          "(estimated)")


def _network_model_header(p: EdgeTPUParams, link: str, clock: str,
                          harness: str, compiler: str | None = None
                          ) -> dict[str, Any]:
  return {"kind": MODEL_NAME, "version": MODEL_VERSION,
          "params": {**p.to_dict(), "link": link, "clock": clock,
                     "harness": harness,
                     "compiler": ops_lib.compiler_key(compiler)},
          "band": calibration.default_band().to_dict()}


def make_table(space, *, link: str = "usb3", clock: str = "max",
               harness: str = DEFAULT_HARNESS,
               params: EdgeTPUParams | None = None, path: str = "",
               compiler: str | None = None):
  """An estimated LatencyTable for every layer reachable in `space`.

  Entries are per-layer Edge TPU compute (`layer_compute_ms`); the header's
  `network_model` adds fixed cost, harness, transfer, parameter streaming
  and CPU fallback, so `table.predict(spec) == estimate(spec, ...).total_ms`
  and carries the leave-one-out band (`table.predict_band(spec)`); the
  provenance records the calibration range and what is extrapolated.

  Args:
    space: a hwnas.space.SearchSpace.
    link: 'usb3' | 'usb2' | 'pcie'.
    clock: 'max' | 'std'.
    harness: 'python' (default: what Python code sees) | 'cpp'.
    params: model constants (`DEFAULTS` when None).
    path: where the table will be saved (recorded in the value only).
    compiler: Edge TPU compiler version whose operator table decides the
      CPU fallback (`hwnas.edgetpu.ops.DEFAULT_COMPILER` when None).

  Returns:
    A hwnas.latency.table.LatencyTable (not yet saved).
  """
  p = params or DEFAULTS
  _check_link(link), _check_clock(clock), _check_harness(harness)
  entries = [tbl.Entry(l, layer_compute_ms(l, clock=clock, params=p),
                         extras=layer_extras(l))
             for l in sorted({l.as_mult() for l in  # shift: same entry
                              space_layers.enumerate_layers(space)})]
  header = table_schema.make_header(
      device=_device(link, clock, harness), backend=MODEL_NAME, runtime=MODEL_NAME,
      runtime_version=MODEL_VERSION, precision="int8", batch_size=1,
      threads=1, warmup=0, repeats=0, spaces=[space.id],
      provenance=_provenance(link, clock, harness, space.name),
      network_model=_network_model_header(p, link, clock, harness, compiler),
      notes=MEASURE_HINT)
  return tbl.new_table(header, entries, path)


def measure_edgetpu_model(space, *, link: str = "usb3", clock: str = "max",
                          harness: str = DEFAULT_HARNESS,
                          out: str | None = None,
                          params: EdgeTPUParams | None = None):
  """Writes the estimated table of `space` to `out` (CLI backend hook).

  Args:
    space: a SearchSpace or the name/path of one.
    link, clock, harness, params: as for `make_table`.
    out: output path; `latency_tables/edgetpu-<link>/<space>.json` when
      None.

  Returns:
    The saved LatencyTable.
  """
  from hwnas import resources
  from hwnas import space as space_lib
  if isinstance(space, str):
    space = space_lib.load(space)
  if out is None:
    out = str(resources.latency_tables_dir() / f"edgetpu-{link}" /
              f"{space.name}.json")
  t = make_table(space, link=link, clock=clock, harness=harness,
                 params=params, path=str(out))
  t.save(out)
  return t


def estimate_for_table(table, spec: NetSpec) -> EdgeTPUEstimate:
  """`estimate` with the link, clock and constants an estimated table
  was made with (its header's `network_model.params`)."""
  nm = table.network_model
  if not nm or table_schema.network_model_kind(nm) != MODEL_NAME:
    raise errors.HwnasError(
        f"{table.path or '<table>'}: header.network_model is not "
        f"{MODEL_NAME!r}; this table was not made by the Edge TPU model")
  prm = nm.get("params", {})
  return estimate(spec, link=str(prm.get("link", "usb3")),
                  clock=str(prm.get("clock", "max")),
                  harness=str(prm.get("harness", "cpp")),
                  params=EdgeTPUParams.from_dict(prm),
                  compiler=compiler_of(table))


def is_edgetpu_table(table) -> bool:
  """Whether `table` is for the Edge TPU (estimated by the model or
  measured with `--backend edgetpu`)."""
  nm = table.network_model or {}
  return (table_schema.network_model_kind(nm) == MODEL_NAME if nm else
          False) or table.backend in (MODEL_NAME, "edgetpu")


def compiler_of(table) -> str:
  """The Edge TPU compiler version (an `hwnas.edgetpu.ops` key) a table's
  operator mapping follows: its model's `compiler` parameter, the version
  a measured table was compiled with, or the default."""
  prm = (table.network_model or {}).get("params", {})
  if prm.get("compiler"):
    return ops_lib.compiler_key(str(prm["compiler"]))
  runtime = str(table.header.get("runtime_version", ""))
  if runtime.startswith("edgetpu_compiler "):
    return ops_lib.compiler_key(runtime.split()[1].rstrip(","))
  return ops_lib.DEFAULT_COMPILER


def validate_published(table=None, *, link: str | None = None
                       ) -> dict[str, Any]:
  """An estimated table's model against the published Coral figures.

  The published networks are not members of the table's space, so they
  are estimated with the table's own constants, link and clock (or
  `DEFAULTS` on `link` when `table` is None). Rows are the fitted ones on
  that link and clock, plus held-out ones, marked (fitted rows are
  in-sample: benchmarks/results/edgetpu_model.md has leave-one-out errors).

  Returns:
    {"link", "clock", "rows": [{network, source, published_ms,
    predicted_ms, error_pct}], "mape_pct", "spearman", "text": [lines]}.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  if table is not None:
    prm = (table.network_model or {}).get("params", {})
    estimate_for_table(table, pub.spec("mobilenet_v1_1.0"))  # checks kind
    p = EdgeTPUParams.from_dict(prm)
    link, clock = str(prm.get("link", "usb3")), str(prm.get("clock", "max"))
  else:
    p, link, clock = DEFAULTS, _check_link(link or "usb3"), "max"
  # Each published row is estimated for its own harness.
  rows = []
  for r in pub.rows(use=None):
    if r.link != link or r.clock != clock:
      continue
    pred = estimate(pub.spec(r.network), link=link, clock=clock,
                    harness=r.harness, params=p).total_ms
    rows.append({"network": r.network, "source": r.source, "use": r.use,
                 "harness": r.harness,
                 "published_ms": r.latency_ms, "predicted_ms": pred,
                 "error_pct": 100 * (pred / r.latency_ms - 1)})
  fit = [r for r in rows if r["use"] == "fit"]
  out: dict[str, Any] = {"link": link, "clock": clock, "rows": rows,
                         "mape_pct": float("nan"), "spearman": float("nan")}
  if fit:
    out["mape_pct"] = float(np.mean([abs(r["error_pct"]) for r in fit]))
  # Rank networks by the geometric mean of their published rows.
  by: dict[str, list[float]] = {}
  for r in fit:
    by.setdefault(r["network"], []).append(math.log(r["published_ms"]))
  if len(by) > 2:
    pred_of = {r["network"]: r["predicted_ms"] for r in fit}
    out["spearman"] = float(stats.spearmanr(
        [np.mean(v) for v in by.values()],
        [pred_of[n] for n in by]).statistic)
  out["text"] = [
      f"{MODEL_NAME} v{MODEL_VERSION} vs published Coral figures ({link}, "
      f"{clock} clock): {len(fit)} fitted rows, MAPE "
      f"{out['mape_pct']:.1f}%, Spearman over {len(by)} networks "
      f"{out['spearman']:.3f} (in-sample; leave-one-network-out error is in "
      "benchmarks/results/edgetpu_model.md)"] + [
          f"  {r['network']:<24} published {r['published_ms']:8.2f} ms  "
          f"predicted {r['predicted_ms']:8.2f} ms  {r['error_pct']:+5.0f}%"
          + ("  (held out)" if r["use"] != "fit" else "")
          for r in rows] + [MEASURE_HINT]
  return out


class EdgeTPUModelBackend:
  """`hwnas table measure --backend edgetpu-model`: estimates, not timings.

  Options (`--option k=v`, `--link`): link ('usb3' | 'usb2' | 'pcie'),
  clock ('max' | 'std'), harness ('python' | 'cpp') and compiler (the
  Edge TPU compiler version whose operator table decides CPU fallback,
  e.g. '15'; default `hwnas.edgetpu.ops.DEFAULT_COMPILER`).
  """

  name = MODEL_NAME
  precision = "int8"

  def __init__(self, threads: int = 0, seed: int = 0, link: str = "usb3",
               clock: str = "max", harness: str = DEFAULT_HARNESS,
               params: EdgeTPUParams | None = None,
               compiler: str | None = None, **unused: Any):
    if unused:
      raise errors.HwnasError(
          f"--backend {MODEL_NAME} takes no option(s) "
          f"{', '.join(sorted(unused))}; it takes link=, clock=, harness= "
          "and compiler=")
    del threads, seed  # nothing is timed
    self.link, self.clock = _check_link(link), _check_clock(clock)
    self.harness = _check_harness(harness)
    self.params = params or DEFAULTS
    self.compiler = ops_lib.compiler_key(compiler)

  def header_fields(self) -> dict[str, Any]:
    return {
        "device": _device(self.link, self.clock, self.harness),
        "runtime": MODEL_NAME, "runtime_version": MODEL_VERSION,
        "provenance": _provenance(self.link, self.clock, self.harness),
        "network_model": _network_model_header(self.params, self.link,
                                               self.clock, self.harness,
                                               self.compiler),
        "notes": MEASURE_HINT}

  def time_layer(self, layer: Layer, *, batch_size: int = 1,
                 warmup: int = 0, repeats: int = 0):
    _check_batch(batch_size)
    return Timing(layer_compute_ms(layer, clock=self.clock,
                                   params=self.params), None, None, 0,
                  layer_extras(layer))

  def time_network(self, spec: NetSpec, *, batch_size: int = 1,
                   warmup: int = 0, repeats: int = 0):
    _check_batch(batch_size)
    e = estimate(spec, link=self.link, clock=self.clock,
                 harness=self.harness, params=self.params,
                 compiler=self.compiler)
    return Timing(e.total_ms, None, None, 0,
                  {**e.parts(), "off_chip_bytes": e.off_chip_bytes,
                   "unmapped": list(e.unmapped)})


def _check_batch(batch_size: int) -> None:
  if batch_size != 1:
    raise errors.HwnasError(f"--batch-size {batch_size}: the {MODEL_NAME} "
                            "backend models batch 1 only; use --batch-size 1")

