"""The search controller: budgets, bookkeeping, resume, outputs.

The controller knows no models and no tables: it receives
`evaluate_fn(list[ArchChoice]) -> list[float]` (called once per generation,
or per `eval_batch_size` chunk, so evaluation can batch) and named
`cost_fn(ArchChoice) -> float` callables. Hardware costs are cheap and are
computed first, so under a hard target nothing infeasible is evaluated.

Generation g draws all its randomness from `np.random.default_rng([seed,
g])` and from the records before it, so a resumed run (see
`hwnas.search.history`) replays the recorded generations without
evaluating them and ends exactly like an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, errors
from hwnas.arch import ArchChoice
from hwnas.search import evolution, feasibility, history, objectives, pareto
from hwnas.search.history import Record
from hwnas.search.objectives import Objective
from hwnas.space import SearchSpace

EvaluateFn = Callable[[list[ArchChoice]], Sequence[float]]
CostFn = Callable[[ArchChoice], float]
_STATE_SCHEMA = "hwnas/search-state@1"
_MAX_STALLS = 20      # generations in a row without a new architecture
_PROBE_STREAM = 1_000_003  # rng stream of the fastest-architecture probe


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """What a search found.

  Attributes:
    best: the best record under the objective (None if nothing evaluated).
    front: the non-dominated records (accuracy vs every cost), by primary
      cost.
    records: every evaluation, in order.
    evaluated: evaluations made by this call (0 when resuming a finished
      run).
    workdir: where history.jsonl, state.json, best.json, pareto.json and
      pareto.png are.
    objective: the objective searched.
    fastest: (architecture, primary cost) of the fastest architecture found
      by the up-front check under a hard target, else None.
  """

  best: Record | None
  front: tuple[Record, ...]
  records: tuple[Record, ...]
  evaluated: int
  workdir: pathlib.Path
  objective: Objective
  fastest: tuple[ArchChoice, float] | None = None


def _settings(algorithm: str, population: int | None, **kw) -> \
    evolution.Settings:
  population = population or 100
  kw = {k: v for k, v in kw.items() if v is not None}
  kw.setdefault("sample_size", max(2, population // 4))
  kw.setdefault("batch_size", max(1, population // 4))
  s = evolution.Settings(population=population, **kw)
  if s.population < 2 or s.max_tries < 1 or not 0 < s.parents_ratio < 1:
    raise errors.HwnasError(
        f"search: population must be >= 2 and parents_ratio in (0, 1); got "
        f"{s.population}, {s.parents_ratio}")
  return s


def _check_algorithm(obj: Objective, algorithm: str | None) -> str:
  algorithm = algorithm or ("nsga2" if obj.kind == "pareto" else "aging")
  if algorithm not in evolution.ALGORITHMS:
    raise errors.HwnasError(f"algorithm {algorithm!r} is unknown; use one of "
                            f"{list(evolution.ALGORITHMS)}")
  if obj.kind == "pareto" and algorithm != "nsga2":
    raise errors.HwnasError("objective pareto ranks a front, which only "
                            "nsga2 does; use --algorithm nsga2")
  return algorithm


def _config(space, obj, algorithm, settings, seed, cost_names) -> dict:
  return {"schema": _STATE_SCHEMA, "space": space.id, "seed": seed,
          "objective": obj.kind, "targets": dict(obj.targets),
          "reward_weight": obj.reward_weight, "algorithm": algorithm,
          "settings": dataclasses.asdict(settings),
          "cost_names": list(cost_names)}


def _check_config(workdir: pathlib.Path, config: dict) -> None:
  saved = history.read_state(workdir)
  if saved is None or "config" not in saved:
    return  # absent or unreadable: the history replay checks consistency
  old = saved["config"]
  for k, v in config.items():
    if old.get(k) != v:
      key, was, now = _difference(k, old.get(k), v)
      raise errors.HwnasError(
          f"{workdir / history.STATE}: {key} was {was!r}, now {now!r}; "
          "resume with the same settings or use a new --workdir")


def _difference(key: str, old, new) -> tuple[str, object, object]:
  """The first differing setting inside nested dicts (named, not dumped)."""
  while isinstance(old, dict) and isinstance(new, dict):
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not diff:
      break
    key, old, new = f"{key}.{diff[0]}", old.get(diff[0]), new.get(diff[0])
  return key, old, new


class _Search:
  """Mutable bookkeeping of one run (kept private; `run` is the API)."""

  def __init__(self, space, obj, cost_fns, settings, algorithm):
    self.space, self.obj, self.settings = space, obj, settings
    self.cost_fns, self.algorithm = cost_fns, algorithm
    self.records: list[Record] = []
    self.population: list[int] = []
    self._costs: dict[ArchChoice, dict[str, float]] = {}

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

  def propose(self, g: int, rng, pool) -> list[ArchChoice]:
    s, pop = self.settings, self.population
    archs = [self.records[i].arch for i in pop]
    if g == 0 or not pop:
      return evolution.random_archs(rng, pool, s.population, s)
    if self.algorithm == "aging":
      return evolution.aging(rng, pool, self.fitness(pop), archs, s)
    if self.algorithm == "ofa":
      parents = evolution.ofa_parents(self.fitness(pop), s)
      return evolution.ofa(rng, pool, [archs[i] for i in parents], s)
    return evolution.nsga2(rng, pool, self.matrix(pop), archs, s)

  def update(self, g: int, new: list[int]) -> None:
    pop, s = self.population, self.settings
    if g == 0 or not pop:
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
                  metrics=None) -> Record:
    c = counting.count(arch_lib.decode(self.space, a))
    return Record(len(self.records), g, a, float(acc), self.costs(a),
                  int(c.macs), int(c.params), dict(metrics or {}))


def _evaluate(evaluate_fn, archs: list[ArchChoice]) -> list[float]:
  out = list(evaluate_fn(list(archs)))
  if len(out) != len(archs):
    raise errors.HwnasError(f"evaluate_fn returned {len(out)} accuracies for "
                            f"{len(archs)} architectures")
  return [float(x) for x in out]


def run(space: SearchSpace, evaluate_fn: EvaluateFn,
        cost_fns: Mapping[str, CostFn] | CostFn, *,
        budget: int, workdir: str | pathlib.Path,
        objective: str = "constraint",
        target: float | Mapping[str, float] | None = None,
        seed: int = 0, algorithm: str | None = None,
        population: int | None = None, sample_size: int | None = None,
        batch_size: int | None = None, parents_ratio: float = 0.25,
        mutation_ratio: float = 0.5, mutation_prob: float = 0.1,
        max_tries: int = 100, reward_weight: float = -0.07,
        eval_batch_size: int | None = None,
        provenance: Mapping[str, Any] | None = None,
        references: Mapping[str, tuple[float, float | None]] | None = None,
        plot: bool = True, progress: bool = True,
        console: Any = None) -> SearchResult:
  """Runs (or resumes) an evolutionary architecture search.

  Args:
    space: the search space.
    evaluate_fn: list of architectures -> list of accuracies (higher is
      better), called once per generation (or `eval_batch_size` chunk).
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
    algorithm: 'aging' (default for constraint/reward), 'ofa', or 'nsga2'
      (default and required for pareto).
    population: population size (default 100).
    sample_size: aging tournament size (default population // 4).
    batch_size: aging children per generation (default population // 4).
    parents_ratio: OFA surviving share of the population.
    mutation_ratio: OFA share of children made by mutation.
    mutation_prob: per-gene resampling probability of a mutation.
    max_tries: rejection-sampling tries per child before repairing it.
    reward_weight: MnasNet exponent w (default -0.07, soft).
    eval_batch_size: split each generation into calls of at most this many
      architectures (results are saved after each call).
    provenance: the cost table's provenance, copied into best.json.
    references: {name: (cost, accuracy or None)} marked on pareto.png.
    plot: write pareto.png.
    progress: show a progress bar and the summary table.
    console: a rich Console (default: a new one on stdout).

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
  algorithm = _check_algorithm(obj, algorithm)
  settings = _settings(algorithm, population, sample_size=sample_size,
                       batch_size=batch_size, parents_ratio=parents_ratio,
                       mutation_ratio=mutation_ratio,
                       mutation_prob=mutation_prob, max_tries=max_tries)
  if budget < 1:
    raise errors.HwnasError(f"search: budget must be >= 1, got {budget}")
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  config = _config(space, obj, algorithm, settings, seed, cost_fns)
  _check_config(workdir, config)

  fastest = None
  anchor = None
  if obj.hard:
    probe_rng = np.random.default_rng([seed, _PROBE_STREAM])
    for name, t in obj.targets:
      a, c = feasibility.check_target(space, name, t, cost_fns[name],
                                      probe_rng)
      fastest = fastest or (a, c)
    anchor = _feasible_anchor(space, obj, cost_fns, fastest[0])

  recorded = history.read(workdir, repair=True)
  search = _Search(space, obj, cost_fns, settings, algorithm)
  evaluated = _loop(search, evaluate_fn, recorded, budget=budget, seed=seed,
                    workdir=workdir, config=config, anchor=anchor,
                    eval_batch_size=eval_batch_size, progress=progress,
                    console=console)
  from hwnas.search import report
  result = report.finish(search.records, obj, evaluated=evaluated,
                         workdir=workdir, fastest=fastest,
                         provenance=provenance, references=references,
                         plot=plot)
  if progress:
    report.print_summary(result, console=console)
  return result


def _feasible_anchor(space, obj, cost_fns, start: ArchChoice) -> ArchChoice:
  """An architecture meeting every target (for repairs), or an error."""
  costs = {k: float(fn(start)) for k, fn in cost_fns.items()}
  if objectives.feasible(obj, costs):
    return start
  raise errors.HwnasError(
      f"no architecture found in space {space.id} meets all targets "
      f"{dict(obj.targets)} at once (the fastest for {obj.primary} has "
      f"{costs}); relax a target")


def _loop(search: _Search, evaluate_fn, recorded: list[Record], *, budget,
          seed, workdir, config, anchor, eval_batch_size, progress,
          console) -> int:
  bar = _progress(progress, budget, len(recorded), console)
  writer = history.Writer(workdir)
  seen: set[ArchChoice] = set()
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
      chunk = eval_batch_size or max(1, len(todo))
      for k in range(0, len(todo), chunk):
        part = todo[k:k + chunk]
        accs = _evaluate(evaluate_fn, part)
        # An evaluator may also report other accuracies (float and int8).
        extra = getattr(evaluate_fn, "last_metrics", None) or [None] * len(
            part)
        for a, acc, m in zip(part, accs, extra):
          rec = search.make_record(g, a, acc, m)
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
  p = Progress(TextColumn("search"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), console=console)
  task = p.add_task("search", total=budget, completed=min(done, budget))
  p.start()
  return p, task
