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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from hwnas import arch as arch_lib
from hwnas.arch import ArchChoice
from hwnas.search import feasibility, pareto
from hwnas.space import SearchSpace

ALGORITHMS = ("aging", "ofa", "nsga2")


@dataclasses.dataclass(frozen=True)
class Settings:
  """Hyperparameters of the evolutionary algorithms."""

  population: int = 100
  sample_size: int = 25          # aging: tournament size
  batch_size: int = 25           # aging: children per generation
  parents_ratio: float = 0.25    # ofa
  mutation_ratio: float = 0.5    # ofa: share of children by mutation
  mutation_prob: float = 0.1     # per-gene resampling probability
  max_tries: int = 100           # rejection-sampling tries per child


class Pool:
  """Tracks what may still be proposed: novel and (if hard) feasible."""

  def __init__(self, space: SearchSpace, ok_fn: Callable[[ArchChoice], bool],
               anchor: ArchChoice | None, seen: set[ArchChoice]):
    self.space, self.ok_fn, self.anchor = space, ok_fn, anchor
    self.seen = seen

  def accept(self, arch: ArchChoice) -> bool:
    """True (and reserves `arch`) if it is novel and feasible."""
    if arch in self.seen or not self.ok_fn(arch):
      return False
    self.seen.add(arch)
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
          lambda a: a not in self.seen and self.ok_fn(a))
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
