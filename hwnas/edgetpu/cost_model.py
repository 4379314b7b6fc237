"""An analytic Coral Edge TPU latency model: ops, `estimate`, `explain`.

Nobody on the project owns a Coral device, so this model estimates what a
Coral Edge TPU would measure. It predicts a whole network's latency (ms,
batch 1, full int8) as named parts:

    total = compute + fixed + harness + transfer + streaming + cpu_fallback

* `compute`: per op (1x1 conv, k x k full conv, depthwise conv, dense,
  residual add, SE gate) the int8 MACs over an effective rate,
  `MACS_PER_CYCLE * clock * efficiency[op class] * utilisation`, plus its
  activation traffic (input + output bytes over `activation_gbs`) and a
  fixed per-op cost. The 4096 MAC/cycle array (4 TOPS at 500 MHz) is
  modelled as 16 tiles of 16 x 16 MACs: output positions spread over the
  tiles, the reduction (cin*k*k products, or k*k for depthwise) over 16
  rows, output channels over 16 columns, and a dimension that is not a
  multiple of 16 pads up to one (`util(n) = n / (16 * ceil(n / 16))`). The
  clock is 250 MHz with libedgetpu1-std on USB ('std') and 500 MHz with
  libedgetpu1-max or on PCIe ('max').
* `fixed`: per-invoke cost of the device, link and runtime (USB 3, USB 2,
  PCIe) as Coral's C++ benchmark sees it.
* `harness`: what timing from Python (`interpreter.invoke`) adds on the
  host of the link (x86 for USB 3, Arm for PCIe and USB 2). Estimates are
  for the Python harness unless `harness='cpp'` (published rows say which
  harness timed them, so the two stop pulling one constant apart).
* `transfer`: input image and output tensor over the link (with a CPU
  fallback, the intermediate tensor where the graph is cut).
* `streaming`: int8 parameter bytes beyond the on-chip cache budget are
  re-sent over the link every inference: `(bytes - budget) / bandwidth`.
  This is a whole-network term: whether a layer's weights are cached depends
  on every other layer.
* `cpu_fallback`: the compiler maps ops until the first one the Edge TPU
  cannot run (the fused HARD_SWISH that TFLite makes of `hswish`; which
  ops map, per compiler version, is `hwnas.edgetpu.ops`, the table the
  export's operator check reads too) and leaves that op and *everything
  after it* on the host CPU. The term is, per op left on the CPU, its host
  time (MACs over a host rate re-derived from the public reports of
  fallen-back networks) less the Edge TPU compute it would have taken,
  floored at zero per op, so `compute` stays the per-layer sum a latency
  table stores and the term is never negative.

The constants in `DEFAULTS` come from `hwnas.edgetpu.calibration`
(published whole-model latencies in `hwnas.edgetpu.published`); the facts
behind the structure, with their public sources, are in docs/edgetpu.md.
Constants and per-op costs are in `layer_cost`; this module adds the
whole-network parts, `estimate`, `explain` and the extrapolation labels,
and names the constants and per-op functions a user needs, so that
`cost_model` is the one import for using the model.
It knows nothing of latency tables or measurement backends:
`hwnas.latency.edgetpu_table` wraps it as both.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

from hwnas.edgetpu import published
from hwnas.edgetpu.layer_cost import (  # also this module's public names
    CLOCKS_MHZ, DEFAULT_HARNESS, DEFAULTS, FITTED, HARNESSES, LINKS,
    MACS_PER_CYCLE, MEASURE_HINT, MODEL_NAME, MODEL_VERSION, EdgeTPUParams,
    _check_clock, _check_harness, _check_link, first_unmapped,
    layer_compute_ms, layer_extras, layer_ops, op_ms, unsupported_op,
    utilisation)
from hwnas.netspec import Layer, NetSpec

# -------------------------------------------------------------- estimate --

@dataclasses.dataclass(frozen=True)
class LayerEstimate:
  """One layer's share of an estimate."""

  index: int
  key: str
  macs: int
  weight_bytes: int
  compute_ms: float        # Edge TPU time as if mapped (the table entry)
  on_tpu: str              # 'yes' | 'partly' (first op only) | 'no'


@dataclasses.dataclass(frozen=True)
class EdgeTPUEstimate:
  """A whole-network estimate and its parts (all times in ms)."""

  network: str
  link: str
  clock: str
  harness: str
  compute_ms: float
  fixed_ms: float          # device and link, per invoke (C++ figure)
  harness_ms: float        # what the harness adds (Python invoke)
  transfer_ms: float
  streaming_ms: float
  cpu_fallback_ms: float
  total_ms: float
  on_chip_bytes: int
  off_chip_bytes: int
  unmapped: tuple[str, ...]          # one line per op left on the CPU
  layers: tuple[LayerEstimate, ...]
  macs: int = 0
  param_bytes: int = 0
  resolution: int = 0

  def parts(self) -> dict[str, float]:
    """The named parts that add up to `total_ms`."""
    return {"compute_ms": self.compute_ms, "fixed_ms": self.fixed_ms,
            "harness_ms": self.harness_ms,
            "transfer_ms": self.transfer_ms,
            "streaming_ms": self.streaming_ms,
            "cpu_fallback_ms": self.cpu_fallback_ms}


@dataclasses.dataclass(frozen=True)
class _Split:
  mapped_bytes: int        # parameters of the ops on the Edge TPU
  tpu_out_bytes: int       # what crosses the link back to the host
  first_unmapped: int | None
  num_cpu_ops: int


@functools.lru_cache(maxsize=1 << 16)
def _layer_bytes(layer: Layer) -> int:
  return sum(o.weight_bytes for o in layer_ops(layer))


@functools.lru_cache(maxsize=4096)
def _split(spec: NetSpec, compiler: str | None = None) -> _Split:
  """Where the compiler cuts the graph: the first unmappable op (its
  layer's first op stays on the Edge TPU; all later ops run on the host)."""
  cut = first_unmapped(spec, compiler)
  if cut is None:
    return _Split(sum(_layer_bytes(l) for l in spec.layers),
                  spec.num_classes, None, 0)
  ops = layer_ops(spec.layers[cut])
  mapped = sum(_layer_bytes(l) for l in spec.layers[:cut])
  n_cpu = len(ops) - 1 + sum(len(layer_ops(l))
                             for l in spec.layers[cut + 1:])
  return _Split(mapped + ops[0].weight_bytes, ops[0].out_bytes, cut, n_cpu)


@functools.lru_cache(maxsize=1 << 16)
def _fallback_ms(layer: Layer, skip_first: bool, p: EdgeTPUParams,
                 link: str, clock: str) -> float:
  """Host time over Edge TPU time of a layer's ops left on the CPU (each
  op at least 0: an op is never faster for falling back)."""
  ops = layer_ops(layer)[1 if skip_first else 0:]
  host = p.host_macs_per_ms(link)
  return math.fsum(max(0.0, o.macs / host - op_ms(o, p, clock))
                   for o in ops)


def _terms(spec: NetSpec, p: EdgeTPUParams, link: str, clock: str,
           harness: str | None, split: _Split) -> dict[str, float]:
  bw = p.bandwidth_bytes_per_ms(link)
  in_bytes = spec.resolution * spec.resolution * spec.in_channels
  cut = split.first_unmapped
  cpu_ms = 0.0
  if cut is not None:
    cpu_ms = _fallback_ms(spec.layers[cut], True, p, link, clock) + math.fsum(
        _fallback_ms(l, False, p, link, clock) for l in spec.layers[cut + 1:])
  terms = {"fixed_ms": p.fixed_ms(link)}
  if harness is not None:     # None: a table made before the harness term
    terms["harness_ms"] = p.harness_ms(link, harness)
  terms.update({
      "transfer_ms": (in_bytes + split.tpu_out_bytes) / bw,
      "streaming_ms": max(0, split.mapped_bytes - p.cache_bytes) / bw,
      "cpu_fallback_ms": cpu_ms,
  })
  return terms


def estimate(spec: NetSpec, *, link: str = "usb3", clock: str = "max",
             harness: str = DEFAULT_HARNESS,
             params: EdgeTPUParams | None = None,
             compiler: str | None = None) -> EdgeTPUEstimate:
  """Estimates the Coral Edge TPU latency of a network, in named parts.

  Args:
    spec: the network.
    link: 'usb3' (USB Accelerator on a desktop), 'usb2' (USB 2 host such as
      a Raspberry Pi 3) or 'pcie' (Dev Board, M.2/PCIe modules).
    clock: 'max' (500 MHz: libedgetpu1-max, or PCIe) or 'std' (250 MHz:
      libedgetpu1-std on USB).
    harness: 'python' (`interpreter.invoke` from Python: what a user's
      Python code sees) or 'cpp' (Coral's C++ benchmark figures).
    params: model constants; the calibrated `DEFAULTS` when None.
    compiler: Edge TPU compiler version whose operator table decides what
      falls back (`hwnas.edgetpu.ops.DEFAULT_COMPILER` when None).

  Returns:
    An EdgeTPUEstimate whose parts add up to `total_ms`.

  Examples:
    >>> from hwnas import references
    >>> e = estimate(references.load("mobilenet_v2_1.0"))
    >>> round(e.total_ms, 1) > 1.0
    True
  """
  p = params or DEFAULTS
  _check_link(link), _check_clock(clock), _check_harness(harness)
  split = _split(spec, compiler)
  cut = split.first_unmapped
  layers, unmapped = [], []
  for i, layer in enumerate(spec.layers):
    ops = layer_ops(layer)
    on = "yes" if cut is None or i < cut else "partly" if i == cut else "no"
    layers.append(LayerEstimate(
        i, layer.key(), sum(o.macs for o in ops),
        sum(o.weight_bytes for o in ops),
        math.fsum(op_ms(o, p, clock) for o in ops), on))
  if cut is not None:
    l = spec.layers[cut]
    unmapped.append(
        f"layers[{cut}] {l.type} ({l.key()}): {unsupported_op(l, compiler)} "
        f"({l.activation}) is not supported by the Edge TPU; it and the "
        f"{split.num_cpu_ops} ops after it run on the host CPU")
  terms = _terms(spec, p, link, clock, harness, split)
  compute = math.fsum(l.compute_ms for l in layers)
  mapped_bytes = split.mapped_bytes
  return EdgeTPUEstimate(
      network=spec.name, link=link, clock=clock, harness=harness,
      compute_ms=compute, fixed_ms=terms["fixed_ms"],
      harness_ms=terms["harness_ms"], transfer_ms=terms["transfer_ms"],
      streaming_ms=terms["streaming_ms"],
      cpu_fallback_ms=terms["cpu_fallback_ms"],
      total_ms=compute + math.fsum(terms.values()),
      on_chip_bytes=min(mapped_bytes, p.cache_bytes),
      off_chip_bytes=max(0, mapped_bytes - p.cache_bytes),
      unmapped=tuple(unmapped), layers=tuple(layers),
      macs=sum(l.macs for l in layers),
      param_bytes=sum(l.weight_bytes for l in layers),
      resolution=spec.resolution)


def total_ms(spec: NetSpec, *, link: str = "usb3", clock: str = "max",
             harness: str = DEFAULT_HARNESS,
             params: EdgeTPUParams | None = None,
             compiler: str | None = None) -> float:
  """`estimate(...).total_ms` without the per-layer report (the fast path
  that calibration and uncertainty bands evaluate many times)."""
  p = params or DEFAULTS
  _check_link(link), _check_clock(clock), _check_harness(harness)
  # `op_ms` is linear in 1/eff[class], the per-op cost and 1/activation_gbs:
  # sum those coefficients once per network (same value as summing op_ms).
  scaled, n_ops, act_bytes = _op_sums(spec.layers)
  eff = {"full": p.eff_full, "pointwise": p.eff_pointwise,
         "dense": p.eff_pointwise, "depthwise": p.eff_depthwise}
  rate = MACS_PER_CYCLE * CLOCKS_MHZ[clock] * 1e3
  compute = (math.fsum(v / eff[k] for k, v in scaled.items()) / rate
             + n_ops * p.op_overhead_us * 1e-3
             + act_bytes / (p.activation_gbs * 1e6))
  terms = _terms(spec, p, link, clock, harness, _split(spec, compiler))
  return compute + math.fsum(terms.values())


@functools.lru_cache(maxsize=4096)
def _op_sums(layers: tuple[Layer, ...]
             ) -> tuple[dict[str, float], int, int]:
  """(sum of macs / utilisation per op class, number of ops, activation
  bytes) over the ops of `layers`."""
  scaled: dict[str, float] = {}
  n, nbytes = 0, 0
  for l in layers:
    for o in layer_ops(l):
      n += 1
      nbytes += o.in_bytes + o.out_bytes
      if o.macs:
        scaled[o.kind] = scaled.get(o.kind, 0.0) + o.macs / utilisation(o)
  return scaled, n, nbytes


@functools.lru_cache(maxsize=64)
def _params_from_header(items: tuple) -> EdgeTPUParams:
  return EdgeTPUParams.from_dict(dict(items))


def network_terms(spec: NetSpec, params: Mapping[str, Any]
                  ) -> dict[str, float]:
  """The table network model: whole-network parts, as `{name: ms}`.

  `params` is the table header's `network_model.params`: the model
  constants plus `link`, `clock`, `harness` (tables written before the
  harness term have none and get no `harness_ms`) and `compiler` (the
  operator table's version; the default when absent). It is
  `hwnas.latency.NETWORK_MODELS['edgetpu-model'].terms`.
  """
  p = _params_from_header(tuple(sorted(params.items())))
  link = _check_link(str(params.get("link", "usb3")))
  clock = _check_clock(str(params.get("clock", "max")))
  harness = params.get("harness")
  compiler = params.get("compiler")
  return _terms(spec, p, link, clock,
                None if harness is None else str(harness),
                _split(spec, None if compiler is None else str(compiler)))


# ---------------------------------------------------- what is not validated --

# The share of the total above which the per-invoke parts (fixed, harness,
# transfer) dominate: the small-network regime, calibrated on no network
# that small.
SMALL_NETWORK_SHARE = 0.5


def extrapolations(e: EdgeTPUEstimate,
                   calibration_range: Mapping[str, Any] | None = None
                   ) -> list[str]:
  """What in `e` rests on terms or ranges no published row validates.

  Args:
    e: an estimate.
    calibration_range: [min, max] of `macs`, `param_bytes` and `resolution`
      over the fitted networks; `published.calibration_range()` when None.

  Returns:
    One line per extrapolation ([] when `e` lies inside what was fitted).
  """
  rng = (published.calibration_range() if calibration_range is None
         else calibration_range)
  out = []
  if e.cpu_fallback_ms > 0:
    out.append(
        f"extrapolated: cpu_fallback {e.cpu_fallback_ms:.3f} ms is not "
        "validated (no fitted network falls back to the CPU; its host rate "
        "comes from two public reports, google-coral/edgetpu#272 and #353: "
        "docs/edgetpu_sources.md)")
  per_invoke = e.fixed_ms + e.harness_ms + e.transfer_ms
  if per_invoke > SMALL_NETWORK_SHARE * e.total_ms:
    out.append(
        f"extrapolated: small-network regime: {per_invoke / e.total_ms:.0%} "
        "of the estimate is per-invoke cost (fixed + harness + transfer), "
        "fitted only on networks of "
        f"{rng['macs'][0] / 1e6:.0f} M MACs and more")
  for what, value, unit, scale in (
      ("MACs", e.macs, "M", 1e6), ("int8 parameters", e.param_bytes, "MiB",
                                   2**20),
      ("resolution", e.resolution, "px", 1)):
    key = {"MACs": "macs", "int8 parameters": "param_bytes",
           "resolution": "resolution"}[what]
    lo, hi = rng[key]
    if not lo <= value <= hi:
      out.append(
          f"extrapolated: {what} {value / scale:.3g} {unit} outside the "
          f"calibration range {lo / scale:.3g}-{hi / scale:.3g} {unit}")
  return out


def explain(e: EdgeTPUEstimate,
            calibration_range: Mapping[str, Any] | None = None) -> list[str]:
  """Human-readable lines: why this network is fast or slow on the chip,
  and which parts of the estimate are extrapolated."""
  mib = lambda b: b / 2**20
  lines = [f"Edge TPU estimate ({e.link}, {e.clock} clock, {e.harness} "
           f"harness): {e.total_ms:.3f} ms = " + " + ".join(
               f"{k[:-3]} {v:.3f}" for k, v in e.parts().items()),
           f"parameters: {mib(e.on_chip_bytes):.2f} MiB cached on chip, "
           f"{mib(e.off_chip_bytes):.2f} MiB streamed over {e.link} every "
           "inference"]
  lines += [f"CPU fallback: {u}" for u in e.unmapped]
  lines += extrapolations(e, calibration_range)
  lines.append(MEASURE_HINT)
  return lines
