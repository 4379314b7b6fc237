"""Can the supernet's ranking be trusted? Supernet vs standalone accuracy.

`run(supernet_workdir, out, config)` samples K architectures of the
supernet's space, spread over MACs (or parameters, or any cost function)
and always including the largest, the smallest and any given ones; trains
each from scratch with one fixed recipe (`hwnas.train_standalone`, the code
path of `hwnas train`, under every seed of `config.seeds`); evaluates each
with the supernet's shared weights (BatchNorm recalibrated per
architecture, `hwnas.supernet.evaluate`, optionally after a short
fine-tune); and reports how well the two orders agree:

- the headline, like with like: Kendall tau (scipy.stats) of the
  supernet's accuracy against each standalone seed (averaged over seeds)
  beside the noise ceiling, Kendall tau between two standalone seeds of the
  same architectures (how well training agrees with itself); each with a
  bootstrap 90% interval over the architectures (with 16 architectures
  tau's standard error is about 0.2);
- a plain verdict (ranking trustworthy / weak / no better than noise for
  this setting) and warnings: constant accuracies (tau undefined: None in
  the JSON, never NaN), standalone runs far below the supernet's accuracy
  (undertrained), a low ceiling, a ceiling fraction above 1;
- tau and Spearman rho against the mean over seeds (less noisy, so not
  comparable with the ceiling);
- whether the supernet's best is among the standalone top k, the top-k
  overlap, and the mean gap (standalone minus supernet accuracy).

Both accuracies are on the same images: the supernet's dataset and its val
hold-out. Everything lands in `out` (default `SUPERNET_WORKDIR/rank_check`):
`archs.json` (the sample, fixed on the first run), `standalone/aNN_sS/`
(one `hwnas train` workdir per architecture and seed), `supernet.json`,
`rank_check.json` and `rank_check.png`. Each finished architecture and
seed is recorded as it completes (`result.json`), so a killed run resumes
where it stopped and never retrains a finished one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import time
import warnings
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting
from hwnas import data as data_lib
from hwnas import train_standalone
from hwnas.errors import HwnasError
from hwnas.space import SearchSpace

ArchChoice = arch_lib.ArchChoice
Config = ml_collections.ConfigDict

# ------------------------------------------------------------ sampling --


def cost_function(space: SearchSpace, name: str) -> Callable[[ArchChoice],
                                                             float]:
  """`arch -> MACs` or `arch -> parameters` of a space's architectures."""
  fns = {"macs": counting.macs, "params": counting.params}
  if name not in fns:
    raise HwnasError(f"stratify = {name!r}: use 'macs' or 'params'")
  return lambda a: float(fns[name](arch_lib.decode(space, a)))


def sample_architectures(space: SearchSpace, k: int, *, seed: int,
                         cost: Callable[[ArchChoice], float],
                         include: Sequence[ArchChoice] = (),
                         resolutions: Sequence[int] = (),
                         pool: int = 2000) -> list[ArchChoice]:
  """K distinct architectures spread over `cost`, extremes included.

  The largest and smallest architectures (at the largest and smallest of
  `resolutions`) and `include` come first; the others are drawn from
  `pool` random architectures, one nearest to each of evenly spaced
  quantiles of their cost, so that the sample covers the space from small
  to large instead of clustering where random sampling is dense.

  Args:
    space: The search space.
    k: How many architectures in all (at least the fixed ones).
    seed: Seeds the random pool.
    cost: What to spread the sample over (`cost_function`).
    include: Architectures that must be in the sample.
    resolutions: Resolutions to sample from (default: the space's).
    pool: Size of the random pool.

  Returns:
    The architectures, fixed ones first, then by increasing cost.
  """
  res = sorted(resolutions or space.resolutions)
  at = lambda a, r: dataclasses.replace(a, resolution=r)
  fixed = [at(arch_lib.largest(space), res[-1]),
           at(arch_lib.smallest(space), res[0]), *include]
  chosen, seen = [], set()
  for a in fixed:
    key = arch_lib.to_string(a)
    if key not in seen:
      chosen.append(a)
      seen.add(key)
  rng = np.random.default_rng(seed)
  cands = {}
  for _ in range(pool):
    a = arch_lib.sample(rng, space)
    a = at(a, res[int(rng.integers(len(res)))])
    cands.setdefault(arch_lib.to_string(a), a)
  cands = [a for key, a in cands.items() if key not in seen]
  need = k - len(chosen)
  if need <= 0 or not cands:
    return chosen
  costs = np.asarray([cost(a) for a in cands])
  order = np.argsort(costs, kind="stable")
  targets = np.quantile(costs, (np.arange(need) + 0.5) / need)
  free = list(order)
  picked = []
  for t in targets:
    j = min(range(len(free)), key=lambda i: abs(costs[free[i]] - t))
    picked.append(free.pop(j))
    if not free:
      break
  return chosen + [cands[i] for i in sorted(picked, key=lambda i: costs[i])]


# ---------------------------------------------------------- statistics --

# Verdict thresholds on the like-for-like tau (supernet vs one seed): the
# issue's acceptance bar (tau >= 0.7 or >= 80% of the noise ceiling) is
# "trustworthy"; a 90% interval that reaches 0 is "no better than noise".
TRUST_TAU = 0.7
TRUST_FRACTION = 0.8
# A standalone run this far below the supernet's accuracy of the same
# architecture (on the same images) is taken as undertrained.
UNDERTRAINED_GAP = 0.10
BOOTSTRAP = 1000          # resamples of the architectures
INTERVAL = 0.90


def _tau(x: np.ndarray, y: np.ndarray) -> float | None:
  """Kendall tau, None where it is undefined (a constant vector)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return None
  t = float(stats.kendalltau(x, y).statistic)
  return None if np.isnan(t) else t


def _mean(values) -> float | None:
  vals = [v for v in values if v is not None]
  return float(np.mean(vals)) if vals else None


def _per_seed_tau(sn: np.ndarray, st: np.ndarray) -> float | None:
  return _mean(_tau(sn, st[:, s]) for s in range(st.shape[1]))


def _ceiling(st: np.ndarray) -> float | None:
  n = st.shape[1]
  return _mean(_tau(st[:, i], st[:, j]) for i in range(n)
               for j in range(i + 1, n))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Kendall tau-b of each row pair of `x`, `y` [B, K] (NaN where a row is
  constant): scipy.stats.kendalltau's statistic, vectorised over B rows
  because the bootstrap needs thousands of taus of a few dozen values
  (one scipy call each took ~3 ms on the loaded 2-core CPU)."""
  x, y = np.atleast_2d(x), np.atleast_2d(y)
  dx = np.sign(x[:, :, None] - x[:, None, :])
  dy = np.sign(y[:, :, None] - y[:, None, :])
  iu = np.triu_indices(x.shape[1], 1)
  dx, dy = dx[:, iu[0], iu[1]], dy[:, iu[0], iu[1]]
  denom = np.sqrt((dx != 0).sum(1) * (dy != 0).sum(1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(denom > 0, (dx * dy).sum(1) / denom, np.nan)


def _interval(vals: np.ndarray, level: float) -> list[float] | None:
  vals = vals[~np.isnan(vals)]
  if len(vals) < 100:
    return None
  q = (1 - level) / 2
  return [float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))]


def bootstrap_intervals(sn: np.ndarray, st: np.ndarray, *, seed: int = 0,
                        resamples: int = BOOTSTRAP, level: float = INTERVAL
                        ) -> tuple[list[float] | None, list[float] | None]:
  """Percentile bootstrap intervals of the per-seed tau and of the noise
  ceiling, resampling the architectures with replacement (resamples where
  a tau is undefined, e.g. every copy of one architecture, are skipped);
  None where fewer than 100 resamples are defined."""
  idx = np.random.default_rng(seed).integers(0, len(sn), (resamples,
                                                          len(sn)))
  x, y = sn[idx], st[idx]                       # [B, K], [B, K, S]
  n = st.shape[1]
  with np.errstate(invalid="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
    per_seed = np.nanmean(np.stack(
        [kendall_tau_b(x, y[:, :, s]) for s in range(n)]), axis=0)
    pairs = [kendall_tau_b(y[:, :, i], y[:, :, j]) for i in range(n)
             for j in range(i + 1, n)]
    ceiling = np.nanmean(np.stack(pairs), axis=0) if pairs else None
  return (_interval(per_seed, level),
          _interval(ceiling, level) if ceiling is not None else None)


def _verdict(tau: float | None, interval: list[float] | None,
             ceiling: float | None, fraction: float | None) -> str:
  if tau is None:
    return "undefined"
  if interval is None or interval[0] <= 0 or (ceiling is not None and
                                              ceiling <= 0):
    return "no better than noise"
  if tau >= TRUST_TAU or (fraction is not None and
                          fraction >= TRUST_FRACTION):
    return "trustworthy"
  return "weak"


def _warnings(sn: np.ndarray, st: np.ndarray, tau, ceiling,
              fraction) -> list[str]:
  out = []
  if np.ptp(sn) == 0:
    out.append("the supernet gives every architecture the same accuracy "
               f"({sn[0]:.3f}): it does not rank them (train it longer or "
               "check its BatchNorm recalibration); tau is undefined")
  const = [s for s in range(st.shape[1]) if np.ptp(st[:, s]) == 0]
  if const:
    out.append(f"standalone seed(s) {const} give every architecture the "
               "same accuracy: those runs did not learn to tell them apart "
               "(lengthen standalone.train.steps); their tau is undefined")
  mean = st.mean(axis=1)
  low = np.flatnonzero(mean < sn - UNDERTRAINED_GAP)
  if len(low):
    w = int(low[np.argmax(sn[low] - mean[low])])
    out.append(f"standalone runs look undertrained: {len(low)} of "
               f"{len(sn)} architectures score more than "
               f"{100 * UNDERTRAINED_GAP:.0f} points below their supernet "
               f"accuracy (worst: a{w:02d}, {mean[w]:.1%} standalone vs "
               f"{sn[w]:.1%} in the supernet); lengthen "
               "standalone.train.steps so tau compares trained networks")
  if ceiling is not None and ceiling < 0.3:
    out.append(f"the standalone seeds agree with each other only at tau "
               f"{ceiling:.2f}: on this setting accuracies differ by less "
               "than training noise (use more or harder val data, or a "
               "longer standalone recipe)")
  if fraction is not None and fraction > 1:
    out.append(f"the supernet agrees with single seeds better than the "
               f"seeds agree with each other (tau {tau:.2f} vs ceiling "
               f"{ceiling:.2f}): the estimates are at the ceiling; the "
               "excess is sampling noise of a few architectures, not better "
               "than perfect ranking")
  return out


def summarize(supernet: Sequence[float], standalone: np.ndarray, *,
              top_k: int = 3, seed: int = 0) -> dict[str, Any]:
  """Agreement of supernet accuracies with standalone ones.

  The headline compares like with like: `kendall_tau_per_seed` (the
  supernet against each standalone seed, averaged) beside `noise_ceiling`
  (seed against seed): a supernet cannot be shown to agree with one
  training run better than another training run does.

  Args:
    supernet: [K] the supernet's accuracy of each architecture.
    standalone: [K, S] standalone accuracy per architecture and seed.
    top_k: k of the top-k questions.
    seed: Seeds the bootstrap.

  Returns:
    `kendall_tau_per_seed` and its bootstrap 90% `tau_interval`
    (architectures resampled), `noise_ceiling` (mean tau over pairs of
    seeds; None with one seed) and `ceiling_interval`, `ceiling_fraction`
    (per-seed tau / ceiling; above 1 means "at the ceiling", see
    `warnings`), `kendall_tau` and `spearman_rho` (vs the mean over seeds,
    which averages out some noise and so is not comparable with the
    ceiling), `verdict` (trustworthy / weak / no better than noise /
    undefined), `warnings` (constant accuracies, undertrained standalone
    runs, a low ceiling), `best_in_top_k`, `top_k_overlap`, `mean_gap`
    (standalone minus supernet), the spreads. Undefined statistics are
    None, never NaN.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  sn = np.asarray(supernet, np.float64)
  st = np.asarray(standalone, np.float64).reshape(len(sn), -1)
  mean = st.mean(axis=1)
  per_seed = _per_seed_tau(sn, st)
  ceiling = _ceiling(st) if st.shape[1] > 1 else None
  fraction = (per_seed / ceiling if per_seed is not None and ceiling
              and ceiling > 0 else None)
  interval, ceiling_interval = bootstrap_intervals(sn, st, seed=seed)
  interval = interval if per_seed is not None else None
  rho = (float(stats.spearmanr(sn, mean).statistic)
         if np.ptp(sn) > 0 and np.ptp(mean) > 0 else None)
  k = min(top_k, len(sn))
  top_st = set(np.argsort(-mean, kind="stable")[:k].tolist())
  top_sn = set(np.argsort(-sn, kind="stable")[:k].tolist())
  return {
      "num_archs": int(len(sn)), "num_seeds": int(st.shape[1]),
      "kendall_tau_per_seed": per_seed, "tau_interval": interval,
      "interval_level": INTERVAL, "noise_ceiling": ceiling,
      "ceiling_interval": ceiling_interval if ceiling is not None else None,
      "ceiling_fraction": fraction,
      "kendall_tau": _tau(sn, mean), "spearman_rho": rho,
      "verdict": _verdict(per_seed, interval, ceiling, fraction),
      "warnings": _warnings(sn, st, per_seed, ceiling, fraction),
      "top_k": k, "best_in_top_k": int(np.argmax(sn)) in top_st,
      "top_k_overlap": len(top_st & top_sn) / k,
      "mean_gap": float(np.mean(mean - sn)),
      "standalone_spread": float(mean.max() - mean.min()),
      "supernet_spread": float(sn.max() - sn.min())}


def summary_lines(result: dict[str, Any]) -> list[str]:
  """What `hwnas supernet rank-check` prints: the like-for-like numbers
  with their interval, the warnings, and a plain verdict last."""
  s = result["summary"]
  f = lambda v: "undefined" if v is None else f"{v:.2f}"
  iv = lambda i: "" if i is None else f" [{i[0]:.2f}, {i[1]:.2f}]"
  pct = f"{100 * s['interval_level']:.0f}%"
  head = (f"{s['num_archs']} architectures x {s['num_seeds']} seeds on "
          f"{result['dataset']} ({result['split']}, {result['split_size']} "
          f"images): supernet vs one standalone seed Kendall tau "
          f"{f(s['kendall_tau_per_seed'])}{iv(s['tau_interval'])}")
  if s["noise_ceiling"] is not None:
    frac = s["ceiling_fraction"]
    where = ("" if frac is None else " (at the ceiling)" if frac > 1 else
             f" ({frac:.0%} of it)")
    head += (f", seed vs seed (noise ceiling) {f(s['noise_ceiling'])}"
             f"{iv(s['ceiling_interval'])}{where}")
  else:
    head += ", no noise ceiling (one seed; use seeds=[0,1])"
  lines = [head + f"; {pct} bootstrap intervals over architectures",
           f"vs the seed mean: Kendall tau {f(s['kendall_tau'])}, Spearman "
           f"rho {f(s['spearman_rho'])}; supernet's best in the standalone "
           f"top {s['top_k']}: {'yes' if s['best_in_top_k'] else 'no'}; "
           f"mean gap (standalone - supernet) {s['mean_gap']:+.3f}"]
  lines += [f"warning: {w}" for w in s["warnings"]]
  text = {"trustworthy": "ranking trustworthy for this setting",
          "weak": "ranking weak for this setting: better than noise, below "
                  f"tau {TRUST_TAU} and {TRUST_FRACTION:.0%} of the ceiling",
          "no better than noise": "ranking no better than noise for this "
                                  "setting",
          "undefined": "ranking undefined: an accuracy vector is constant "
                       "(see the warnings)"}
  lines.append(f"verdict: {text[s['verdict']]}")
  return lines


# ------------------------------------------------------------- the run --


def _load_sample(out: pathlib.Path, archs: list[ArchChoice],
                 config: Config) -> list[ArchChoice]:
  """The sample of an earlier run in `out` (it must be the same one)."""
  path = out / "archs.json"
  want = {"samples": config.samples, "seed": config.seed,
          "stratify": config.stratify,
          "archs": [arch_lib.to_dict(a) for a in archs]}
  if path.is_file():
    old = json.loads(path.read_text())
    if {k: old.get(k) for k in want} != want:
      raise HwnasError(f"{path}: another sample (samples, seed, stratify or "
                       "--arch files differ); use the same settings to "
                       "resume or a new --out")
  else:
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(want, indent=1) + "\n")
  return archs


def _standalone_config(config: Config, dataset: str, seed: int) -> Config:
  c = copy.deepcopy(config.standalone)
  c.dataset, c.seed, c.init, c.resolution = dataset, int(seed), "scratch", 0
  return c


def _finetune_config(config: Config, dataset: str, workdir: pathlib.Path
                     ) -> Config:
  c = copy.deepcopy(config.standalone)
  c.dataset, c.init, c.resolution = dataset, f"supernet:{workdir}", 0
  c.train.steps = int(config.eval.finetune_steps)
  c.train.checkpoint_every = c.train.steps
  c.optimizer.learning_rate = float(config.eval.finetune_learning_rate)
  c.optimizer.warmup_steps = 0
  return c


def _train_one(space, a, cfg, workdir: pathlib.Path, ds) -> dict[str, Any]:
  """`result.json` of a finished run, else trains (or resumes) it."""
  done = workdir / "result.json"
  if done.is_file():
    return json.loads(done.read_text()) | {"reused": True}
  t = time.perf_counter()
  spec = arch_lib.decode(space, a, num_classes=ds.info.num_classes)
  r = train_standalone.train(spec, cfg, workdir, arch=a, ds=ds)
  return r | {"wall_s": time.perf_counter() - t, "reused": False}


def _progress(enabled: bool):
  from hwnas import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  return progress_lib.make(enabled, lambda: rp.Progress(
      rp.TextColumn("rank-check"), rp.BarColumn(), rp.MofNCompleteColumn(),
      rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
      rp.TextColumn("{task.fields[what]}"), disable=not enabled))


def run(supernet_workdir: str | pathlib.Path, config: Config, *,
        out: str | pathlib.Path | None = None,
        include: Sequence[ArchChoice] = (),
        cost: Callable[[ArchChoice], float] | None = None,
        progress: bool = False) -> dict[str, Any]:
  """Measures how well a trained supernet ranks architectures.

  Args:
    supernet_workdir: A `hwnas supernet train` workdir.
    config: The rank-check config (`hwnas/configs/rank_check.py`).
    out: Output directory (default `supernet_workdir/rank_check`); an
      earlier run there is resumed.
    include: Architectures that must be in the sample (`--arch` files).
    cost: What to spread the sample over (default: `config.stratify`;
      pass e.g. a latency table's prediction).
    progress: Show a rich progress bar.

  Returns:
    The contents of `rank_check.json`: `summary` (`summarize`), `rows` (one
    per architecture), the settings and the wall time of each part.
  """
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  wd = pathlib.Path(supernet_workdir)
  out = pathlib.Path(out) if out is not None else wd / "rank_check"
  space, graphdef, state, sn_config = evaluate.load_workdir(wd)
  for n, a in enumerate(include):
    try:
      arch_lib.validate(space, a)
    except HwnasError as e:
      raise HwnasError(f"included architecture {n + 1} "
                       f"({arch_lib.to_string(a)}): not in the supernet's "
                       f"space {space.name} ({e})") from None
  ds = data_lib.load_for(sn_config)
  resolutions = tuple(sn_config.train.resolutions) or space.resolutions
  cost = cost or cost_function(space, config.stratify)
  archs = _load_sample(out, sample_architectures(
      space, int(config.samples), seed=int(config.seed), cost=cost,
      include=include, resolutions=resolutions, pool=int(config.pool)),
      config)
  rows, timing = _train_all(archs, space, config, sn_config, wd, out, ds,
                            cost, progress)
  t = time.perf_counter()
  e = sn_config.eval
  data = evaluate.EvalData(
      ds, batch_size=e.batch_size,
      bn_batches=int(config.eval.bn_batches) or e.bn_batches,
      seed=sn_config.seed)
  accs, _ = evaluate.Evaluator(graphdef, state, space, data)(archs)
  timing["supernet_eval_s"] = time.perf_counter() - t
  for row, acc in zip(rows, accs):
    row["supernet"] = acc
  (out / "supernet.json").write_text(json.dumps(
      [{"arch_string": r["arch_string"], "accuracy": r["supernet"]}
       for r in rows], indent=1) + "\n")
  ft = int(config.eval.finetune_steps)
  key = "supernet_finetuned" if ft else "supernet"
  seeds = [str(int(s)) for s in config.seeds]
  standalone = np.asarray([[r["standalone"][s] for s in seeds]
                           for r in rows])
  result = {
      "supernet_workdir": str(wd), "dataset": ds.info.name,
      "split": "val", "split_size": ds.info.split_sizes["val"],
      "space": space.name, "seeds": [int(s) for s in seeds],
      "estimate": key, "bn_batches": data.bn_batches, "finetune_steps": ft,
      "config": config.to_dict(),
      "summary": summarize([r[key] for r in rows], standalone,
                           top_k=int(config.top_k), seed=int(config.seed)),
      "timing": timing, "rows": rows}
  (out / "rank_check.json").write_text(json.dumps(result, indent=1) + "\n")
  plot(result, out / "rank_check.png")
  return result


def _train_all(archs, space, config, sn_config, wd, out, ds, cost,
               progress) -> tuple[list[dict[str, Any]], dict[str, float]]:
  """Trains (or reuses) every standalone run and fine-tune; the rows."""
  seeds = [int(s) for s in config.seeds]
  ft = int(config.eval.finetune_steps)
  rows = [{"index": i, "arch": arch_lib.to_dict(a),
           "arch_string": arch_lib.to_string(a), "cost": cost(a),
           "standalone": {}, "standalone_test": {}} for i, a in
          enumerate(archs)]
  timing = {"standalone_s": 0.0, "finetune_s": 0.0, "supernet_eval_s": 0.0}
  with _progress(progress) as bar:
    task = bar.add_task("rank-check", total=len(archs) * (
        len(seeds) + (1 if ft else 0)), what="")
    for i, a in enumerate(archs):
      for s in seeds:
        bar.update(task, what=f"standalone a{i:02d} seed {s}")
        r = _train_one(space, a,
                       _standalone_config(config, sn_config.dataset, s),
                       out / "standalone" / f"a{i:02d}_s{s}", ds)
        rows[i]["standalone"][str(s)] = r["val/accuracy"]
        rows[i]["standalone_test"][str(s)] = r.get("test/accuracy")
        timing["standalone_s"] += r.get("wall_s", 0.0)
        bar.advance(task)
      if ft:
        bar.update(task, what=f"fine-tune a{i:02d}")
        r = _train_one(space, a,
                       _finetune_config(config, sn_config.dataset, wd),
                       out / "finetune" / f"a{i:02d}", ds)
        rows[i]["supernet_finetuned"] = r["val/accuracy"]
        rows[i]["finetune_wall_s"] = r.get("wall_s")
        timing["finetune_s"] += r.get("wall_s", 0.0)
        bar.advance(task)
  return rows, timing


def plot(result: dict[str, Any], path: str | pathlib.Path) -> None:
  """Scatter of standalone vs supernet accuracy, y = x line, the noise
  ceiling in the title."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  rows, s = result["rows"], result["summary"]
  x = [float(np.mean(list(r["standalone"].values()))) for r in rows]
  y = [r[result["estimate"]] for r in rows]
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(x, y, s=18)
  lo, hi = min(x + y), max(x + y)
  ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
  ax.set_xlabel("standalone accuracy (mean over seeds)")
  ax.set_ylabel(f"{result['estimate'].replace('_', ' ')} accuracy")
  f = lambda v: "undefined" if v is None else f"{v:.2f}"
  ceil = s["noise_ceiling"]
  ceil_text = f(ceil) if ceil is not None else "n/a (1 seed)"
  ax.set_title(f"{result['space']} on {result['dataset']}: tau vs one seed "
               f"{f(s['kendall_tau_per_seed'])}\nnoise ceiling (seed vs "
               f"seed) {ceil_text}; {s['verdict']}", fontsize=9)
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
