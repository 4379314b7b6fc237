"""An analytic Coral Edge TPU latency model: ops, `estimate`, `explain`.

Nobody on the project owns a Coral device, so this model estimates what a
Coral Edge TPU would measure. It predicts a whole network's latency (ms,
batch 1, full int8) as named parts:

    total = compute + fixed + transfer + streaming + cpu_fallback

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
* `fixed`: per-invoke cost of the link and runtime (USB 3, USB 2, PCIe).
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
from hwnas.netspec import Layer, NetSpec

MODEL_NAME = "edgetpu-model"
MODEL_VERSION = "1"
LINKS = ("usb3", "usb2", "pcie")
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
  cache_bytes: int = CACHE_BYTES

  def fixed_ms(self, link: str) -> float:
    return getattr(self, f"fixed_ms_{_check_link(link)}")

  def bandwidth_bytes_per_ms(self, link: str) -> float:
    return getattr(self, f"bandwidth_gbs_{_check_link(link)}") * 1e6

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
          "bandwidth_gbs_usb3", "bandwidth_gbs_pcie")

# Parameters set equal to a fitted one. 1x1 convs and dense layers share
# the full conv's efficiency: they differ from it only through utilisation
# (reduction depth cin instead of cin*k*k; one output position for dense).
# Fitting them apart makes the fit unstable (see benchmarks).
TIED = {"eff_pointwise": "eff_full"}

# Result of `calibration.calibrate()` on `published` (see the module docstring).
DEFAULTS = EdgeTPUParams(
    eff_full=0.2944,
    eff_pointwise=0.2944,
    eff_depthwise=0.1897,
    op_overhead_us=4.383,
    activation_gbs=15.34,
    fixed_ms_usb3=0.255,
    fixed_ms_usb2=3.402,
    fixed_ms_pcie=0.3453,
    bandwidth_gbs_usb3=0.4993,
    bandwidth_gbs_usb2=0.033,
    bandwidth_gbs_pcie=0.4219,
    host_gmacs_x86=12.03,
    host_gmacs_arm=3.178,
)


def _check_link(link: str) -> str:
  if link not in LINKS:
    raise errors.HwnasError(f"--link {link!r} is not a known Edge TPU link; "
                            f"use one of {', '.join(LINKS)}")
  return link


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
  compute_ms: float
  fixed_ms: float
  transfer_ms: float
  streaming_ms: float
  cpu_fallback_ms: float
  total_ms: float
  on_chip_bytes: int
  off_chip_bytes: int
  unmapped: tuple[str, ...]          # one line per op left on the CPU
  layers: tuple[LayerEstimate, ...]

  def parts(self) -> dict[str, float]:
    """The named parts that add up to `total_ms`."""
    return {"compute_ms": self.compute_ms, "fixed_ms": self.fixed_ms,
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
           split: _Split) -> dict[str, float]:
  bw = p.bandwidth_bytes_per_ms(link)
  in_bytes = spec.resolution * spec.resolution * spec.in_channels
  cut = split.first_unmapped
  cpu_ms = 0.0
  if cut is not None:
    cpu_ms = _fallback_ms(spec.layers[cut], True, p, link, clock) + math.fsum(
        _fallback_ms(l, False, p, link, clock) for l in spec.layers[cut + 1:])
  return {
      "fixed_ms": p.fixed_ms(link),
      "transfer_ms": (in_bytes + split.tpu_out_bytes) / bw,
      "streaming_ms": max(0, split.mapped_bytes - p.cache_bytes) / bw,
      "cpu_fallback_ms": cpu_ms,
  }


def estimate(spec: NetSpec, *, link: str = "usb3", clock: str = "max",
             params: EdgeTPUParams | None = None) -> EdgeTPUEstimate:
  """Estimates the Coral Edge TPU latency of a network, in named parts.

  Args:
    spec: the network.
    link: 'usb3' (USB Accelerator on a desktop), 'usb2' (USB 2 host such as
      a Raspberry Pi 3) or 'pcie' (Dev Board, M.2/PCIe modules).
    clock: 'max' (500 MHz: libedgetpu1-max, or PCIe) or 'std' (250 MHz:
      libedgetpu1-std on USB).
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
  _check_link(link), _check_clock(clock)
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
  terms = _terms(spec, p, link, clock, split)
  compute = math.fsum(l.compute_ms for l in layers)
  mapped_bytes = split.mapped_bytes
  return EdgeTPUEstimate(
      spec.name, link, clock, compute, terms["fixed_ms"],
      terms["transfer_ms"], terms["streaming_ms"], terms["cpu_fallback_ms"],
      compute + math.fsum(terms.values()),
      min(mapped_bytes, p.cache_bytes),
      max(0, mapped_bytes - p.cache_bytes), tuple(unmapped), tuple(layers))


@functools.lru_cache(maxsize=64)
def _params_from_header(items: tuple) -> EdgeTPUParams:
  return EdgeTPUParams.from_dict(dict(items))


def network_terms(spec: NetSpec, params: Mapping[str, Any]
                  ) -> dict[str, float]:
  """The table network model: whole-network parts, as `{name: ms}`.

  `params` is the table header's `network_model.params`: the model
  constants plus `link` and `clock`. Registered as 'edgetpu-model'.
  """
  p = _params_from_header(tuple(sorted(params.items())))
  link = _check_link(str(params.get("link", "usb3")))
  clock = _check_clock(str(params.get("clock", "max")))
  return _terms(spec, p, link, clock, _split(spec))




def layer_extras(layer: Layer) -> dict[str, Any]:
  ops = layer_ops(layer)
  extras: dict[str, Any] = {"macs": sum(o.macs for o in ops),
                            "int8_bytes": sum(o.weight_bytes for o in ops)}
  if unsupported_op(layer):
    extras["unsupported_op"] = unsupported_op(layer)
  return extras

def explain(e: EdgeTPUEstimate) -> list[str]:
  """Human-readable lines: why this network is fast or slow on the chip."""
  mib = lambda b: b / 2**20
  lines = [f"Edge TPU estimate ({e.link}, {e.clock} clock): "
           f"{e.total_ms:.3f} ms = " + " + ".join(
               f"{k[:-3]} {v:.3f}" for k, v in e.parts().items()),
           f"parameters: {mib(e.on_chip_bytes):.2f} MiB cached on chip, "
           f"{mib(e.off_chip_bytes):.2f} MiB streamed over {e.link} every "
           "inference"]
  lines += [f"CPU fallback: {u}" for u in e.unmapped]
  lines.append(MEASURE_HINT)
  return lines

