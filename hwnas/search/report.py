"""Search outputs: best.json, pareto.json, pareto.png and the summary."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from hwnas import arch as arch_lib
from hwnas.search import history, objectives, pareto
from hwnas.search.history import Record, SearchResult
from hwnas.search.objectives import Objective

BEST = "best.json"
PARETO = "pareto.json"
PLOT = "pareto.png"


def ranked(records: Sequence[Record], obj: Objective) -> list[Record]:
  """The records that compete under `obj`, best first.

  In 'reward' mode every record competes on the reward; otherwise the
  records meeting the targets, most accurate first (without targets, all
  of them). Ties go to the lower primary cost (so the best is on the
  front), then to the earlier evaluation.
  """
  pool = list(records)
  if obj.kind != "reward":
    pool = [r for r in pool if objectives.feasible(obj, r.costs)]
  return sorted(pool, key=lambda r: (-objectives.fitness(obj, r.accuracy,
                                                         r.costs),
                                     r.costs.get(obj.primary, 0.0), r.index))


def select_best(records: Sequence[Record], obj: Objective) -> Record | None:
  """The best record (`ranked`'s first; None if none meets the targets)."""
  pool = ranked(records, obj)
  return pool[0] if pool else None


def front(records: Sequence[Record], cost_names: Sequence[str]) -> \
    list[Record]:
  """Non-dominated records (accuracy vs every cost), by primary cost.

  Records of one network (`history.network_key`: choices that differ only
  by trailing skip blocks) and records with equal accuracy and costs are
  listed once, the earliest.
  """
  if not records:
    return []
  F = pareto.matrix([r.accuracy for r in records],
                    [[r.costs[k] for k in cost_names] for r in records])
  rows = [records[int(i)] for i in pareto.front(F)]
  rows.sort(key=lambda r: r.index)
  out, keys, points = [], set(), set()
  for r in rows:
    point = (r.accuracy, *(r.costs[k] for k in cost_names))
    key = history.network_key(r.arch)
    if key not in keys and point not in points:
      out.append(r)
    keys.add(key)
    points.add(point)
  return sorted(out, key=lambda r: (r.costs[cost_names[0]], -r.accuracy,
                                    r.index))


def _best_json(best: Record | None, obj: Objective,
               provenance: Mapping[str, Any] | None) -> dict[str, Any]:
  if best is None:
    return {"arch": None, "objective": obj.kind,
            "targets": dict(obj.targets), "provenance": provenance}
  out = {"arch": arch_lib.to_dict(best.arch),
         "arch_string": arch_lib.to_string(best.arch),
         "accuracy": best.accuracy,
         "latency_ms": best.costs.get("latency_ms"),
         "primary_cost": obj.primary,
         "costs": dict(best.costs), "macs": best.macs,
         "params": best.params, "index": best.index,
         "generation": best.generation, "objective": obj.kind,
         "targets": dict(obj.targets), "provenance": provenance}
  if obj.kind == "reward":
    out["reward"] = objectives.fitness(obj, best.accuracy, best.costs)
    out["reward_weight"] = obj.reward_weight
  return out


def _pareto_json(records, fr, obj, cost_names) -> dict[str, Any]:
  F = pareto.matrix([r.accuracy for r in fr],
                    [[r.costs[k] for k in cost_names] for r in fr])
  worst = [max(r.costs[k] for r in records) * 1.1 for k in cost_names]
  ref = [0.0] + worst   # accuracy 0 and 110% of the worst cost seen
  return {"objective": obj.kind, "cost_names": list(cost_names),
          "targets": dict(obj.targets), "evaluations": len(records),
          "hypervolume": pareto.hypervolume(F, ref) if fr else 0.0,
          "hypervolume_reference": {"accuracy": 0.0, **dict(
              zip(cost_names, worst))},
          "front": [r.to_dict() for r in fr]}


def plot_title(provenance: Mapping[str, Any] | None) -> str | None:
  """'latency table xla/tiny (measured)' from a table's provenance."""
  if not provenance or not provenance.get("table"):
    return None
  t = pathlib.PurePath(str(provenance["table"]))
  name = f"{t.parent.name}/{t.stem}" if t.parent.name else t.stem
  kind = provenance.get("kind")
  return f"latency table {name}" + (f" ({kind})" if kind else "")


def finish(records: Sequence[Record], obj: Objective, *, evaluated: int,
           workdir: pathlib.Path, fastest, provenance, references,
           plot: bool, bands=None, titles=None):
  """Writes best.json, pareto.json (and pareto.png: one panel per latency
  cost, with the band of estimated tables); returns the result."""
  cost_names = list(records[0].costs) if records else [obj.primary]
  best = select_best(records, obj)
  fr = front(records, cost_names)
  history.write_json_atomic(workdir / BEST, _best_json(best, obj,
                                                       provenance))
  history.write_json_atomic(workdir / PARETO, _pareto_json(
      records, fr, obj, cost_names))
  if plot and records:
    from hwnas.search import plots
    panels = [k for k in cost_names
              if k != obj.primary and k.startswith("latency_")]
    plots.plot_front(workdir / PLOT, records, fr, cost_name=obj.primary,
                     target=obj.target, best=best, references=references,
                     title=plot_title(provenance), panels=panels,
                     bands=bands, titles=titles)
  return SearchResult(best, tuple(fr), tuple(records), evaluated, workdir,
                      obj, fastest)


def _accuracy_label(records: Sequence[Record]) -> str:
  """'accuracy (int8)' / 'accuracy (float)' when the evaluator gave both
  kinds (`Record.metrics`) and the search ranked by one, else 'accuracy'."""
  both = [r for r in records if len(getattr(r, "metrics", None) or {}) > 1]
  for kind in ("int8", "float"):
    if both and all(r.metrics.get(f"accuracy_{kind}") == r.accuracy
                    for r in both):
      return f"accuracy ({kind})"
  return "accuracy"


def print_summary(result, console=None) -> None:
  """A short rich table: best architecture, its accuracy and costs."""
  from rich.console import Console
  from rich.markup import escape
  from rich.table import Table
  console = console or Console()
  t = Table(title=f"search ({result.objective.kind}, "
            f"{len(result.records)} evaluations, {result.evaluated} new)")
  # Nothing a user must read is cut to '…': cost names keep their width,
  # and long cells wrap (fold) instead of being truncated.
  t.add_column("", overflow="fold")
  t.add_column(_accuracy_label(result.records), justify="right",
               overflow="fold")
  names = list(result.records[0].costs) if result.records else []
  for k in names:
    t.add_column(k, justify="right", overflow="fold", min_width=len(k))
  t.add_column("architecture", overflow="fold", min_width=12)
  rows = [("best", result.best)] if result.best else []
  rows += [(f"front {i}", r) for i, r in enumerate(result.front[:3])]
  for label, r in rows:
    t.add_row(label, f"{r.accuracy:.4f}",
              *[f"{r.costs[k]:.4g}" for k in names],
              escape(arch_lib.to_string(r.arch)))
  console.print(t)
  if result.best is None:
    console.print("no architecture met the target")
  console.print(f"outputs: {result.workdir / BEST}, "
                f"{result.workdir / PARETO}, {result.workdir / PLOT}")
