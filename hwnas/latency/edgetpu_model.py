"""An analytic Coral Edge TPU latency model, calibrated on published figures.

Nobody on the project owns a Coral device, so this model estimates what the
`edgetpu` backend would measure. It predicts a whole network's latency (ms,
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

Free parameters (`FITTED`: full-conv and depthwise efficiency, activation
bandwidth, per-op cost, per-link fixed cost and bandwidth) are fitted by
`calibrate` with bounded least squares on log latency against
`hwnas.latency.edgetpu_published` (Coral's own benchmarks and model
pages), with weak priors from `edgetpu_facts.md`; host CPU rates are
fitted on the published CPU-only columns. `DEFAULTS` holds the result
(benchmarks/bench_edgetpu_model.py reproduces it, and a test checks that it
still does).

Tables: `make_table(space, link=..., clock=...)` writes an `estimated`
table whose entries are per-layer compute and whose header carries a
`network_model` (`edgetpu-model`) with the other parts, so
`table.predict(spec) == estimate(spec).total_ms`. The `edgetpu-model`
measurement backend and network model register themselves on import.

Deviation from STYLE.md: one ~850-line module (model, estimate, tables,
calibration) because the calibration is the model's own and shares its
private pieces; sections are marked.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np

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

# Result of `calibrate()` on edgetpu_published (see the module docstring).
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




# ------------------------------------------------------------ calibration --

# Weak priors (value, spread as a factor) from edgetpu_facts.md: T0 0.3-0.9
# ms, link bandwidths ~0.4 / 0.35 GB/s (section 5), and a neutral 25% of
# peak for every op class, so the op-class difference comes from the data.
PRIORS = {
    "eff_full": (0.25, 4.0), "eff_pointwise": (0.25, 4.0),
    "eff_depthwise": (0.25, 4.0), "op_overhead_us": (10.0, 4.0),
    "activation_gbs": (20.0, 10.0),
    "fixed_ms_usb3": (0.5, 2.5), "fixed_ms_usb2": (2.0, 3.0),
    "fixed_ms_pcie": (0.5, 2.5), "bandwidth_gbs_usb3": (0.4, 2.0),
    "bandwidth_gbs_pcie": (0.35, 2.0),
}
BOUNDS = {
    "eff_full": (0.01, 1.0), "eff_pointwise": (0.01, 1.0),
    "eff_depthwise": (0.01, 1.0), "op_overhead_us": (0.1, 200.0),
    "activation_gbs": (0.5, 1e4),
    "fixed_ms_usb3": (0.05, 10.0), "fixed_ms_usb2": (0.05, 20.0),
    "fixed_ms_pcie": (0.05, 10.0), "bandwidth_gbs_usb3": (0.05, 4.0),
    "bandwidth_gbs_pcie": (0.05, 4.0),
}
OBS_SIGMA = 0.1   # spread of log latency between published sources


@dataclasses.dataclass(frozen=True)
class Calibration:
  """A fit: parameters, the rows used and their residuals."""

  params: EdgeTPUParams
  rows: tuple[Any, ...]                 # PublishedLatency rows fitted
  predicted_ms: tuple[float, ...]       # per row, same order
  cost: float                           # final least-squares cost


def fit_host_rates(cpu_rows: Sequence[Any] | None = None
                   ) -> dict[str, float]:
  """Host CPU GMAC/s per host: geometric mean of MACs / published time."""
  from hwnas import counting
  from hwnas.latency import edgetpu_published as pub
  cpu_rows = pub.CPU_ROWS if cpu_rows is None else cpu_rows
  logs: dict[str, list[float]] = {}
  for r in cpu_rows:
    rate = counting.macs(pub.spec(r.network)) / (r.latency_ms * 1e6)
    logs.setdefault(r.host, []).append(math.log(rate))
  return {f"host_gmacs_{h}": float(math.exp(np.mean(v)))
          for h, v in logs.items()}


def _predict_rows(rows, specs, p: EdgeTPUParams) -> np.ndarray:
  return np.array([estimate(specs[r.network], link=r.link, clock=r.clock,
                            params=p).total_ms for r in rows])


def calibrate(rows: Sequence[Any] | None = None, *,
              cpu_rows: Sequence[Any] | None = None,
              base: EdgeTPUParams | None = None,
              fitted: Sequence[str] = FITTED,
              tied: Mapping[str, str] | None = None) -> Calibration:
  """Fits `FITTED` parameters to published latencies (log least squares).

  Each (network, link) group weighs as one observation whatever its number
  of published rows; the priors in `PRIORS` keep parameters that the rows
  cannot pin down near the published rough constants.

  Args:
    rows: PublishedLatency rows; `edgetpu_published.rows(use='fit')` when
      None.
    cpu_rows: host-only rows for the CPU-fallback rates; the published
      CPU column when None.
    base: values of the parameters that are not fitted.
    fitted: names of the parameters to fit (a subset of `FITTED`).
    tied: {parameter: fitted parameter it equals}; `TIED` when None.

  Returns:
    The Calibration (parameters, rows, per-row predictions, cost).
  """
  from scipy import optimize
  from hwnas.latency import edgetpu_published as pub
  rows = tuple(pub.rows(use="fit") if rows is None else rows)
  base = dataclasses.replace(base or EdgeTPUParams(),
                             **fit_host_rates(cpu_rows))
  specs = {n: pub.spec(n) for n in {r.network for r in rows}}
  groups: dict[tuple[str, str], int] = {}
  for r in rows:
    groups[(r.network, r.link)] = groups.get((r.network, r.link), 0) + 1
  weights = np.array([1 / math.sqrt(groups[(r.network, r.link)])
                      for r in rows]) / OBS_SIGMA
  obs = np.log([r.latency_ms for r in rows])
  fitted = tuple(fitted)
  tied = TIED if tied is None else tied
  prior_mu = np.log([PRIORS[n][0] for n in fitted])
  prior_sd = np.log([PRIORS[n][1] for n in fitted])
  lo = np.log([BOUNDS[n][0] for n in fitted])
  hi = np.log([BOUNDS[n][1] for n in fitted])

  def params_of(x):
    values = {n: float(math.exp(v)) for n, v in zip(fitted, x)}
    values.update({a: values[b] for a, b in tied.items() if b in values})
    return dataclasses.replace(base, **values)

  def residuals(x):
    pred = np.log(_predict_rows(rows, specs, params_of(x)))
    return np.concatenate([(pred - obs) * weights, (x - prior_mu) / prior_sd])

  x0 = np.clip(prior_mu, lo + 1e-6, hi - 1e-6)
  res = optimize.least_squares(residuals, x0, bounds=(lo, hi), x_scale=1.0)
  p = params_of(res.x)
  return Calibration(p, rows, tuple(_predict_rows(rows, specs, p)),
                     float(res.cost))


@dataclasses.dataclass(frozen=True)
class LeaveOneOut:
  """Leave-one-network-out: each network predicted by a fit without it."""

  networks: tuple[str, ...]
  params: tuple[EdgeTPUParams, ...]     # fit without networks[i]
  rows: tuple[Any, ...]                 # every held-out row
  predicted_ms: tuple[float, ...]       # its prediction by that fit

  def abs_pct_errors(self) -> np.ndarray:
    obs = np.array([r.latency_ms for r in self.rows])
    return np.abs(np.array(self.predicted_ms) / obs - 1) * 100


def leave_one_out(rows: Sequence[Any] | None = None, **fit_kw: Any
                  ) -> LeaveOneOut:
  """Refits without each network in turn and predicts its rows."""
  from hwnas.latency import edgetpu_published as pub
  rows = tuple(pub.rows(use="fit") if rows is None else rows)
  nets = tuple(sorted({r.network for r in rows}))
  fits, held, pred = [], [], []
  for n in nets:
    cal = calibrate([r for r in rows if r.network != n], **fit_kw)
    out = [r for r in rows if r.network == n]
    spec = pub.spec(n)
    fits.append(cal.params)
    held += out
    pred += [estimate(spec, link=r.link, clock=r.clock,
                      params=cal.params).total_ms for r in out]
  return LeaveOneOut(nets, tuple(fits), tuple(held), tuple(pred))


def published_ranking(predict_fn, rows: Sequence[Any] | None = None, *,
                      link: str = "usb3") -> tuple[list[str], np.ndarray,
                                                   np.ndarray, float]:
  """Spearman rank correlation of predictions with published latencies.

  The published value of a network is the geometric mean of its rows on
  `link`. Returns (networks, published ms, predicted ms, Spearman rho).
  """
  from scipy import stats
  from hwnas.latency import edgetpu_published as pub
  rows = pub.rows(use="fit") if rows is None else rows
  by: dict[str, list[float]] = {}
  for r in rows:
    if r.link == link and r.clock == "max":
      by.setdefault(r.network, []).append(math.log(r.latency_ms))
  nets = sorted(by)
  published = np.exp([np.mean(by[n]) for n in nets])
  predicted = np.array([predict_fn(n) for n in nets])
  rho = float(stats.spearmanr(published, predicted).statistic)
  return nets, published, predicted, rho


# ----------------------------------------------------------------- tables --

def _provenance(link: str, clock: str, space_name: str = "S"
                ) -> dict[str, Any]:
  from hwnas.latency import edgetpu_published as pub
  fit = pub.rows(use="fit")
  return {
      "kind": "estimated", "model": MODEL_NAME, "version": MODEL_VERSION,
      "module": __name__, "link": link, "clock": clock,
      "calibration": {
          "data": (f"hwnas.latency.edgetpu_published: {len(fit)} published "
                   f"whole-model latencies of {len(pub.networks())} networks"
                   " (Coral benchmarks and models pages, pycoral reference "
                   "CSVs, google-coral/edgetpu issue #151)"),
          "method": ("bounded least squares on log latency with weak priors "
                     "(hwnas.latency.edgetpu_model.calibrate)"),
          "fitted": list(FITTED)},
      "measure_real": MEASURE_HINT,
      "command": (f"hwnas table measure --backend {MODEL_NAME} --space "
                  f"{space_name} --link {link} --option clock={clock} "
                  "--out T"),
  }


def _device(link: str, clock: str) -> str:
  device = {"usb3": "Coral USB Accelerator on a desktop host (USB 3)",
            "usb2": "Coral USB Accelerator on a USB 2 host",
            "pcie": "Coral Edge TPU on PCIe (Dev Board / M.2)"}[link]
  return f"{device}, {CLOCKS_MHZ[clock]:g} MHz (estimated)"


def _network_model_header(p: EdgeTPUParams, link: str, clock: str
                          ) -> dict[str, Any]:
  return {"name": MODEL_NAME, "version": MODEL_VERSION, "module": __name__,
          "params": {**p.to_dict(), "link": link, "clock": clock}}


def _layer_extras(layer: Layer) -> dict[str, Any]:
  ops = layer_ops(layer)
  extras: dict[str, Any] = {"macs": sum(o.macs for o in ops),
                            "int8_bytes": sum(o.weight_bytes for o in ops)}
  if unsupported_op(layer):
    extras["unsupported_op"] = unsupported_op(layer)
  return extras


def make_table(space, *, link: str = "usb3", clock: str = "max",
               params: EdgeTPUParams | None = None, path: str = ""):
  """An estimated LatencyTable for every layer reachable in `space`.

  Entries are per-layer Edge TPU compute (`layer_compute_ms`); the header's
  `network_model` adds fixed cost, transfer, parameter streaming and CPU
  fallback, so `table.predict(spec) == estimate(spec, ...).total_ms`.

  Args:
    space: a hwnas.space.SearchSpace.
    link: 'usb3' | 'usb2' | 'pcie'.
    clock: 'max' | 'std'.
    params: model constants (`DEFAULTS` when None).
    path: where the table will be saved (recorded in the value only).

  Returns:
    A hwnas.latency.table.LatencyTable (not yet saved).
  """
  from hwnas.latency import space_layers, table
  p = params or DEFAULTS
  _check_link(link), _check_clock(clock)
  entries = [table.Entry(l, layer_compute_ms(l, clock=clock, params=p),
                         extras=_layer_extras(l))
             for l in sorted(space_layers.enumerate_layers(space))]
  header = table.make_header(
      device=_device(link, clock), backend=MODEL_NAME, runtime=MODEL_NAME,
      runtime_version=MODEL_VERSION, precision="int8", batch_size=1,
      threads=1, warmup=0, repeats=0, spaces=[space.id],
      provenance=_provenance(link, clock, space.name),
      network_model=_network_model_header(p, link, clock),
      notes=MEASURE_HINT)
  return table.new_table(header, entries, path)


def measure_edgetpu_model(space, *, link: str = "usb3", clock: str = "max",
                          out: str | None = None,
                          params: EdgeTPUParams | None = None):
  """Writes the estimated table of `space` to `out` (CLI backend hook).

  Args:
    space: a SearchSpace or the name/path of one.
    link, clock, params: as for `make_table`.
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
  t = make_table(space, link=link, clock=clock, params=params, path=str(out))
  t.save(out)
  return t


def estimate_for_table(table, spec: NetSpec) -> EdgeTPUEstimate:
  """`estimate` with the link, clock and constants an estimated table
  was made with (its header's `network_model.params`)."""
  nm = table.network_model
  if not nm or nm.get("name") != MODEL_NAME:
    raise errors.HwnasError(
        f"{table.path or '<table>'}: header.network_model is not "
        f"{MODEL_NAME!r}; this table was not made by the Edge TPU model")
  prm = nm.get("params", {})
  return estimate(spec, link=str(prm.get("link", "usb3")),
                  clock=str(prm.get("clock", "max")),
                  params=EdgeTPUParams.from_dict(prm))


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
  from scipy import stats
  from hwnas.latency import edgetpu_published as pub
  if table is not None:
    prm = (table.network_model or {}).get("params", {})
    estimate_for_table(table, pub.spec("mobilenet_v1_1.0"))  # checks kind
    p = EdgeTPUParams.from_dict(prm)
    link, clock = str(prm.get("link", "usb3")), str(prm.get("clock", "max"))
  else:
    p, link, clock = DEFAULTS, _check_link(link or "usb3"), "max"
  rows = []
  for r in pub.rows(use=None):
    if r.link != link or r.clock != clock:
      continue
    pred = estimate(pub.spec(r.network), link=link, clock=clock,
                    params=p).total_ms
    rows.append({"network": r.network, "source": r.source, "use": r.use,
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

  Options (`--option k=v`, `--link`): link ('usb3' | 'usb2' | 'pcie') and
  clock ('max' | 'std').
  """

  name = MODEL_NAME
  precision = "int8"

  def __init__(self, threads: int = 0, seed: int = 0, link: str = "usb3",
               clock: str = "max", params: EdgeTPUParams | None = None,
               **unused: Any):
    if unused:
      raise errors.HwnasError(
          f"--backend {MODEL_NAME} takes no option(s) "
          f"{', '.join(sorted(unused))}; it takes link= and clock=")
    del threads, seed  # nothing is timed
    self.link, self.clock = _check_link(link), _check_clock(clock)
    self.params = params or DEFAULTS

  def header_fields(self) -> dict[str, Any]:
    return {
        "device": _device(self.link, self.clock), "runtime": MODEL_NAME,
        "runtime_version": MODEL_VERSION,
        "provenance": _provenance(self.link, self.clock),
        "network_model": _network_model_header(self.params, self.link,
                                               self.clock),
        "notes": MEASURE_HINT}

  def time_layer(self, layer: Layer, *, batch_size: int = 1,
                 warmup: int = 0, repeats: int = 0):
    from hwnas.latency.backends import Timing
    _check_batch(batch_size)
    return Timing(layer_compute_ms(layer, clock=self.clock,
                                   params=self.params), None, None, 0,
                  _layer_extras(layer))

  def time_network(self, spec: NetSpec, *, batch_size: int = 1,
                   warmup: int = 0, repeats: int = 0):
    from hwnas.latency.backends import Timing
    _check_batch(batch_size)
    e = estimate(spec, link=self.link, clock=self.clock, params=self.params)
    return Timing(e.total_ms, None, None, 0,
                  {**e.parts(), "off_chip_bytes": e.off_chip_bytes,
                   "unmapped": list(e.unmapped)})


def _check_batch(batch_size: int) -> None:
  if batch_size != 1:
    raise errors.HwnasError(f"--batch-size {batch_size}: the {MODEL_NAME} "
                            "backend models batch 1 only; use --batch-size 1")


def _register() -> None:
  from hwnas.latency import backends, table
  table.register_network_model(MODEL_NAME, network_terms)
  backends.register_backend(MODEL_NAME, EdgeTPUModelBackend)


_register()
