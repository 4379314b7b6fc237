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
  cannot run (the fused HARD_SWISH that TFLite makes of `hswish`) and
  leaves that op and *everything after it* on the host CPU. The term is the
  host time of those ops (MACs over a host rate) minus the Edge TPU compute
  they would have taken, so `compute` stays the per-layer sum a latency
  table stores.

The constants in `DEFAULTS` come from `hwnas.edgetpu.calibration`
(published whole-model latencies in `hwnas.edgetpu.published`); the facts
behind the structure, with their public sources, are in docs/edgetpu.md.
This module knows nothing of latency tables or measurement backends:
`hwnas.latency.edgetpu_table` wraps it as both.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

from hwnas import errors
from hwnas.edgetpu import published
from hwnas.netspec import Layer, NetSpec

MODEL_NAME = "edgetpu-model"
MODEL_VERSION = "2"   # 2: harness term (fixed_ms is the C++ figure)
LINKS = ("usb3", "usb2", "pcie")
# How latency is timed: 'python' (`interpreter.invoke` from Python, what a
# user's Python code sees: the default) or 'cpp' (Coral's C++ benchmark).
HARNESSES = ("python", "cpp")
DEFAULT_HARNESS = "python"
CLOCKS_MHZ = {"std": 250.0, "max": 500.0}
MACS_PER_CYCLE = 4096          # 4 TOPS int8 at 500 MHz (Coral datasheet)
LANES = 16                     # rows, columns and tiles of the MAC array
CACHE_BYTES = int(7.7 * 2**20)  # compiler's usual parameter budget (MiB)
HOST_OF_LINK = {"usb3": "x86", "pcie": "arm", "usb2": "arm"}
# TFLite ops the Edge TPU compiler cannot map (issues #272, #353).
UNSUPPORTED_ACTIVATIONS = {"hswish": "HARD_SWISH", "leaky_relu": "LEAKY_RELU"}
MEASURE_HINT = ("estimated, not measured: measure a real table on a Coral "
                "device with `hwnas table measure --backend edgetpu --space "
                "S --out T`")


@dataclasses.dataclass(frozen=True)
class EdgeTPUParams:
  """Model constants; the fitted ones are named in `FITTED`.

  The field defaults are only the starting point of `calibrate`; use the
  calibrated `DEFAULTS`.
  """

  eff_full: float = 0.3           # k x k full conv, share of peak
  eff_pointwise: float = 0.3      # 1x1 conv and dense layers
  eff_depthwise: float = 0.1      # depthwise conv
  op_overhead_us: float = 10.0    # per mapped op
  activation_gbs: float = 1e9     # on-chip activation traffic per op
  fixed_ms_usb3: float = 0.5
  fixed_ms_usb2: float = 2.0
  fixed_ms_pcie: float = 0.5
  bandwidth_gbs_usb3: float = 0.4
  bandwidth_gbs_usb2: float = 0.033
  bandwidth_gbs_pcie: float = 0.35
  host_gmacs_x86: float = 10.0    # host CPU rate for fallen-back ops
  host_gmacs_arm: float = 2.0
  python_ms_x86: float = 0.3      # Python invoke over the C++ figure
  python_ms_arm: float = 0.5
  cache_bytes: int = CACHE_BYTES

  def fixed_ms(self, link: str) -> float:
    return getattr(self, f"fixed_ms_{_check_link(link)}")

  def bandwidth_bytes_per_ms(self, link: str) -> float:
    return getattr(self, f"bandwidth_gbs_{_check_link(link)}") * 1e6

  def harness_ms(self, link: str, harness: str) -> float:
    """What the harness adds to the C++ figure (`fixed_ms`): 0 for 'cpp',
    the host's Python `invoke` overhead for 'python'."""
    if _check_harness(harness) == "cpp":
      return 0.0
    return getattr(self, f"python_ms_{HOST_OF_LINK[_check_link(link)]}")

  def host_macs_per_ms(self, link: str) -> float:
    host = HOST_OF_LINK[_check_link(link)]
    return getattr(self, f"host_gmacs_{host}") * 1e6

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "EdgeTPUParams":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


FITTED = ("eff_full", "eff_depthwise", "op_overhead_us", "activation_gbs",
          "fixed_ms_usb3", "fixed_ms_usb2", "fixed_ms_pcie",
          "bandwidth_gbs_usb3", "bandwidth_gbs_pcie", "python_ms_x86",
          "python_ms_arm")

# Parameters set equal to a fitted one. 1x1 convs and dense layers share
# the full conv's efficiency: they differ from it only through utilisation
# (reduction depth cin instead of cin*k*k; one output position for dense).
# Fitting them apart makes the fit unstable (see benchmarks).
TIED = {"eff_pointwise": "eff_full"}

# Result of `calibration.calibrate()` on `published` (see the module docstring).
DEFAULTS = EdgeTPUParams(
    eff_full=0.2858,
    eff_pointwise=0.2858,
    eff_depthwise=0.1847,
    op_overhead_us=4.272,
    activation_gbs=17.19,
    fixed_ms_usb3=0.2408,
    fixed_ms_usb2=3.314,
    fixed_ms_pcie=0.3404,
    bandwidth_gbs_usb3=0.5011,
    bandwidth_gbs_usb2=0.033,
    bandwidth_gbs_pcie=0.4229,
    host_gmacs_x86=12.03,
    host_gmacs_arm=3.178,
    python_ms_x86=0.1281,
    python_ms_arm=0.1866,
)


def _check_link(link: str) -> str:
  if link not in LINKS:
    raise errors.HwnasError(f"--link {link!r} is not a known Edge TPU link; "
                            f"use one of {', '.join(LINKS)}")
  return link


def _check_harness(harness: str) -> str:
  if harness not in HARNESSES:
    raise errors.HwnasError(f"harness {harness!r} is not known; use one of "
                            f"{', '.join(HARNESSES)} (CLI: --option "
                            "harness=cpp)")
  return harness


def _check_clock(clock: str) -> str:
  if clock not in CLOCKS_MHZ:
    raise errors.HwnasError(f"clock {clock!r} is not a known Edge TPU "
                            f"clock setting; use one of "
                            f"{', '.join(CLOCKS_MHZ)} (CLI: --option "
                            "clock=std)")
  return clock


# ------------------------------------------------------------------- ops --

@dataclasses.dataclass(frozen=True)
class Op:
  """One TFLite op of a layer, with what the cost model needs."""

  kind: str          # 'full' | 'pointwise' | 'depthwise' | 'dense' |
                     # 'pool' | 'mul' (SE gate) | 'add' (residual)
  macs: int
  reduce: int        # products summed into one output value
  channels: int      # output channels computed in parallel
  positions: int     # output positions (H * W)
  weight_bytes: int  # int8 weights + int32 biases
  out_bytes: int     # int8 output tensor
  in_bytes: int = 0  # int8 input tensor(s)


def _conv_op(kind, hw_in, hw_out, k, cin, cout, depthwise=False) -> Op:
  reduce = k * k if depthwise else k * k * cin
  weights = reduce * cout
  pos = hw_out * hw_out
  return Op(kind, pos * weights, reduce, cout, pos, weights + 4 * cout,
            pos * cout, hw_in * hw_in * cin)


@functools.lru_cache(maxsize=1 << 16)
def layer_ops(layer: Layer) -> tuple[Op, ...]:
  """The ops of a layer in execution order (TFLite graph, BN folded).

  The first op is followed by the layer's activation, so a layer with an
  unsupported activation keeps its first op on the Edge TPU (see
  `first_unmapped`).
  """
  t, k, s, h = layer.type, layer.kernel, layer.input_size, layer.output_size
  cin, cout, mid = layer.in_channels, layer.out_channels, layer.mid_channels
  if t == "conv":
    return (_conv_op("pointwise" if k == 1 else "full", s, h, k, cin, cout),)
  if t == "pool":
    return (Op("pool", 0, s * s, cin, 1, 0, cin, s * s * cin),)
  if t == "fc":
    return (Op("dense", cin * cout, cin, cout, 1, cin * cout + 4 * cout,
               cout, cin),)
  if t == "dsc":
    return (_conv_op("depthwise", s, h, k, cin, cin, depthwise=True),
            _conv_op("pointwise", h, h, 1, cin, cout))
  ops = []
  if t == "ibn":
    if layer.has_expand:
      ops.append(_conv_op("pointwise", s, s, 1, cin, mid))
    ops.append(_conv_op("depthwise", s, h, k, mid, mid, depthwise=True))
  elif layer.has_expand:  # fused_ibn
    ops.append(_conv_op("full", s, h, k, cin, mid))
  if layer.se_channels:
    se, n = layer.se_channels, h * h * mid
    ops += [Op("pool", 0, h * h, mid, 1, 0, mid, n),
            Op("dense", mid * se, mid, se, 1, mid * se + 4 * se, se, mid),
            Op("dense", se * mid, se, mid, 1, se * mid + 4 * mid, mid, se),
            Op("mul", 0, 1, mid, h * h, 0, n, n + mid)]
  ops.append(_conv_op("pointwise", h, h, 1, mid, cout))
  if layer.residual:
    n = h * h * cout
    ops.append(Op("add", 0, 1, cout, h * h, 0, n, 2 * n))
  return tuple(ops)


def _util(n: int) -> float:
  return n / (LANES * math.ceil(n / LANES))


def utilisation(op: Op) -> float:
  """Share of the 16x16x16 MAC array an op keeps busy (padding losses)."""
  return _util(op.reduce) * _util(op.channels) * _util(op.positions)


def op_ms(op: Op, params: EdgeTPUParams, clock: str) -> float:
  """Edge TPU time of one mapped op (ms)."""
  overhead = params.op_overhead_us * 1e-3 + (
      op.in_bytes + op.out_bytes) / (params.activation_gbs * 1e6)
  if op.macs == 0:
    return overhead
  eff = {"full": params.eff_full, "pointwise": params.eff_pointwise,
         "dense": params.eff_pointwise,
         "depthwise": params.eff_depthwise}[op.kind]
  macs_per_ms = MACS_PER_CYCLE * CLOCKS_MHZ[clock] * 1e3 * eff
  return op.macs / (macs_per_ms * utilisation(op)) + overhead


def layer_compute_ms(layer: Layer, *, clock: str = "max",
                     params: EdgeTPUParams | None = None) -> float:
  """Edge TPU compute of one layer as if mapped (a table entry), in ms."""
  p = params or DEFAULTS
  return math.fsum(op_ms(o, p, _check_clock(clock)) for o in layer_ops(layer))


def unsupported_op(layer: Layer) -> str | None:
  """The TFLite op of `layer` the Edge TPU cannot map, or None."""
  return UNSUPPORTED_ACTIVATIONS.get(layer.activation)


def first_unmapped(spec: NetSpec) -> int | None:
  """Index of the first layer holding an op the Edge TPU cannot map."""
  for i, layer in enumerate(spec.layers):
    if unsupported_op(layer):
      return i
  return None


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
def _split(spec: NetSpec) -> _Split:
  """Where the compiler cuts the graph: the first unmappable op (its
  layer's first op stays on the Edge TPU; all later ops run on the host)."""
  cut = first_unmapped(spec)
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
  """Host time minus Edge TPU time of a layer's ops left on the CPU."""
  ops = layer_ops(layer)[1 if skip_first else 0:]
  host = p.host_macs_per_ms(link)
  return math.fsum(o.macs / host - op_ms(o, p, clock) for o in ops)


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
             params: EdgeTPUParams | None = None) -> EdgeTPUEstimate:
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
  split = _split(spec)
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
        f"layers[{cut}] {l.type} ({l.key()}): {unsupported_op(l)} "
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
             params: EdgeTPUParams | None = None) -> float:
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
  terms = _terms(spec, p, link, clock, harness, _split(spec))
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
  constants plus `link`, `clock` and `harness` (tables written before the
  harness term have none and get no `harness_ms`). It is
  `hwnas.latency.NETWORK_MODELS['edgetpu-model']`.
  """
  p = _params_from_header(tuple(sorted(params.items())))
  link = _check_link(str(params.get("link", "usb3")))
  clock = _check_clock(str(params.get("clock", "max")))
  harness = params.get("harness")
  return _terms(spec, p, link, clock,
                None if harness is None else str(harness), _split(spec))


def layer_extras(layer: Layer) -> dict[str, Any]:
  ops = layer_ops(layer)
  extras: dict[str, Any] = {"macs": sum(o.macs for o in ops),
                            "int8_bytes": sum(o.weight_bytes for o in ops)}
  if unsupported_op(layer):
    extras["unsupported_op"] = unsupported_op(layer)
  return extras


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
        "validated (no fitted network falls back to the CPU; the one public "
        "report, google-coral/edgetpu#353, is far slower than this term: "
        "docs/edgetpu.md)")
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
