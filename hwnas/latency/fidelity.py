"""`hwnas table validate`: how well a table predicts whole networks.

Samples random architectures of a space (at the table's resolutions),
measures each whole network end to end with the table's own backend and
settings, and compares with the table's prediction: MAPE, share within
+-5% / +-10%, Kendall tau and Spearman rho (scipy.stats), and a scatter
plot. Optionally fits a calibration on a random half,

    measured ~= a * sum(entries) + b + c_per_layer * num_layers,

(least squares on relative error; the per-layer term absorbs the per-call
overhead that timing layers one at a time adds to every entry but a network
pays once; the simplest of a*sum, a*sum+b and the full form that wins
leave-one-out on the fit half is kept)
and reports the error on the held-out other half before it is stored in
the table's header together with a fidelity summary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.latency import table as tbl
from hwnas.latency.backends import Backend
from hwnas.latency.timing import Timing, load_note, time_interleaved
from hwnas.space import SearchSpace


def metrics(predicted: Sequence[float], measured: Sequence[float]
            ) -> dict[str, float]:
  """MAPE (%), share within +-5% / +-10% (%), Kendall tau, Spearman rho."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  p = np.asarray(predicted, np.float64)
  m = np.asarray(measured, np.float64)
  rel = np.abs(p - m) / m
  out = {"n": int(m.size), "mape_pct": float(100 * rel.mean()),
         "within_5_pct": float(100 * (rel <= 0.05).mean()),
         "within_10_pct": float(100 * (rel <= 0.10).mean()),
         "max_error_pct": float(100 * rel.max()),
         "kendall_tau": float("nan"), "spearman_rho": float("nan")}
  if m.size >= 3:
    out["kendall_tau"] = float(stats.kendalltau(p, m).statistic)
    out["spearman_rho"] = float(stats.spearmanr(p, m).statistic)
  return out


_FORMS = (("a",), ("a", "b"), ("a", "b", "c_per_layer"))


def _lstsq(cols: list[np.ndarray], m: np.ndarray) -> np.ndarray:
  x = np.stack(cols, axis=1) / m[:, None]   # minimise relative error
  coef, *_ = np.linalg.lstsq(x, np.ones_like(m), rcond=None)
  return coef


def fit_linear_calibration(layer_sums: Sequence[float],
                           num_layers: Sequence[int],
                           measured: Sequence[float]) -> dict[str, Any]:
  """Least-squares `linear` calibration, relative-error weighted.

  Fits measured ~= a * sum, a * sum + b and a * sum + b + c * layers, and
  keeps the form with the lowest leave-one-out relative error (with few
  networks the richer forms overfit: layer count and sum are correlated).
  """
  s = np.asarray(layer_sums, np.float64)
  n = np.asarray(num_layers, np.float64)
  m = np.asarray(measured, np.float64)
  all_cols = {"a": s, "b": np.ones_like(s), "c_per_layer": n}
  best = None
  for form in _FORMS:
    if len(form) >= len(m) or (form[-1] == "c_per_layer" and np.ptp(n) == 0):
      continue
    errs = []
    for i in range(len(m)):
      keep = np.arange(len(m)) != i
      coef = _lstsq([all_cols[k][keep] for k in form], m[keep])
      pred = sum(c * all_cols[k][i] for c, k in zip(coef, form))
      errs.append(abs(pred - m[i]) / m[i])
    loo = float(np.mean(errs))
    if best is None or loo < best[0]:
      best = (loo, form)
  form = best[1] if best else ("a",)
  coef = dict(zip(form, _lstsq([all_cols[k] for k in form], m).tolist()))
  return {"type": "linear", "a": coef["a"], "b": coef.get("b", 0.0),
          "c_per_layer": coef.get("c_per_layer", 0.0),
          "form": "+".join(form),
          "loo_mape_pct": round(100 * best[0], 3) if best else None}


def apply_calibration(cal: dict[str, Any], s: np.ndarray,
                      n: np.ndarray) -> np.ndarray:
  """A `linear` calibration applied to layer sums `s` of `n`-layer nets."""
  return cal["a"] * s + cal["b"] + cal.get("c_per_layer", 0.0) * n


@dataclasses.dataclass(frozen=True)
class FidelityReport:
  """Predicted vs measured latency of sampled networks (ms)."""

  table: str
  provenance: str
  space: str
  archs: tuple[str, ...]
  layer_sums: tuple[float, ...]
  num_layers: tuple[int, ...]
  predicted: tuple[float, ...]       # with the table's calibration as is
  measured: tuple[float, ...]
  measured_p10: tuple[float, ...]
  measured_p90: tuple[float, ...]
  metrics: dict[str, float]          # predicted vs measured, all samples
  measured_extras: tuple[dict[str, Any], ...] = ()   # other clocks/stats
  calibration: dict[str, Any] | None = None    # fitted on `fit_idx`
  fit_idx: tuple[int, ...] = ()
  holdout_idx: tuple[int, ...] = ()
  holdout_before: dict[str, float] | None = None   # table as is
  holdout_after: dict[str, float] | None = None    # with the fitted cal
  load: str = ""
  plot: str | None = None

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def table_resolutions(table: tbl.LatencyTable,
                      space: SearchSpace) -> list[int]:
  """The resolutions a table was measured at for `space`."""
  res = table.header.get("resolutions", {})
  got = res.get(space.id) if isinstance(res, dict) else None
  return sorted(got) if got else list(space.resolutions)


def sample_archs(space: SearchSpace, n: int, rng: np.random.Generator,
                 resolutions: Sequence[int]) -> list[arch_lib.ArchChoice]:
  """`n` distinct random architectures at the given resolutions."""
  out, seen = [], set()
  for _ in range(50 * n):
    a = arch_lib.sample(rng, space)
    a = dataclasses.replace(a, resolution=int(rng.choice(resolutions)))
    if a not in seen:
      seen.add(a)
      out.append(a)
    if len(out) == n:
      break
  return out


def time_networks(be, archs, specs, h, warmup, repeats, rounds, chunk,
                  progress) -> list[Timing]:
  """Times whole networks like `measure` times layers: `chunk` networks
  built, then timed in interleaved rounds, with the table's timer."""
  from hwnas.latency.measure import _progress  # pylint: disable=g-import-not-at-top
  timer = h.get("timer", "wall")
  rounds = rounds if rounds is not None else h.get("rounds", 1)
  out: list[Timing] = []
  with _progress(progress) as bar:
    task = bar.add_task(f"validate {be.name}", total=len(specs), key="")
    if not hasattr(be, "prepare_network") or rounds <= 1:
      for a, spec in zip(archs, specs):
        bar.update(task, key=arch_lib.to_string(a))
        out.append(be.time_network(spec, batch_size=h["batch_size"],
                                   warmup=warmup, repeats=repeats))
        bar.advance(task)
      return out
    chunk = chunk if chunk > 0 else max(1, len(specs))
    for start in range(0, len(specs), chunk):
      prepared = []
      for a, spec in zip(archs[start:start + chunk],
                         specs[start:start + chunk]):
        bar.update(task, key=f"build {arch_lib.to_string(a)}")
        prepared.append(be.prepare_network(spec, h["batch_size"]))
      bar.update(task, key=f"timing {len(prepared)} networks")
      out += time_interleaved(prepared, warmup=warmup, repeats=repeats,
                              rounds=rounds, timer=timer, seed=start)
      bar.advance(task, len(prepared))
  return out


def validate(table: tbl.LatencyTable, space: SearchSpace, samples: int, *,
             rng: np.random.Generator, warmup: int = 10, repeats: int = 50,
             fit_calibration: bool = False,
             plot_path: str | None = None, progress: bool = False,
             backend: Backend | None = None, rounds: int | None = None,
             chunk: int = 0) -> FidelityReport:
  """Measures `samples` random networks and compares with the table.

  Args:
    table: the table to validate (its backend and settings are reused).
    space: the space to sample networks from.
    samples: number of networks (>= 4 with `fit_calibration`).
    rng: sampling generator.
    warmup, repeats: timing of each whole network.
    fit_calibration: fit a calibration on a random half, report the other.
    plot_path: write a scatter PNG there.
    progress: show a progress bar.
    backend: a backend object (default: the table's, by name).
    rounds: interleaved timing rounds (default: the table's `rounds`);
      `chunk` networks are built and timed together (0: all of them, so
      that every network sees the same machine conditions: with chunks of
      10, two validations of the same 60 networks differed by 5% MAPE,
      Kendall tau 0.89, on this shared machine).

  Returns:
    The FidelityReport.
  """
  if fit_calibration and samples < 4:
    raise errors.HwnasError("--samples must be at least 4 to fit a "
                            "calibration on half and test on the rest")
  h = table.header
  archs = sample_archs(space, samples, rng, table_resolutions(table, space))
  specs = [arch_lib.decode(space, a) for a in archs]
  missing = table.missing(l for s in specs for l in s.layers)
  if missing:
    raise tbl.TableError(table.missing_message(
        missing, f"the {len(specs)} sampled networks"))
  opts = {"timer": h["timer"]} if h.get("timer", "wall") != "wall" else {}
  from hwnas.latency.backend_kinds import get_backend  # pylint: disable=g-import-not-at-top
  be = backend or get_backend(table.backend, threads=h["threads"], **opts)
  load_start = load_note()
  sums = np.array([table.layer_sum(s) for s in specs])
  nl = np.array([len(s.layers) for s in specs])
  pred = np.array([table.predict(s) for s in specs])
  timings = time_networks(be, archs, specs, h, warmup, repeats, rounds,
                           chunk, progress)
  meas = np.array([t.latency_ms for t in timings])
  p10 = [t.p10_ms if t.p10_ms is not None else math.nan for t in timings]
  p90 = [t.p90_ms if t.p90_ms is not None else math.nan for t in timings]
  extras = [dict(t.extras) for t in timings]
  rep = FidelityReport(
      table=table.path, provenance=table.describe(), space=space.id,
      archs=tuple(arch_lib.to_string(a) for a in archs),
      layer_sums=tuple(sums.tolist()), num_layers=tuple(nl.tolist()),
      predicted=tuple(pred.tolist()), measured=tuple(meas.tolist()),
      measured_p10=tuple(p10), measured_p90=tuple(p90),
      metrics=metrics(pred, meas), measured_extras=tuple(extras),
      load=f"{load_start}; {load_note().replace('at start', 'at end')}")
  if fit_calibration:
    rep = _with_fitted_calibration(rep, rng, sums, nl, pred, meas)
  if plot_path:
    plot(rep, plot_path)
    rep = dataclasses.replace(rep, plot=str(plot_path))
  return rep


def _with_fitted_calibration(rep: FidelityReport, rng: np.random.Generator,
                             sums: np.ndarray, nl: np.ndarray,
                             pred: np.ndarray, meas: np.ndarray
                             ) -> FidelityReport:
  """`rep` with a calibration fitted on a random half, scored on the rest."""
  perm = rng.permutation(len(meas))
  fit, hold = np.sort(perm[:len(perm) // 2]), np.sort(perm[len(perm) // 2:])
  cal = fit_linear_calibration(sums[fit], nl[fit], meas[fit])
  return dataclasses.replace(
      rep, calibration=cal, fit_idx=tuple(fit.tolist()),
      holdout_idx=tuple(hold.tolist()),
      holdout_before=metrics(pred[hold], meas[hold]),
      holdout_after=metrics(apply_calibration(cal, sums[hold], nl[hold]),
                            meas[hold]))



def plot(rep: FidelityReport, path: str) -> None:
  """Scatter of predicted vs measured with the y = x line and a +-10% band."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  m = np.asarray(rep.measured)
  fig, ax = plt.subplots(figsize=(5.5, 5))
  ax.scatter(m, rep.predicted, s=14, label="table as is", alpha=0.8)
  if rep.calibration:
    cal = apply_calibration(rep.calibration, np.asarray(rep.layer_sums),
                 np.asarray(rep.num_layers))
    hold = list(rep.holdout_idx)
    ax.scatter(m[hold], cal[hold], s=14, marker="x",
               label="calibrated (held-out half)")
  lo, hi = float(m.min()) * 0.8, float(m.max()) * 1.2
  xs = np.linspace(lo, hi, 10)
  ax.plot(xs, xs, "k-", lw=0.8)
  ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.15,
                  label="±10%")
  ax.set_xlabel("measured latency (ms)")
  ax.set_ylabel("predicted latency (ms)")
  mt = rep.metrics
  ax.set_title(f"{rep.space}: MAPE {mt['mape_pct']:.1f}%, "
               f"tau {mt['kendall_tau']:.2f}", fontsize=10)
  ax.legend(fontsize=8)
  fig.text(0.01, 0.01, rep.provenance[:110], fontsize=5)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _fmt(m: dict[str, float]) -> str:
  return (f"MAPE {m['mape_pct']:.2f}%  within ±5% {m['within_5_pct']:.0f}%  "
          f"within ±10% {m['within_10_pct']:.0f}%  "
          f"max {m['max_error_pct']:.1f}%"
          f"  Kendall tau {m['kendall_tau']:.3f}  Spearman "
          f"{m['spearman_rho']:.3f}  (n={m['n']})")


def format_report(rep: FidelityReport) -> str:
  """A short text report (also valid markdown)."""
  lines = [f"table: {rep.table}", f"  {rep.provenance}",
           f"space: {rep.space}; {len(rep.measured)} random networks, "
           f"measured {min(rep.measured):.3f}..{max(rep.measured):.3f} ms",
           f"machine: {rep.load}",
           f"table as is:           {_fmt(rep.metrics)}"]
  if rep.calibration:
    c = rep.calibration
    lines += [f"calibration (fit on {len(rep.fit_idx)}): measured ≈ "
              f"{c['a']:.4f}·sum {c['b']:+.4f} ms "
              f"{c['c_per_layer']:+.4f} ms·layers",
              f"held-out, as is:       {_fmt(rep.holdout_before)}",
              f"held-out, calibrated:  {_fmt(rep.holdout_after)}"]
  if rep.plot:
    lines.append(f"scatter plot: {rep.plot}")
  return "\n".join(lines)


def harm(before: dict[str, float], after: dict[str, float],
         predictions: Sequence[float]) -> str | None:
  """Why a fitted calibration must not be stored, or None when it may.

  Args:
    before, after: held-out `metrics` of the table as is and calibrated.
    predictions: calibrated predictions (ms) of every network checked.
  """
  low = min(predictions) if len(predictions) else math.inf
  if not all(math.isfinite(p) and p > 0 for p in predictions):
    return (f"it makes a prediction non-positive ({low:.4g} ms): the fitted "
            "offset is larger than the smallest network")
  if (after["mape_pct"] > before["mape_pct"]
      or after["within_10_pct"] < before["within_10_pct"]):
    return (f"it worsens held-out fidelity (MAPE {before['mape_pct']:.1f}% "
            f"-> {after['mape_pct']:.1f}%, within ±10% "
            f"{before['within_10_pct']:.0f}% -> "
            f"{after['within_10_pct']:.0f}%)")
  return None


def calibration_harm(rep: FidelityReport) -> str | None:
  """`harm` of a report's fitted calibration (None without one)."""
  if not rep.calibration:
    return None
  if rep.calibration["a"] <= 0:
    return "the fitted slope a is not positive"
  pred = apply_calibration(rep.calibration, np.asarray(rep.layer_sums),
                           np.asarray(rep.num_layers))
  return harm(rep.holdout_before, rep.holdout_after, pred.tolist())


def store(table: tbl.LatencyTable, rep: FidelityReport) -> tbl.LatencyTable:
  """The table with a fidelity summary and the fitted calibration, unless
  `calibration_harm` refuses it (then the table's own calibration stays
  and the summary says why)."""
  summary = {"space": rep.space, "samples": len(rep.measured),
             "as_is": rep.metrics, "load": rep.load}
  updates: dict[str, Any] = {}
  if rep.calibration:
    summary.update(holdout_as_is=rep.holdout_before,
                   holdout_calibrated=rep.holdout_after)
    why = calibration_harm(rep)
    if why:
      summary["calibration_refused"] = why
    else:
      updates["calibration"] = rep.calibration
  updates["fidelity"] = json_safe(summary)
  return table.with_header(**updates)


def json_safe(x):
  """`x` with non-finite floats as None and floats to 6 digits."""
  if isinstance(x, dict):
    return {k: json_safe(v) for k, v in x.items()}
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, float):
    return float(f"{x:.6g}")
  return x
