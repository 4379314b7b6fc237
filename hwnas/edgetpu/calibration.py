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
import math
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas import counting
from hwnas.edgetpu import published as pub
from hwnas.edgetpu.cost_model import (FITTED, TIED, EdgeTPUParams, estimate)


# Weak priors (value, spread as a factor) from docs/edgetpu.md: T0 0.3-0.9
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

