"""Multi-objective ranking: thin wrappers over pymoo's utilities.

Every function takes an objective matrix `F` of shape [n, m] in which each
column is *minimised*; accuracy enters as its negative (see `matrix`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import (
    calc_crowding_distance)
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def matrix(accuracies: Sequence[float],
           costs: Sequence[Sequence[float]]) -> np.ndarray:
  """[n, 1 + k] matrix (-accuracy, cost_1..cost_k), all minimised."""
  acc = np.asarray(accuracies, np.float64).reshape(-1, 1)
  c = np.asarray(costs, np.float64).reshape(len(acc), -1)
  return np.concatenate([-acc, c], axis=1)


def fronts(F: np.ndarray) -> list[np.ndarray]:
  """Non-dominated fronts (lists of row indices), best first."""
  if len(F) == 0:
    return []
  return [np.sort(f) for f in NonDominatedSorting().do(F)]


def front(F: np.ndarray) -> np.ndarray:
  """Row indices of the non-dominated (first) front, ascending."""
  fs = fronts(F)
  return fs[0] if fs else np.zeros(0, np.int64)


def rank_and_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """NSGA-II rank (0 = first front) and crowding distance of every row."""
  rank = np.zeros(len(F), np.int64)
  crowd = np.zeros(len(F), np.float64)
  for r, f in enumerate(fronts(F)):
    rank[f] = r
    crowd[f] = calc_crowding_distance(F[f]) if len(f) > 2 else np.inf
  return rank, crowd


def survive(F: np.ndarray, n: int) -> np.ndarray:
  """NSGA-II survival: indices of the `n` best rows by rank, then crowding.

  Ties are broken by row order, so the result is deterministic.
  """
  rank, crowd = rank_and_crowding(F)
  order = np.lexsort((np.arange(len(F)), -crowd, rank))
  return np.sort(order[:n])


def hypervolume(F: np.ndarray, ref_point: Sequence[float]) -> float:
  """Hypervolume dominated by `F` up to `ref_point` (larger is better)."""
  if len(F) == 0:
    return 0.0
  return float(HV(ref_point=np.asarray(ref_point, np.float64))(F))
