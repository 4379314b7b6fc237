"""Progress that stays alive when stdout is not a terminal.

A rich progress bar draws nothing until it stops when stdout is redirected
(`hwnas table measure ... > log`), so a 20-minute command looks dead.
`make(enabled, rich_factory)` returns the rich bar on a terminal and, on a
file or pipe, a `LineProgress` with the same calls (`add_task`, `update`,
`advance`, context manager) that prints one plain line every `every`
items or `seconds` seconds, and one at the end.

Lowest layer: imports nothing of hwnas.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

SECONDS = 30.0


def _fmt_s(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
      f"{s // 60}m{s % 60:02d}s")


class LineProgress:
  """Plain progress lines (see the module docstring)."""

  def __init__(self, every: int | None = None, seconds: float = SECONDS,
               out: TextIO | None = None, clock: Callable[[], float] =
               time.monotonic):
    self.every, self.seconds = every, seconds
    self.out, self.clock = out, clock
    self.tasks: list[dict[str, Any]] = []

  def __enter__(self) -> "LineProgress":
    return self

  def __exit__(self, *exc) -> None:
    for i, t in enumerate(self.tasks):
      if t["completed"] != t["printed"]:
        self._print(i)

  def start(self) -> None:
    """Nothing to draw (rich's `Progress.start`)."""

  def stop(self) -> None:
    """The last line of every task (rich's `Progress.stop`)."""
    self.__exit__()

  def add_task(self, description: str, total: float | None = None,
               completed: float = 0, **fields: Any) -> int:
    now = self.clock()
    self.tasks.append({"description": description, "total": total,
                       "completed": completed, "start": completed,
                       "fields": dict(fields), "t0": now, "last": now,
                       "printed": completed})
    return len(self.tasks) - 1

  def update(self, task: int, *, completed: float | None = None,
             advance: float | None = None, total: float | None = None,
             **fields: Any) -> None:
    t = self.tasks[task]
    if total is not None:
      t["total"] = total
    if completed is not None:
      t["completed"] = completed
    if advance:
      t["completed"] += advance
    t["fields"].update({k: v for k, v in fields.items()
                        if k not in ("description", "refresh", "visible")})
    self._maybe_print(task)

  def advance(self, task: int, advance: float = 1) -> None:
    self.update(task, advance=advance)

  def _maybe_print(self, task: int) -> None:
    t = self.tasks[task]
    total = t["total"] or 0
    every = self.every or max(1, int(total) // 20)
    if (t["completed"] - t["printed"] >= every
        or self.clock() - t["last"] >= self.seconds):
      self._print(task)

  def _print(self, task: int) -> None:
    t = self.tasks[task]
    now = self.clock()
    t["last"], t["printed"] = now, t["completed"]
    done, total = t["completed"], t["total"]
    elapsed = now - t["t0"]
    line = f"{t['description']}: {done:g}"
    if total:
      line += f"/{total:g} ({100 * done / total:.0f}%)"
    line += f", {_fmt_s(elapsed)} elapsed"
    rate = (done - t["start"]) / elapsed if elapsed > 0 else 0
    if total and rate > 0 and done < total:
      line += f", eta {_fmt_s((total - done) / rate)}"
    extra = "; ".join(f"{k} {_field(v)}" for k, v in t["fields"].items()
                      if v not in ("", None))
    if extra:
      line += f"; {extra}"
    out = self.out or sys.stdout
    print(line, file=out, flush=True)


def _field(v: Any) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def make(enabled: bool, rich_factory: Callable[[], Any], *,
         every: int | None = None, seconds: float = SECONDS):
  """The rich bar of `rich_factory()` on a terminal (or when disabled: it
  then draws nothing), else `LineProgress(every, seconds)`."""
  if not enabled or sys.stdout.isatty():
    return rich_factory()
  return LineProgress(every=every, seconds=seconds)
