"""Edge TPU cost-model constants and per-op costs.

The parameters (`EdgeTPUParams`, the calibrated `DEFAULTS`), the ops a
layer lowers to (`layer_ops`: TFLite graph with BatchNorm folded) and the
Edge TPU time of one op (`op_ms`) or one layer as if mapped
(`layer_compute_ms`, what an estimated table stores). The whole-network
parts (`estimate`) are in `cost_model`; the split is the seam between what
a layer costs on its own and what depends on the whole network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

from hwnas import errors
from hwnas.edgetpu import ops as ops_lib
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
  host_gmacs_x86: float = 10.0    # host CPU rate, whole network on the CPU
  host_gmacs_arm: float = 2.0
  # How much slower an op runs on the host after the graph was cut than
  # in a CPU-only network (not fitted: no published Coral row falls back).
  # Re-derived from the public reports of networks that fall back from
  # their first layers on (docs/edgetpu_sources.md, "CPU fallback"):
  # x86, google-coral/edgetpu#272: YOLOv5s with hard-swish ran about
  # 2.2 G MACs in 370 ms (320 px) and 3.7 G MACs in 600 ms (416 px), ~6 G
  # MAC/s against the 12 G MAC/s of Coral's CPU-only column: 2.0. Arm,
  # #353: Keras MobileNetV3-Small (56.5 M MACs) in 200 ms, 0.28 G MAC/s
  # against 3.18: 11.2 (the host is not named; its 12 ms for an all-mapped
  # MobileNet V3 points to an Arm board).
  fallback_slowdown_x86: float = 2.0
  fallback_slowdown_arm: float = 11.2
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
    """Host rate of ops left on the CPU by a cut (MACs per ms)."""
    host = HOST_OF_LINK[_check_link(link)]
    return (getattr(self, f"host_gmacs_{host}") * 1e6
            / getattr(self, f"fallback_slowdown_{host}"))

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


def _conv_op(kind, pos_in, pos_out, taps, cin, cout, depthwise=False) -> Op:
  """A conv of `taps` kernel taps (k * k; k for a 1 x k time-series
  kernel) from `pos_in` to `pos_out` spatial positions."""
  reduce = taps if depthwise else taps * cin
  weights = reduce * cout
  return Op(kind, pos_out * weights, reduce, cout, pos_out,
            weights + 4 * cout, pos_out * cout, pos_in * cin)


@functools.lru_cache(maxsize=1 << 16)
def layer_ops(layer: Layer) -> tuple[Op, ...]:
  """The ops of a layer in execution order (TFLite graph, BN folded).

  The first op is followed by the layer's activation, so a layer with an
  unsupported activation keeps its first op on the Edge TPU (see
  `first_unmapped`).
  """
  # Positions in (s) and out (h): H * W, or T for a time series, which
  # TFLite computes as a height-1 image (CONV_2D / DEPTHWISE_CONV_2D with a
  # 1 x k kernel; docs/tables.md).
  t, s, h = layer.type, layer.input_positions, layer.output_positions
  k = layer.kernel if layer.dims == 1 else layer.kernel ** 2   # taps
  cin, cout, mid = layer.in_channels, layer.out_channels, layer.mid_channels
  if t == "conv":
    return (_conv_op("pointwise" if k == 1 else "full", s, h, k, cin, cout),)
  if t == "pool":
    return (Op("pool", 0, s, cin, 1, 0, cin, s * cin),)
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
    se, n = layer.se_channels, h * mid
    ops += [Op("pool", 0, h, mid, 1, 0, mid, n),
            Op("dense", mid * se, mid, se, 1, mid * se + 4 * se, se, mid),
            Op("dense", se * mid, se, mid, 1, se * mid + 4 * mid, mid, se),
            Op("mul", 0, 1, mid, h, 0, n, n + mid)]
  ops.append(_conv_op("pointwise", h, h, 1, mid, cout))
  if layer.residual:
    n = h * cout
    ops.append(Op("add", 0, 1, cout, h, 0, n, 2 * n))
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


def unsupported_op(layer: Layer, compiler: str | None = None) -> str | None:
  """The TFLite op of `layer` the Edge TPU compiler cannot map, or None.

  Asks `hwnas.edgetpu.ops` (the one operator table, per compiler version),
  as the export's operator check does.
  """
  return ops_lib.unmapped_activation_op(layer.activation, compiler)


def first_unmapped(spec: NetSpec, compiler: str | None = None) -> int | None:
  """Index of the first layer holding an op the Edge TPU cannot map."""
  for i, layer in enumerate(spec.layers):
    if unsupported_op(layer, compiler):
      return i
  return None


def layer_extras(layer: Layer) -> dict[str, Any]:
  ops = layer_ops(layer)
  extras: dict[str, Any] = {"macs": sum(o.macs for o in ops),
                            "int8_bytes": sum(o.weight_bytes for o in ops)}
  if unsupported_op(layer):
    extras["unsupported_op"] = unsupported_op(layer)
  return extras
