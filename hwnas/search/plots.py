"""pareto.png: accuracy vs cost of every evaluation, the front, the target
and reference networks (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.search.history import Record


def _front_line(front: Sequence[Record], cost_name: str) -> np.ndarray:
  """(cost, accuracy) of the 2-D front over `cost_name`, as a staircase."""
  pts = sorted((r.costs[cost_name], -r.accuracy) for r in front)
  out, best = [], -np.inf
  for c, neg_acc in pts:
    if -neg_acc > best:
      out.append((c, -neg_acc))
      best = -neg_acc
  return np.asarray(out, np.float64).reshape(-1, 2)


def axis_label(cost_name: str) -> str:
  """'latency_ms' -> 'latency (ms)', 'latency_ms@litert' -> 'latency (ms,
  litert)', 'mmacs' -> 'MACs (millions)'."""
  named = {"mmacs": "MACs (millions)", "mparams": "parameters (millions)"}
  if cost_name in named:
    return named[cost_name]
  name, _, where = cost_name.partition("@")
  if "_" not in name:
    return cost_name
  what, unit = name.rsplit("_", 1)
  unit = {"uj": "µJ"}.get(unit, unit)
  unit = f"{unit}, {where}" if where else unit
  return f"{what.replace('_', ' ')} ({unit})"


Band = Callable[[Any], "tuple[float, float] | None"]


def plot_front(path: str | os.PathLike[str], records: Sequence[Record],
               front: Sequence[Record], *, cost_name: str,
               target: float | None = None, best: Record | None = None,
               references: Mapping[str, tuple[float, float | None]] |
               None = None, title: str | None = None,
               panels: Sequence[str] = (),
               bands: Mapping[str, Band] | None = None,
               titles: Mapping[str, str] | None = None) -> None:
  """Writes the accuracy-vs-cost plot to `path` (PNG).

  Args:
    path: output file.
    records: every evaluation (grey points).
    front: non-dominated records (the front over each panel's cost).
    cost_name: the first panel's x axis (e.g. 'latency_ms').
    target: draws a vertical target line (first panel).
    best: marks the selected architecture (every panel).
    references: {name: (cost, accuracy or None)} on the first panel; None
      accuracy draws a labelled vertical line. Those far outside the
      evaluated cost range (below half the lowest or above twice the
      highest) are left out.
    title: the first panel's title (e.g. the latency table and whether it
      is measured or estimated).
    panels: further costs, one panel each (e.g. a second device's
      'latency_ms@litert-int8').
    bands: {cost name: arch -> (low, high)} for costs from tables with an
      uncertainty band: the front's points get horizontal band bars.
    titles: {cost name: title} of the further panels.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = [cost_name] + [n for n in panels if n != cost_name]
  fig, axes = plt.subplots(1, len(names), figsize=(6.4 * len(names), 4.4),
                           dpi=110, squeeze=False)
  for i, (name, ax) in enumerate(zip(names, axes[0])):
    first = i == 0
    _panel(ax, records, front, name, target=target if first else None,
           best=best, references=references if first else None,
           band=(bands or {}).get(name))
    t = title if first else (titles or {}).get(name)
    if t:
      ax.set_title(t, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _panel(ax, records, front, cost_name, *, target, best, references,
           band) -> None:
  """One accuracy-vs-`cost_name` panel."""
  x = [r.costs[cost_name] for r in records]
  y = [r.accuracy for r in records]
  ax.scatter(x, y, s=8, c="0.65", label=f"evaluated ({len(records)})")
  _other_accuracy(ax, records, cost_name)
  line = _front_line(front or records, cost_name)
  ax.step(line[:, 0], line[:, 1], where="post", c="C0", lw=1.5,
          marker="o", ms=3, label="Pareto front")
  if band is not None:
    _band_bars(ax, front or records, cost_name, band)
  if target is not None:
    ax.axvline(target, c="C3", ls="--", lw=1, label=f"target {target:g}")
  if best is not None:
    ax.scatter([best.costs[cost_name]], [best.accuracy], marker="*", s=160,
               c="C1", zorder=5, label="best")
  lo, hi = 0.5 * min(x), 2.0 * max(x)
  refs = {k: v for k, v in (references or {}).items() if lo <= v[0] <= hi}
  for i, (name, (cost, acc)) in enumerate(refs.items()):
    if acc is None:
      ax.axvline(cost, c=f"C{(i + 4) % 10}", ls=":", lw=1)
      ax.annotate(name, (cost, 0.99 - 0.1 * (i % 3)), rotation=90,
                  xycoords=("data", "axes fraction"), va="top", ha="right",
                  fontsize=7)
    else:
      ax.scatter([cost], [acc], marker="s", s=30, c=f"C{(i + 4) % 10}")
      ax.annotate(name, (cost, acc), fontsize=7, xytext=(3, 3),
                  textcoords="offset points")
  ax.set_xlabel(axis_label(cost_name))
  ax.set_ylabel("accuracy")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")


def _band_bars(ax, front, cost_name, band) -> None:
  """Horizontal bars from each front point's band low to high."""
  pts = []
  for r in front:
    b = band(r.arch)
    if b is not None:
      pts.append((r.costs[cost_name], r.accuracy, b[0], b[1]))
  if not pts:
    return
  x, y, lo, hi = (np.asarray(v, np.float64) for v in zip(*pts))
  err = np.stack([np.maximum(x - lo, 0), np.maximum(hi - x, 0)])
  ax.errorbar(x, y, xerr=err, fmt="none", ecolor="C0", alpha=0.45, lw=1,
              capsize=2, label="latency band (estimated table)")


def _other_accuracy(ax, records, cost_name: str) -> None:
  """Where the evaluator also gave float and int8 accuracy (`Record.
  metrics`), the kind not ranked by is drawn as small open markers."""
  pts = [(r.costs[cost_name], r.metrics) for r in records
         if len(getattr(r, "metrics", None) or {}) > 1]
  if not pts:
    return
  for kind, c in (("accuracy_float", "C2"), ("accuracy_int8", "C4")):
    xy = [(x, m[kind]) for x, m in pts if kind in m]
    if xy and any(abs(m[kind] - r.accuracy) > 0 for r in records
                  for m in [r.metrics] if kind in m):
      ax.scatter(*zip(*xy), s=10, facecolors="none", edgecolors=c, lw=0.6,
                 label=kind.replace("accuracy_", "") + " accuracy")

