"""The search controller: budgets, bookkeeping, resume, outputs.

The controller knows no models and no tables: it receives
`evaluate_fn(list[ArchChoice]) -> (accuracies, metrics)` (one accuracy and
one dict of other metrics, e.g. int8 accuracy, per architecture; called once
per generation, or per `eval_batch_size` chunk, so evaluation can batch) and
named
`cost_fn(ArchChoice) -> float` callables. Hardware costs are cheap and are
computed first, so under a hard target nothing infeasible is evaluated.

Generation g draws all its randomness from `np.random.default_rng([seed,
g])` and from the records before it, so a resumed run (see
`hwnas.search.history`) replays the recorded generations without
evaluating them and ends exactly like an uninterrupted run.

Size: about 500 lines: the run loop, its resume/replay checks and the
budget-aware defaults belong together (a resume must rebuild exactly the
settings the defaults chose); the operators (`evolution`), surrogate
(`predictor`), history and outputs (`report`) are already separate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, errors
from hwnas.arch import ArchChoice
from hwnas.search import (evolution, feasibility, history, objectives,
                          pareto, predictor, report)
from hwnas.search.history import Record, SearchResult
from hwnas.space import SearchSpace

EvaluateFn = Callable[[list[ArchChoice]],
                      tuple[Sequence[float], Sequence[Mapping[str, float]]]]
CostFn = Callable[[ArchChoice], float]
_STATE_SCHEMA = "hwnas/search-state@1"
_MAX_STALLS = 20      # generations in a row without a new architecture
_PROBE_STREAM = 1_000_003  # rng stream of the fastest-architecture probe
_EXPLORE = 0.5        # surrogate: score = mean + _EXPLORE * ensemble sd


def default_settings(algorithm: str, budget: int, *,
                     population: int | None = None,
                     sample_size: int | None = None,
                     batch_size: int | None = None,
                     candidates: int | None = None,
                     parents_ratio: float = 0.25, mutation_ratio: float = 0.5,
                     mutation_prob: float = 0.1,
                     max_tries: int = 100) -> evolution.Settings:
  """The settings a search with `budget` evaluations uses (validated).

  Settings left None follow the budget, so that a short search is not one
  random generation: the population is a fifth of the budget (10 to 100,
  at most the budget;
  for `surrogate` the random first generation), aging's tournament and
  batch a quarter of the population, and `surrogate` evaluates a twentieth
  of the budget per generation (5 to 20), children of the best 10 records
  ranked among 20 times as many candidates (at least 200).

  Raises:
    HwnasError: a setting out of range (one line naming it).
  """
  _check_range("budget", budget, 1)
  for name, v in (("population", population), ("sample_size", sample_size),
                  ("batch_size", batch_size), ("candidates", candidates)):
    if v is not None:
      _check_range(name, v, 2 if name == "population" else 1)
  if not 0 < mutation_prob <= 1:
    raise errors.HwnasError(f"search: mutation_prob is {mutation_prob:g}; "
                            "give a per-gene probability in (0, 1]")
  if not 0 < parents_ratio < 1 or not 0 <= mutation_ratio <= 1:
    raise errors.HwnasError(
        f"search: parents_ratio must be in (0, 1) and mutation_ratio in "
        f"[0, 1]; got {parents_ratio:g}, {mutation_ratio:g}")
  _check_range("max_tries", max_tries, 1)
  if population is not None and population > max(2, budget):
    raise errors.HwnasError(f"search: population {population} is larger than "
                            f"the budget {budget}; give --population <= "
                            "--budget")
  clamp = lambda v, lo, hi: int(min(hi, max(lo, v)))
  # A budget under 10 is one random generation of the whole budget.
  population = population or max(2, min(budget, clamp(budget // 5, 10,
                                                        100)))
  if algorithm == "surrogate":
    batch_size = batch_size or clamp(budget // 20, 5, 20)
    sample_size = sample_size or 10
    candidates = candidates or max(200, 20 * batch_size)
  else:
    sample_size = sample_size or max(2, population // 4)
    batch_size = batch_size or max(1, population // 4)
    candidates = 0
  return evolution.Settings(
      population=population, sample_size=sample_size, batch_size=batch_size,
      candidates=candidates, parents_ratio=parents_ratio,
      mutation_ratio=mutation_ratio, mutation_prob=mutation_prob,
      max_tries=max_tries)


def _check_range(name: str, value, lo: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
      or value < lo:
    raise errors.HwnasError(f"search: {name} is {value!r}; give an integer "
                            f">= {lo}")


def describe_settings(algorithm: str, s: evolution.Settings,
                      budget: int) -> str:
  """One line naming the settings a search runs with."""
  if algorithm == "surrogate":
    what = (f"{s.population} random, then {s.batch_size} per generation, "
            f"the best of {s.candidates} candidates from the top "
            f"{s.sample_size} (ridge-ensemble surrogate)")
  elif algorithm == "aging":
    what = (f"population {s.population}, tournament {s.sample_size}, "
            f"{s.batch_size} children per generation")
  elif algorithm == "ofa":
    what = (f"population {s.population}, parents "
            f"{max(1, int(round(s.population * s.parents_ratio)))}, "
            f"mutation share {s.mutation_ratio:g}")
  else:
    what = f"population {s.population}"
  if algorithm != "surrogate":   # its mutations change 1 to 3 genes
    what += f"; mutation probability {s.mutation_prob:g}"
  return f"search: {algorithm}, budget {budget}: {what}"


def default_algorithm(objective: str, algorithm: str | None = None) -> str:
  """The algorithm a search uses: nsga2 for pareto, else surrogate."""
  algorithm = algorithm or ("nsga2" if objective == "pareto" else
                            "surrogate")
  if algorithm not in evolution.ALGORITHMS:
    raise errors.HwnasError(f"algorithm {algorithm!r} is unknown; use one of "
                            f"{list(evolution.ALGORITHMS)}")
  if objective == "pareto" and algorithm != "nsga2":
    raise errors.HwnasError("objective pareto ranks a front, which only "
                            "nsga2 does; use --algorithm nsga2")
  return algorithm


def _config(space, obj, algorithm, settings, seed, cost_names,
            sources) -> dict:
  return {"schema": _STATE_SCHEMA, "space": space.id, "seed": seed,
          "objective": obj.kind, "targets": dict(obj.targets),
          "reward_weight": obj.reward_weight, "algorithm": algorithm,
          "settings": dataclasses.asdict(settings),
          "cost_names": list(cost_names),
          "sources": _jsonable(dict(sources or {}))}


def _jsonable(x):
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, pathlib.PurePath):
    return str(x)
  return x


def _first_difference(old, new, path: str) -> tuple[str, Any, Any] | None:
  """(dotted key, old, new) of the first difference, or None."""
  if isinstance(old, dict) and isinstance(new, dict):
    for k in list(new) + [k for k in old if k not in new]:
      d = _first_difference(old.get(k), new.get(k), f"{path}.{k}")
      if d:
        return d
    return None
  return None if old == new else (path, old, new)


def _check_config(workdir: pathlib.Path, config: dict) -> None:
  saved = history.read_state(workdir)
  if saved is None or "config" not in saved:
    return  # absent or unreadable: the history replay checks consistency
  old = saved["config"]
  for k, v in config.items():
    d = _first_difference(old.get(k), v, k)
    if d is None:
      continue
    key, was, now = d
    if key.startswith("sources."):
      what = key.split(".", 2)[1]
      raise errors.HwnasError(
          f"{workdir / history.STATE}: the source of {what} changed since "
          f"this search started ({key} was {_short(was)}, now "
          f"{_short(now)}); resume with the same inputs or use a new "
          "--workdir")
    raise errors.HwnasError(
        f"{workdir / history.STATE}: {key} was {_short(was)}, now "
        f"{_short(now)}; resume with the same settings or use a new "
        "--workdir")


def inputs_digest(config: dict) -> str:
  """A short digest of a search's settings and input identities."""
  text = json.dumps(config, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_inputs(workdir: pathlib.Path, recorded: list[Record],
                  digest: str) -> None:
  """Every recorded evaluation was made under this search's settings and
  inputs (records written before digests existed carry none)."""
  for r in recorded:
    if r.inputs and r.inputs != digest:
      raise errors.HwnasError(
          f"{workdir / history.HISTORY}: evaluation {r.index} was made with "
          "other settings or inputs (a latency table, the evaluator, the "
          "seed, ...) than this search's; resume with the same inputs or use "
          "a new --workdir")


def _short(v) -> str:
  text = repr(v)
  return text if len(text) <= 80 else text[:77] + "..."


class _Search:
  """Mutable bookkeeping of one run (kept private; `run` is the API)."""

  def __init__(self, space, obj, cost_fns, settings, algorithm):
    self.space, self.obj, self.settings = space, obj, settings
    self.cost_fns, self.algorithm = cost_fns, algorithm
    self.records: list[Record] = []
    self.population: list[int] = []
    self._costs: dict[ArchChoice, dict[str, float]] = {}
    self._codes: dict[ArchChoice, np.ndarray] = {}
    self._encoder = None

  def costs(self, a: ArchChoice) -> dict[str, float]:
    if a not in self._costs:
      self._costs[a] = {k: float(fn(a)) for k, fn in self.cost_fns.items()}
    return self._costs[a]

  def ok(self, a: ArchChoice) -> bool:
    return (not self.obj.hard) or objectives.feasible(self.obj,
                                                      self.costs(a))

  def fitness(self, idx: Sequence[int]) -> list[float]:
    return [objectives.fitness(self.obj, self.records[i].accuracy,
                               self.records[i].costs) for i in idx]

  def matrix(self, idx: Sequence[int]) -> np.ndarray:
    rs = [self.records[i] for i in idx]
    return pareto.matrix([r.accuracy for r in rs],
                         [[r.costs[k] for k in self.cost_fns] for r in rs])

  def top(self, n: int) -> list[int]:
    """Indices of the `n` fittest records (ties: the earlier)."""
    f = self.fitness(range(len(self.records)))
    return sorted(range(len(f)), key=lambda i: (-f[i], i))[:n]

  def encode(self, a: ArchChoice) -> np.ndarray:
    if self._encoder is None:
      self._encoder = predictor.Encoder(self.space)
    if a not in self._codes:
      self._codes[a] = self._encoder(a)
    return self._codes[a]

  def surrogate_scores(self, rng) -> Callable[[list[ArchChoice]],
                                              np.ndarray]:
    """Refits the surrogate on every record; returns the scoring function
    (optimistic predicted accuracy, or the reward computed from it)."""
    x = np.stack([self.encode(r.arch) for r in self.records])
    model = predictor.fit_ridge(self.space, None,
                                [r.accuracy for r in self.records], x=x,
                                seed=int(rng.integers(2**31)))

    def score(cands: list[ArchChoice]) -> np.ndarray:
      xc = np.stack([self._encoder(a) for a in cands])
      mean, sd = predictor.predict(model, self.space, None, x=xc)
      acq = mean.astype(np.float64) + _EXPLORE * sd
      if self.obj.kind == "reward":
        acq = np.array([objectives.fitness(self.obj, v, self.costs(a))
                        for v, a in zip(acq, cands)])
      return acq
    return score

  def propose(self, g: int, rng, pool) -> list[ArchChoice]:
    s, pop = self.settings, self.population
    archs = [self.records[i].arch for i in pop]
    if g == 0 or not pop or len(self.records) < 2:
      return evolution.random_archs(rng, pool, s.population, s)
    if self.algorithm == "surrogate":
      parents = [self.records[i].arch for i in self.top(s.sample_size)]
      return evolution.surrogate(rng, pool, parents,
                                 self.surrogate_scores(rng), s)
    if self.algorithm == "aging":
      return evolution.aging(rng, pool, self.fitness(pop), archs, s)
    if self.algorithm == "ofa":
      parents = evolution.ofa_parents(self.fitness(pop), s)
      return evolution.ofa(rng, pool, [archs[i] for i in parents], s)
    return evolution.nsga2(rng, pool, self.matrix(pop), archs, s)

  def update(self, g: int, new: list[int]) -> None:
    pop, s = self.population, self.settings
    if self.algorithm == "surrogate":
      self.population = self.top(s.sample_size)
    elif g == 0 or not pop:
      self.population = list(new)
    elif self.algorithm == "aging":
      self.population = (pop + new)[-s.population:]
    elif self.algorithm == "ofa":
      parents = evolution.ofa_parents(self.fitness(pop), s)
      self.population = [pop[i] for i in parents] + new
    else:
      both = pop + new
      self.population = [both[i] for i in evolution.nsga2_survivors(
          self.matrix(both), s)]

  def make_record(self, g: int, a: ArchChoice, acc: float,
                  metrics=None, inputs: str = "",
                  batch: tuple[int, int] | None = None) -> Record:
    c = counting.count(arch_lib.decode(self.space, a))
    return Record(len(self.records), g, a, float(acc), self.costs(a),
                  int(c.macs), int(c.params), dict(metrics or {}), inputs,
                  batch)


def _evaluate(evaluate_fn, archs: list[ArchChoice]
              ) -> tuple[list[float], list[dict[str, float]]]:
  """(accuracies, metrics) of `archs`, each checked to hold one entry per
  architecture."""
  out = evaluate_fn(list(archs))
  if not isinstance(out, tuple) or len(out) != 2:
    raise errors.HwnasError("evaluate_fn must return (accuracies, metrics), "
                            f"got {type(out).__name__}")
  accs, metrics = list(out[0]), list(out[1])
  if len(accs) != len(archs) or len(metrics) != len(archs):
    raise errors.HwnasError(f"evaluate_fn returned {len(accs)} accuracies and "
                            f"{len(metrics)} metrics for {len(archs)} "
                            "architectures")
  return [float(x) for x in accs], [dict(m) for m in metrics]


def run(space: SearchSpace, evaluate_fn: EvaluateFn,
        cost_fns: Mapping[str, CostFn] | CostFn, *,
        budget: int, workdir: str | pathlib.Path,
        objective: str = "constraint",
        target: float | Mapping[str, float] | None = None,
        seed: int = 0, algorithm: str | None = None,
        population: int | None = None, sample_size: int | None = None,
        batch_size: int | None = None, candidates: int | None = None,
        parents_ratio: float = 0.25,
        mutation_ratio: float = 0.5, mutation_prob: float = 0.1,
        max_tries: int = 100, reward_weight: float = -0.07,
        eval_batch_size: int | None = None,
        provenance: Mapping[str, Any] | None = None,
        sources: Mapping[str, Any] | None = None,
        references: Mapping[str, tuple[float, float | None]] | None = None,
        plot: bool = True, progress: bool = True,
        console: Any = None,
        bands: Mapping[str, Callable[[ArchChoice], Any]] | None = None,
        titles: Mapping[str, str] | None = None) -> SearchResult:
  """Runs (or resumes) an evolutionary architecture search.

  Args:
    space: the search space.
    evaluate_fn: list of architectures -> (accuracies (higher is better),
      metrics: one dict of other values to record per architecture, may be
      empty), called once per generation (or `eval_batch_size` chunk).
    cost_fns: {name: architecture -> cost}, primary (the one `target` and
      the plot's x axis refer to) first, e.g. {"latency_ms": table_fn,
      "macs": macs_fn}; several devices' tables are several entries. A bare
      callable is named "cost".
    budget: total number of evaluations (including resumed ones).
    workdir: directory for history.jsonl, state.json and the outputs; an
      existing one is resumed.
    objective: 'constraint' (hard cost <= target), 'reward' (MnasNet
      ACC * (cost / target) ** reward_weight) or 'pareto' (front).
    target: bound on the primary cost, or {cost name: bound}.
    seed: seed of every random choice (same seed + inputs -> same history).
    algorithm: 'surrogate' (default for constraint/reward), 'aging',
      'ofa', or 'nsga2' (default and required for pareto).
    population: population size; for 'surrogate' the size of the random
      first generation (default: follows the budget, see
      `default_settings`).
    sample_size: aging tournament size; surrogate parents (default: see
      `default_settings`).
    batch_size: aging and surrogate children per generation (default: see
      `default_settings`).
    candidates: surrogate children scored per generation.
    parents_ratio: OFA surviving share of the population.
    mutation_ratio: OFA share of children made by mutation.
    mutation_prob: per-gene resampling probability of a mutation.
    max_tries: rejection-sampling tries per child before repairing it.
    reward_weight: MnasNet exponent w (default -0.07, soft).
    eval_batch_size: split each generation into calls of at most this many
      architectures (results are saved after each call).
    provenance: the cost table's provenance, copied into best.json.
    sources: identity of each input, e.g. {"latency_ms": {"table": path,
      "sha256": ...}}; saved with the settings, so resuming against a
      changed table (or predictor, ...) is refused.
    references: {name: (cost, accuracy or None)} marked on pareto.png.
    plot: write pareto.png.
    progress: show a progress bar and the summary table.
    console: a rich Console (default: a new one on stdout).
    bands: {cost name: arch -> (low, high) or None} for costs with an
      uncertainty band (estimated tables), drawn on pareto.png.
    titles: {cost name: panel title} for pareto.png's further panels (one
      per latency cost).

  Returns:
    A `SearchResult`.

  Raises:
    HwnasError: for bad arguments, an impossible target (before any
      evaluation), or a workdir searched with other settings.
  """
  if callable(cost_fns):
    cost_fns = {"cost": cost_fns}
  cost_fns = dict(cost_fns)
  obj = objectives.make(objective, list(cost_fns), target,
                        reward_weight=reward_weight)
  algorithm = default_algorithm(obj.kind, algorithm)
  settings = default_settings(
      algorithm, budget, population=population, sample_size=sample_size,
      batch_size=batch_size, candidates=candidates,
      parents_ratio=parents_ratio, mutation_ratio=mutation_ratio,
      mutation_prob=mutation_prob, max_tries=max_tries)
  if eval_batch_size is not None:
    _check_range("eval_batch_size", eval_batch_size, 1)
  workdir = pathlib.Path(workdir)
  config = _config(space, obj, algorithm, settings, seed, cost_fns, sources)
  _check_config(workdir, config)

  fastest = anchor = None
  if obj.hard:
    probe_rng = np.random.default_rng([seed, _PROBE_STREAM])
    found = {name: feasibility.check_target(space, name, t, cost_fns[name],
                                            probe_rng)
             for name, t in obj.targets}
    fastest = found[obj.primary]
    anchor = _feasible_anchor(space, obj, cost_fns, found, probe_rng)

  workdir.mkdir(parents=True, exist_ok=True)
  recorded = history.read(workdir, repair=True)
  _check_inputs(workdir, recorded, inputs_digest(config))
  search = _Search(space, obj, cost_fns, settings, algorithm)
  evaluated = _loop(search, evaluate_fn, recorded, budget=budget, seed=seed,
                    workdir=workdir, config=config, anchor=anchor,
                    eval_batch_size=eval_batch_size, progress=progress,
                    console=console)
  result = report.finish(search.records, obj, evaluated=evaluated,
                         workdir=workdir, fastest=fastest,
                         provenance=provenance, references=references,
                         plot=plot, bands=bands, titles=titles)
  if progress:
    report.print_summary(result, console=console)
  return result


def _feasible_anchor(space, obj, cost_fns, found, rng) -> ArchChoice:
  """An architecture meeting every target at once (repairs end there).

  The fastest architecture of one target need not meet the others (two
  devices' latencies, latency and MACs), so unless one of them does, this
  minimises the largest cost / target ratio over the space.

  Raises:
    HwnasError: if none found meets every target.
  """
  for name in [obj.primary] + [k for k in found if k != obj.primary]:
    a = found[name][0]
    if objectives.feasible(obj, {k: float(cost_fns[k](a))
                                 for k, _ in obj.targets}):
      return a
  targets = dict(obj.targets)
  ratio = lambda a: max(float(cost_fns[k](a)) / t for k, t in targets.items())
  a, r = feasibility.fastest(space, ratio, rng)
  if r <= 1.0:
    return a
  costs = ", ".join(f"{k} {float(cost_fns[k](a)):.4g}" for k in targets)
  raise errors.HwnasError(
      f"no architecture found in space {space.id} meets all targets "
      f"{targets} at once (the closest found, {arch_lib.to_string(a)}, has "
      f"{costs}); relax a target")


def _loop(search: _Search, evaluate_fn, recorded: list[Record], *, budget,
          seed, workdir, config, anchor, eval_batch_size, progress,
          console) -> int:
  bar = _progress(progress, budget, len(recorded), console)
  writer = history.Writer(workdir)
  digest = inputs_digest(config)
  seen: set[tuple] = set()   # history.network_key of every proposal
  evaluated, stalls, g, pos = 0, 0, 0, 0
  try:
    while len(search.records) < budget and stalls < _MAX_STALLS:
      rng = np.random.default_rng([seed, g])
      pool = evolution.Pool(search.space, search.ok, anchor, seen)
      proposals = search.propose(g, rng, pool)
      old = [r for r in recorded[pos:] if r.generation == g]
      _check_replay(workdir, g, old, proposals)
      pos += len(old)
      first = len(search.records)
      for r in old:
        search.records.append(dataclasses.replace(r, costs=dict(r.costs)))
      room = max(0, budget - len(search.records))
      todo = proposals[len(old):len(old) + room]
      if todo and pos < len(recorded):
        raise errors.HwnasError(
            f"{workdir / history.HISTORY}: generation {g} is incomplete but "
            "later generations are recorded; use a new --workdir")
      planned = proposals[:len(old) + room]
      for lo, hi in _batches(old, len(planned), eval_batch_size):
        part = planned[lo:hi]
        accs, metrics = _evaluate(evaluate_fn, part)
        for i, (a, acc, m) in enumerate(zip(part, accs, metrics)):
          if lo + i < len(old):
            continue   # recorded before the cut
          rec = search.make_record(g, a, acc, m, digest, (lo, hi - lo))
          writer.append(rec)
          search.records.append(rec)
          evaluated += 1
          if bar:
            bar[0].advance(bar[1])
      search.update(g, list(range(first, len(search.records))))
      stalls = 0 if proposals else stalls + 1
      history.write_json_atomic(workdir / history.STATE, {
          "config": config, "generation": g,
          "evaluations": len(search.records),
          "population": search.population})
      g += 1
  finally:
    writer.close()
    if bar:
      bar[0].stop()
  return evaluated


def _batches(old: list[Record], n: int, eval_batch_size: int | None
             ) -> list[tuple[int, int]]:
  """[lo, hi) ranges of a generation's `n` planned evaluations still to
  make, as evaluate_fn calls, after its `old` recorded ones.

  A call that a kill cut between two appends is made again whole (its
  recorded part is skipped when appending): an evaluator's floats may
  depend on the batch (a predictor's matrix products), and the resumed run
  must equal the uninterrupted one. The rest is split into
  `eval_batch_size` calls (default: one call).
  """
  start, out = len(old), []
  if old and old[-1].batch:
    lo, size = old[-1].batch
    if lo + size > len(old):
      out.append((lo, min(lo + size, n)))
      start = lo + size
  chunk = eval_batch_size or max(1, n - start)
  out += [(k, min(k + chunk, n)) for k in range(start, n, chunk)]
  return out


def _check_replay(workdir, g: int, old: list[Record],
                  proposals: list[ArchChoice]) -> None:
  for i, r in enumerate(old):
    if i >= len(proposals) or proposals[i] != r.arch:
      raise errors.HwnasError(
          f"{workdir / history.HISTORY}: evaluation {r.index} (generation "
          f"{g}) is not what this search proposes; the workdir was made with "
          "other inputs (space, costs, seed); use a new --workdir")


def _progress(enabled: bool, budget: int, done: int, console):
  if not enabled:
    return None
  from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                             TextColumn, TimeElapsedColumn,
                             TimeRemainingColumn)
  from hwnas import progress as progress_lib  # pylint: disable=g-import-not-at-top
  make = lambda: Progress(TextColumn("search"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), console=console)
  # Plain lines when stdout is a file or pipe (a given console: rich).
  p = make() if console is not None else progress_lib.make(True, make)
  task = p.add_task("search", total=budget, completed=min(done, budget))
  p.start()
  return p, task
