"""Calibration of the Edge TPU cost model on published whole-model latencies.

`calibrate` fits the free parameters of `hwnas.edgetpu.cost_model` (named
in `FITTED`) by bounded least squares on log latency against
`hwnas.edgetpu.published`, with weak priors from public rough constants
(docs/edgetpu.md); host CPU rates come from the published CPU-only
columns. `leave_one_out` refits without each network in turn;
`published_ranking` is the rank correlation with the published figures.
benchmarks/bench_edgetpu_model.py reproduces `cost_model.DEFAULTS` from
here (and a test checks that it still does).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas import counting
from hwnas.edgetpu import published as pub
from hwnas.edgetpu.cost_model import total_ms
from hwnas.edgetpu.layer_cost import FITTED, TIED, EdgeTPUParams


# Weak priors (value, spread as a factor) from docs/edgetpu.md: T0 0.3-0.9
# ms, link bandwidths ~0.4 / 0.35 GB/s (docs/edgetpu_sources.md), and a neutral 25% of
# peak for every op class, so the op-class difference comes from the data.
PRIORS = {
    "eff_full": (0.25, 4.0), "eff_pointwise": (0.25, 4.0),
    "eff_depthwise": (0.25, 4.0), "op_overhead_us": (10.0, 4.0),
    "activation_gbs": (20.0, 10.0),
    "fixed_ms_usb3": (0.5, 2.5), "fixed_ms_usb2": (2.0, 3.0),
    "fixed_ms_pcie": (0.5, 2.5), "bandwidth_gbs_usb3": (0.4, 2.0),
    "bandwidth_gbs_pcie": (0.35, 2.0),
    # Python `invoke` over C++: the Coral benchmarks page says only "may be
    # slower"; a weak prior of a few tenths of a millisecond.
    "python_ms_x86": (0.3, 3.0), "python_ms_arm": (0.5, 3.0),
}
BOUNDS = {
    "eff_full": (0.01, 1.0), "eff_pointwise": (0.01, 1.0),
    "eff_depthwise": (0.01, 1.0), "op_overhead_us": (0.1, 200.0),
    "activation_gbs": (0.5, 1e4),
    "fixed_ms_usb3": (0.05, 10.0), "fixed_ms_usb2": (0.05, 20.0),
    "fixed_ms_pcie": (0.05, 10.0), "bandwidth_gbs_usb3": (0.05, 4.0),
    "bandwidth_gbs_pcie": (0.05, 4.0),
    "python_ms_x86": (0.005, 5.0), "python_ms_arm": (0.005, 5.0),
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
  cpu_rows = pub.CPU_ROWS if cpu_rows is None else cpu_rows
  logs: dict[str, list[float]] = {}
  for r in cpu_rows:
    rate = counting.macs(pub.spec(r.network)) / (r.latency_ms * 1e6)
    logs.setdefault(r.host, []).append(math.log(rate))
  return {f"host_gmacs_{h}": float(math.exp(np.mean(v)))
          for h, v in logs.items()}


def _predict_rows(rows, specs, p: EdgeTPUParams) -> np.ndarray:
  return np.array([total_ms(specs[r.network], link=r.link, clock=r.clock,
                            harness=r.harness, params=p) for r in rows])


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
    rows: PublishedLatency rows; `published.rows(use='fit')` when
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
class HeldOut:
  """Predictions of rows by fits that never saw them.

  `groups[i]` (a network, or a source) was left out of the fit
  `params[i]`; `rows` are every row of every group, each predicted by the
  fit without its group.
  """

  by: str                               # 'network' | 'source'
  groups: tuple[str, ...]
  params: tuple[EdgeTPUParams, ...]     # fit without groups[i]
  rows: tuple[Any, ...]
  predicted_ms: tuple[float, ...]
  fit_of_row: tuple[int, ...]           # index into groups/params

  @property
  def networks(self) -> tuple[str, ...]:
    return self.groups

  def abs_pct_errors(self) -> np.ndarray:
    obs = np.array([r.latency_ms for r in self.rows])
    return np.abs(np.array(self.predicted_ms) / obs - 1) * 100

  def ratios(self) -> np.ndarray:
    """published / predicted per row (> 1: the fit predicted too low)."""
    return np.array([r.latency_ms / p
                     for r, p in zip(self.rows, self.predicted_ms)])


LeaveOneOut = HeldOut


def _held_out(by: str, rows: Sequence[Any] | None, fit_kw) -> HeldOut:
  rows = tuple(pub.rows(use="fit") if rows is None else rows)
  key = (lambda r: r.network) if by == "network" else (lambda r: r.source)
  groups = tuple(sorted({key(r) for r in rows}))
  fits, held, pred, idx = [], [], [], []
  for i, g in enumerate(groups):
    cal = calibrate([r for r in rows if key(r) != g], **fit_kw)
    fits.append(cal.params)
    for r in rows:
      if key(r) == g:
        held.append(r)
        idx.append(i)
        pred.append(total_ms(pub.spec(r.network), link=r.link,
                             clock=r.clock, harness=r.harness,
                             params=cal.params))
  return HeldOut(by, groups, tuple(fits), tuple(held), tuple(pred),
                 tuple(idx))


def leave_one_out(rows: Sequence[Any] | None = None, **fit_kw: Any
                  ) -> HeldOut:
  """Refits without each network (all its rows) and predicts its rows."""
  return _held_out("network", rows, fit_kw)


def leave_one_source_out(rows: Sequence[Any] | None = None, **fit_kw: Any
                         ) -> HeldOut:
  """Refits without each source (all its rows) and predicts its rows."""
  return _held_out("source", rows, fit_kw)


VGG = ("vgg16", "vgg19")


def held_out_summary(h: HeldOut, *, link: str = "usb3") -> dict[str, Any]:
  """Median and worst absolute error (%), and rank correlations.

  Spearman ranks the networks with rows on `link` at the max clock (each
  by the geometric mean of its published rows and of their held-out
  predictions), over all networks and over the non-VGG ones: VGG16/19
  are ~100x slower than the rest and make any ranking look good.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  err = h.abs_pct_errors()
  pub_of: dict[str, list[float]] = {}
  pred_of: dict[str, list[float]] = {}
  for r, p in zip(h.rows, h.predicted_ms):
    if r.link == link and r.clock == "max":
      pub_of.setdefault(r.network, []).append(math.log(r.latency_ms))
      pred_of.setdefault(r.network, []).append(math.log(p))

  def rho(nets):
    if len(nets) < 3:
      return float("nan")
    return float(stats.spearmanr([np.mean(pub_of[n]) for n in nets],
                                 [np.mean(pred_of[n]) for n in nets]
                                 ).statistic)

  nets = sorted(pub_of)
  small = [i for i, r in enumerate(h.rows)
           if counting.macs(pub.spec(r.network)) < 100e6]
  return {"rows": len(err), "median_pct": float(np.median(err)),
          "worst_pct": float(err.max()), "mean_pct": float(err.mean()),
          "spearman": rho(nets),
          "spearman_no_vgg": rho([n for n in nets if n not in VGG]),
          "networks": nets, "rows_below_100M_macs": len(small)}


# --------------------------------------------------------------- the band --

@dataclasses.dataclass(frozen=True)
class Band:
  """How far an estimate may be off, from leave-one-network-out.

  `refits` are the fits that each left one network out; `ratio_low` /
  `ratio_high` the smallest and largest published / held-out-predicted
  ratio over those networks (each network's rows by their geometric mean).
  A network's band is [min over refits and the central estimate x
  ratio_low, max x ratio_high] (ratios clipped to include 1): the spread of
  the constants plus the worst miss seen on a network the fit had not
  seen.
  """

  refits: tuple[EdgeTPUParams, ...]
  ratio_low: float
  ratio_high: float

  def to_dict(self) -> dict[str, Any]:
    return {"method": "leave-one-network-out: min/max over the refits, "
                      "times the smallest/largest published/held-out ratio",
            "ratio_low": self.ratio_low, "ratio_high": self.ratio_high,
            "refits": [p.to_dict() for p in self.refits]}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "Band":
    return cls(tuple(EdgeTPUParams.from_dict(p) for p in d["refits"]),
               float(d["ratio_low"]), float(d["ratio_high"]))


def band_from(h: HeldOut) -> Band:
  """The Band of a leave-one-network-out result."""
  logs: dict[str, list[float]] = {}
  for r, q in zip(h.rows, h.ratios()):
    logs.setdefault(r.network, []).append(math.log(q))
  per_net = [math.exp(np.mean(v)) for v in logs.values()]
  return Band(h.params, min(1.0, min(per_net)), max(1.0, max(per_net)))


@functools.lru_cache(maxsize=1)
def default_leave_one_out() -> HeldOut:
  """`leave_one_out()` of the shipped rows, computed once per process."""
  return leave_one_out()


def default_band() -> Band:
  """The Band of the shipped calibration."""
  return band_from(default_leave_one_out())


def predict_band(spec, band: Band, *, link: str = "usb3",
                 clock: str = "max", harness: str = "python",
                 central_ms: float | None = None) -> tuple[float, float]:
  """(low, high) ms of `spec` (see `Band`); `central_ms` is the estimate
  the band must contain (the `DEFAULTS` one when None)."""
  central = central_ms if central_ms is not None else total_ms(
      spec, link=link, clock=clock, harness=harness)
  alt = [total_ms(spec, link=link, clock=clock, harness=harness, params=p)
         for p in band.refits]
  return (min(alt + [central]) * band.ratio_low,
          max(alt + [central]) * band.ratio_high)


def published_ranking(predict_fn, rows: Sequence[Any] | None = None, *,
                      link: str = "usb3") -> tuple[list[str], np.ndarray,
                                                   np.ndarray, float]:
  """Spearman rank correlation of predictions with published latencies.

  The published value of a network is the geometric mean of its rows on
  `link`. Returns (networks, published ms, predicted ms, Spearman rho).
  """
  from scipy import stats
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

