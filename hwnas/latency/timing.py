"""Timing machinery shared by the measurement backends.

`Timing` (median and spread of one latency), `Prepared` (a built model
ready to call), `time_interleaved` (several prepared models timed in
interleaved rounds), core pinning and host descriptions. Split from
`backends` so that code that only reports a latency (the Edge TPU cost
model's backend) does not import the runtimes' backends.

Timers: both the wall clock and the process CPU clock are read around
every run. `timer='wall'` (default) is latency on a dedicated machine; on a
machine shared with other jobs (this project's: 2 cores, load 3-9) the wall
clock mostly measures waiting for a core, and `timer='cpu'` is the steadier
figure (see benchmarks/results/latency.md for the measured difference).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas import errors


@dataclasses.dataclass(frozen=True)
class Timing:
  """Median and spread of one measured (or estimated) latency, in ms."""

  latency_ms: float
  p10_ms: float | None
  p90_ms: float | None
  count: int
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)



# ---------------------------------------------------------------- helpers --

def cpu_model() -> str:
  """This machine's CPU model name and core count (from /proc/cpuinfo)."""
  name = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          name = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"{name} ({os.cpu_count()} logical cores)"


def load_note() -> str:
  """A note on machine load while measuring (the box may be shared)."""
  try:
    one, five, fifteen = os.getloadavg()
  except OSError:
    return ""
  return (f"load average {one:.2f}/{five:.2f}/{fifteen:.2f} on "
          f"{os.cpu_count()} cores at start")


TIMERS = ("wall", "cpu")


@dataclasses.dataclass(frozen=True)
class Prepared:
  """A built, compiled model ready to time: `call()` runs one inference."""

  call: Callable[[], Any]
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  cores: int = 0     # >= 1: time it pinned to that many cores


def _tasks() -> list[int]:
  return [int(t) for t in os.listdir("/proc/self/task")]


@contextlib.contextmanager
def pinned_to_cores(n: int):
  """Runs the block with this process, every thread, on `n` of its cores.

  `n <= 0` changes nothing. The previous affinity of every thread is
  restored on exit (threads started meanwhile get the process's old set).
  Linux only (`os.sched_setaffinity` on every task of /proc/self/task).
  """
  if n <= 0:
    yield
    return
  if not hasattr(os, "sched_setaffinity") or not os.path.isdir(
      "/proc/self/task"):
    raise errors.HwnasError(
        f"--threads {n}: pinning to cores needs Linux (os.sched_setaffinity);"
        f" use --threads 0 to time on every core")
  allowed = sorted(os.sched_getaffinity(0))
  if n > len(allowed):
    raise errors.HwnasError(
        f"--threads {n}: this process may use only {len(allowed)} core(s) "
        f"({allowed}); use --threads {len(allowed)} or fewer (0: all)")
  chosen = set(allowed[:n])
  saved = {}
  for tid in _tasks():
    try:
      saved[tid] = os.sched_getaffinity(tid)
      os.sched_setaffinity(tid, chosen)
    except OSError:          # the thread ended meanwhile
      pass
  try:
    yield
  finally:
    for tid in _tasks():
      try:
        os.sched_setaffinity(tid, saved.get(tid, set(allowed)))
      except OSError:
        pass


def time_interleaved(prepared: Sequence[Prepared], *, warmup: int,
                     repeats: int, rounds: int = 1, timer: str = "wall",
                     seed: int = 0) -> list[Timing]:
  """Times several prepared models in interleaved rounds.

  Every model is warmed up, then each of `rounds` rounds times every model
  `ceil(repeats / rounds)` times, in a shuffled order. Spreading a model's
  samples over the whole run (instead of one burst of a few milliseconds)
  makes its median see the same mix of machine load as its neighbours:
  on a shared machine that matters more than the number of samples.

  Both clocks are read around every call: wall time (`perf_counter`) and
  the process's CPU time (`process_time`, all threads). `timer` picks the
  one reported as latency/p10/p90; the wall median and minimum and the
  CPU median go to the extras.
  """
  if timer not in TIMERS:
    raise errors.HwnasError(f"--timer {timer!r}: allowed: {', '.join(TIMERS)}")
  cores = {p.cores for p in prepared}
  if len(cores) > 1:
    raise ValueError(f"prepared models ask for different cores: {cores}")
  per = max(1, -(-max(1, repeats) // max(1, rounds)))
  n = per * max(1, rounds)
  wall = np.empty((len(prepared), n))
  cpu = np.empty((len(prepared), n))
  rng = np.random.default_rng(seed)
  with pinned_to_cores(cores.pop() if cores else 0):
    for p in prepared:
      for _ in range(warmup):
        p.call()
    for r in range(max(1, rounds)):
      for i in rng.permutation(len(prepared)):
        call = prepared[i].call
        for k in range(r * per, (r + 1) * per):
          t0, c0 = time.perf_counter(), time.process_time()
          call()
          cpu[i, k] = time.process_time() - c0
          wall[i, k] = time.perf_counter() - t0
  out = []
  for i, p in enumerate(prepared):
    ms = (cpu[i] if timer == "cpu" else wall[i]) * 1e3
    ex = {"wall_median_ms": _r(np.median(wall[i]) * 1e3),
          "wall_min_ms": _r(wall[i].min() * 1e3),
          "cpu_median_ms": _r(np.median(cpu[i]) * 1e3), **p.extras}
    out.append(Timing(float(np.median(ms)), float(np.percentile(ms, 10)),
                      float(np.percentile(ms, 90)), n, ex))
  return out


def _r(x: float) -> float:
  return float(f"{x:.6g}")

