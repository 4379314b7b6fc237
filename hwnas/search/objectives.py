"""Search objectives: which architectures are allowed and how they rank.

* `constraint`: maximise accuracy subject to cost <= target (hard). An
  infeasible architecture is never evaluated.
* `reward`: maximise MnasNet's soft reward ACC * (LAT / T) ** w (Tan et al.
  2019, w = -0.07 by default): every architecture is allowed, slower ones are
  penalised smoothly. With targets on several costs (latency and energy)
  the reward multiplies one such term per target.
* `pareto`: the accuracy-cost front over all cost functions at once (several
  devices' tables = several costs). Ranked by non-dominated sorting; an
  optional target only marks the plot and picks `best`.

Targets apply to named costs; a bare number applies to the primary cost (the
first cost function).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from hwnas import errors

OBJECTIVES = ("constraint", "reward", "pareto")


@dataclasses.dataclass(frozen=True)
class Objective:
  """How architectures are filtered and ranked.

  Attributes:
    kind: 'constraint' | 'reward' | 'pareto'.
    primary: name of the cost the target and the reward refer to.
    targets: (cost name, upper bound) pairs; hard in 'constraint' mode.
    reward_weight: MnasNet exponent w (negative: slower is worse).
  """

  kind: str
  primary: str
  targets: tuple[tuple[str, float], ...] = ()
  reward_weight: float = -0.07

  @property
  def target(self) -> float | None:
    """The primary cost's target, if any."""
    return dict(self.targets).get(self.primary)

  @property
  def hard(self) -> bool:
    return self.kind == "constraint"


def make(kind: str, cost_names: list[str], target: float |
         Mapping[str, float] | None = None, *,
         reward_weight: float = -0.07) -> Objective:
  """Validates the arguments and builds an `Objective`.

  Args:
    kind: 'constraint', 'reward' or 'pareto'.
    cost_names: names of the cost functions, primary first.
    target: bound on the primary cost, or {cost name: bound}.
    reward_weight: MnasNet exponent w for 'reward'.

  Returns:
    The objective.
  """
  if kind not in OBJECTIVES:
    raise errors.HwnasError(f"objective {kind!r} is unknown; use one of "
                            f"{list(OBJECTIVES)}")
  if not cost_names:
    raise errors.HwnasError("search: give at least one cost function")
  if target is None:
    targets = ()
  elif isinstance(target, Mapping):
    unknown = sorted(set(target) - set(cost_names))
    if unknown:
      raise errors.HwnasError(f"search: target for unknown cost(s) {unknown};"
                              f" costs are {cost_names}")
    targets = tuple((k, float(v)) for k, v in target.items())
  else:
    targets = ((cost_names[0], float(target)),)
  for name, t in targets:
    if not math.isfinite(t) or t <= 0:
      raise errors.HwnasError(f"search: target for {name} must be a positive "
                              f"number, got {t}")
  if not math.isfinite(float(reward_weight)):
    raise errors.HwnasError(f"search: reward_weight must be a finite number, "
                            f"got {reward_weight}")
  obj = Objective(kind, cost_names[0], targets, float(reward_weight))
  if kind in ("constraint", "reward") and obj.target is None:
    flag = ("--target-uj" if cost_names[0].startswith("energy_uj") else
            "--target-ms")
    raise errors.HwnasError(f"objective {kind} needs a target on "
                            f"{cost_names[0]} ({flag})")
  return obj


def feasible(obj: Objective, costs: Mapping[str, float]) -> bool:
  """Whether `costs` meet every target (always True without targets)."""
  return all(costs[name] <= t for name, t in obj.targets)


def fitness(obj: Objective, accuracy: float,
            costs: Mapping[str, float]) -> float:
  """Scalar fitness (higher is better) for 'constraint' and 'reward'.

  For 'pareto' this is the accuracy; the front is ranked elsewhere.
  """
  if obj.kind == "reward":
    out = accuracy
    for name, t in obj.targets:
      out *= (max(costs[name], 1e-12) / t) ** obj.reward_weight
    return out
  return accuracy


def unit(name: str) -> str:
  """The unit suffix of a cost name ('latency_ms' -> 'ms')."""
  return name.rsplit("_", 1)[1] if "_" in name else name
