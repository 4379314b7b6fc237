"""Evolutionary operators: one generation of proposals per algorithm.

Every function here is pure: it takes an explicit generator, the records
evaluated so far (by the population's record indices) and a `Pool` that
answers "may this architecture be evaluated?" (novel, and feasible under a
hard target), and returns new architectures. Nothing is evaluated here.

* `aging` - regularized evolution (Real et al. 2019): tournament selection
  of `sample_size` members, mutation, the oldest member dies.
* `ofa` - Once-for-All truncation evolution: the top `parents_ratio` of the
  population survive; children are mutations (prob `mutation_prob`) or
  uniform crossovers of random parents.
* `nsga2` - NSGA-II (Deb et al. 2002): binary tournaments on (rank,
  crowding), crossover + mutation, and (mu + lambda) survival.
* `surrogate` - surrogate-guided evolution (in the spirit of BANANAS,
  White et al. 2021, and NPENAS, Wei et al. 2022): `candidates` children of
  the best `sample_size` records (mutations of 1 to 3 genes, crossovers,
  a few random architectures), each infeasible one repaired towards its
  parent (so it lands just inside the target, where the best architectures
  are), ranked by a score (a surrogate's optimistic accuracy); the best
  `batch_size` are proposed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from hwnas import arch as arch_lib
from hwnas.arch import ArchChoice
from hwnas.search import feasibility, history, pareto
from hwnas.space import SearchSpace

ALGORITHMS = ("surrogate", "aging", "ofa", "nsga2")


@dataclasses.dataclass(frozen=True)
class Settings:
  """Hyperparameters of the evolutionary algorithms."""

  population: int = 100          # surrogate: the first (random) generation
  sample_size: int = 25          # aging: tournament size; surrogate: parents
  batch_size: int = 25           # aging, surrogate: children per generation
  candidates: int = 0            # surrogate: children scored per generation
  parents_ratio: float = 0.25    # ofa
  mutation_ratio: float = 0.5    # ofa: share of children by mutation
  mutation_prob: float = 0.1     # per-gene resampling probability
  max_tries: int = 100           # rejection-sampling tries per child


class Pool:
  """Tracks what may still be proposed: novel and (if hard) feasible.

  Novel means no architecture building the same network
  (`history.network_key`) was proposed before; `seen` holds those keys.
  """

  def __init__(self, space: SearchSpace, ok_fn: Callable[[ArchChoice], bool],
               anchor: ArchChoice | None, seen: set[tuple]):
    self.space, self.ok_fn, self.anchor = space, ok_fn, anchor
    self.seen = seen

  def fresh(self, arch: ArchChoice) -> bool:
    """Whether `arch` is novel and feasible (reserves nothing)."""
    return history.network_key(arch) not in self.seen and self.ok_fn(arch)

  def accept(self, arch: ArchChoice) -> bool:
    """True (and reserves `arch`) if it is novel and feasible."""
    if not self.fresh(arch):
      return False
    self.seen.add(history.network_key(arch))
    return True

  def draw(self, rng: np.random.Generator,
           make_fn: Callable[[np.random.Generator], ArchChoice],
           max_tries: int) -> ArchChoice | None:
    """Rejection sampling from `make_fn`, then a bounded repair; or None."""
    last = None
    for _ in range(max_tries):
      last = make_fn(rng)
      if self.accept(last):
        return last
    if self.anchor is not None and last is not None:
      fixed = feasibility.repair(
          rng, self.space, last, self.anchor,
          self.fresh)
      if fixed is not None and self.accept(fixed):
        return fixed
    return None


def _fill(rng, pool: Pool, n: int, make_fn, max_tries: int) -> list:
  out = []
  for _ in range(n):
    a = pool.draw(rng, make_fn, max_tries)
    if a is not None:
      out.append(a)
  return out


def random_archs(rng: np.random.Generator, pool: Pool, n: int,
                 settings: Settings) -> list[ArchChoice]:
  """`n` novel, feasible random architectures (fewer if none are found)."""
  return _fill(rng, pool, n, lambda r: arch_lib.sample(r, pool.space),
               settings.max_tries)


def aging(rng: np.random.Generator, pool: Pool, fitness: Sequence[float],
          archs: Sequence[ArchChoice], settings: Settings) -> list[ArchChoice]:
  """Regularized-evolution children of a population (oldest first)."""
  k = min(settings.sample_size, len(archs))

  def child(r):
    idx = r.choice(len(archs), size=k, replace=False)
    parent = archs[max(idx, key=lambda i: (fitness[i], -i))]
    return arch_lib.mutate(r, pool.space, parent, settings.mutation_prob)
  return _fill(rng, pool, settings.batch_size, child, settings.max_tries)


def ofa_parents(fitness: Sequence[float], settings: Settings) -> list[int]:
  """Indices of the surviving parents: top `parents_ratio`, stable order."""
  n = max(1, int(round(settings.population * settings.parents_ratio)))
  order = sorted(range(len(fitness)), key=lambda i: (-fitness[i], i))
  return order[:n]


def ofa(rng: np.random.Generator, pool: Pool, parents: Sequence[ArchChoice],
        settings: Settings) -> list[ArchChoice]:
  """Once-for-All children: mutations, then crossovers, of the parents."""
  n_children = settings.population - len(parents)
  n_mut = int(round(n_children * settings.mutation_ratio))
  space = pool.space

  def mutant(r):
    p = parents[int(r.integers(len(parents)))]
    return arch_lib.mutate(r, space, p, settings.mutation_prob)

  def cross(r):
    i, j = r.integers(len(parents), size=2)
    return arch_lib.crossover(r, space, parents[int(i)], parents[int(j)])
  return (_fill(rng, pool, n_mut, mutant, settings.max_tries)
          + _fill(rng, pool, n_children - n_mut, cross, settings.max_tries))


def nsga2(rng: np.random.Generator, pool: Pool, F: np.ndarray,
          archs: Sequence[ArchChoice],
          settings: Settings) -> list[ArchChoice]:
  """NSGA-II offspring: tournament on (rank, crowding), crossover, mutate."""
  rank, crowd = pareto.rank_and_crowding(F)
  space = pool.space

  def tournament(r):
    i, j = (int(x) for x in r.integers(len(archs), size=2))
    better = (rank[i], -crowd[i], i) <= (rank[j], -crowd[j], j)
    return archs[i if better else j]

  def child(r):
    c = arch_lib.crossover(r, space, tournament(r), tournament(r))
    return arch_lib.mutate(r, space, c, settings.mutation_prob)
  return _fill(rng, pool, settings.population, child, settings.max_tries)


def nsga2_survivors(F: np.ndarray, settings: Settings) -> list[int]:
  """Indices of the next NSGA-II population (rank, then crowding)."""
  return [int(i) for i in pareto.survive(F, settings.population)]


def _live_genes(space: SearchSpace) -> list[feasibility.Gene]:
  return [g for g in feasibility.genes(space)
          if len(feasibility.options(space, g)) > 1]


def step_mutate(rng: np.random.Generator, space: SearchSpace,
                arch: ArchChoice, k: int,
                genes: Sequence[feasibility.Gene] | None = None
                ) -> ArchChoice:
  """`arch` with `k` genes changed, each to another value (dead genes, which
  change no network, are redrawn up to 20 times per step)."""
  genes = genes if genes is not None else _live_genes(space)
  for _ in range(k):
    key = history.network_key(arch)
    for _ in range(20):
      g = genes[int(rng.integers(len(genes)))]
      vals = [v for v in feasibility.options(space, g)
              if v != feasibility.get(arch, g)]
      b = feasibility.set_gene(space, arch, g, vals[int(rng.integers(
          len(vals)))])
      if history.network_key(b) != key:
        arch = b
        break
  return arch


_STEPS = (1, 1, 1, 2, 2, 3)   # genes changed by a surrogate mutation


def surrogate(rng: np.random.Generator, pool: Pool,
              parents: Sequence[ArchChoice],
              score_fn: Callable[[list[ArchChoice]], np.ndarray],
              settings: Settings) -> list[ArchChoice]:
  """Surrogate-guided children: the `batch_size` best-scored candidates.

  Args:
    rng: the generation's generator.
    pool: what may be proposed (novel, feasible).
    parents: the best records' architectures, best first.
    score_fn: candidates -> [n] scores (higher is proposed first).
    settings: `candidates` attempts, `batch_size` proposals.

  Returns:
    Up to `batch_size` novel, feasible architectures (random ones fill up
    when too few candidates are found).
  """
  space = pool.space
  genes = _live_genes(space)
  rank_w = 1.0 / np.arange(1, len(parents) + 1)
  rank_w /= rank_w.sum()
  cands: list[ArchChoice] = []
  keys: set[tuple] = set()

  def fresh(a):
    return history.network_key(a) not in keys and pool.fresh(a)

  for _ in range(settings.candidates):
    i = int(rng.choice(len(parents), p=rank_w))
    u = rng.random()
    if u < 0.65:
      child = step_mutate(rng, space, parents[i],
                          _STEPS[int(rng.integers(len(_STEPS)))], genes)
    elif u < 0.9:
      j = int(rng.integers(len(parents)))
      child = arch_lib.crossover(rng, space, parents[i], parents[j])
      if history.network_key(child) in (history.network_key(parents[i]),
                                        history.network_key(parents[j])):
        child = step_mutate(rng, space, child, 1, genes)
    else:
      child = arch_lib.sample(rng, space)
    if not fresh(child) and not pool.ok_fn(child):
      # Infeasible: walk back towards the (feasible) parent and stop at
      # the first feasible novel step, just inside the target.
      child = feasibility.repair(rng, space, child, parents[i], fresh)
    if child is not None and fresh(child):
      keys.add(history.network_key(child))
      cands.append(child)
  out = []
  if cands:
    scores = np.asarray(score_fn(cands), np.float64)
    for k in np.argsort(-scores, kind="stable"):
      if len(out) == settings.batch_size:
        break
      if pool.accept(cands[int(k)]):
        out.append(cands[int(k)])
  if len(out) < settings.batch_size:
    out += random_archs(rng, pool, settings.batch_size - len(out), settings)
  return out
