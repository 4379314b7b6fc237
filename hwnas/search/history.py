"""Search persistence: `history.jsonl` (one line per evaluation, appended as
it completes) and `state.json` (written atomically every generation).

The history is the source of truth. A resumed search replays it: the
controller recomputes every generation's proposals from the seed and the
records before it, takes recorded results instead of evaluating again and
evaluates only what is missing, so a run killed at any moment ends exactly
like an uninterrupted one. A half-written last line (a kill while
appending) is dropped and cut from the file; its architecture is simply
evaluated again. `state.json` holds the settings (to refuse resuming with
different ones) and the population, for inspection with `jq`. Each
history record also carries a digest of those settings and inputs
(`inputs`), so a resume whose `state.json` is gone still refuses a changed
table instead of mixing its costs with the recorded ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.arch import ArchChoice
from hwnas.search.objectives import Objective

HISTORY = "history.jsonl"
STATE = "state.json"


@dataclasses.dataclass(frozen=True)
class Record:
  """One evaluated architecture."""

  index: int                       # evaluation order, 0-based
  generation: int
  arch: ArchChoice
  accuracy: float
  costs: Mapping[str, float]       # every cost function's value
  macs: int = 0
  params: int = 0
  # Other accuracies the evaluator computed in the same call, e.g.
  # {"accuracy_float": .97, "accuracy_int8": .96} (its returned metrics).
  metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
  # Digest of the search's settings and input identities (tables, ...) the
  # record was made under: a resume checks it even without state.json.
  inputs: str = ""
  # (position in its generation's proposals of the first architecture of
  # the evaluate_fn call that made it, number of architectures in that
  # call): a resume re-evaluates a call a kill cut mid-way, whole.
  batch: tuple[int, int] | None = None

  def to_dict(self) -> dict[str, Any]:
    d = {"index": self.index, "generation": self.generation,
         "arch_string": arch_lib.to_string(self.arch),
         "accuracy": self.accuracy, "costs": dict(self.costs),
         "macs": self.macs, "params": self.params,
         "arch": arch_lib.to_dict(self.arch)}
    if self.metrics:
      d["metrics"] = dict(self.metrics)
    if self.inputs:
      d["inputs"] = self.inputs
    if self.batch:
      d["batch"] = list(self.batch)
    return d


def network_key(arch: ArchChoice) -> tuple:
  """A key equal for choices that build the same network.

  `hwnas.arch` keeps a stage's depth as chosen, so a stage of depth 3 whose
  last block is a skip and the same stage of depth 2 are different choices
  of one network (a skip block is the identity, and the supernet uses the
  same weights for both). The search counts them as one: it never evaluates
  both, and lists one of them on the front.
  """
  stages = []
  for d, bs in zip(arch.depths, arch.blocks):
    while d > 0 and bs[d - 1].type == "skip":
      d -= 1
    stages.append(tuple(bs[:d]))
  return (arch.space, arch.resolution, arch.widths, tuple(stages),
          arch.stem_op, arch.head_op)


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


def record_from_dict(d: Mapping[str, Any], where: str) -> Record:
  """Parses one history row (raises HwnasError naming `where`)."""
  try:
    return Record(int(d["index"]), int(d["generation"]),
                  arch_lib.from_dict(d["arch"], where=where),
                  float(d["accuracy"]),
                  {str(k): float(v) for k, v in d["costs"].items()},
                  int(d.get("macs", 0)), int(d.get("params", 0)),
                  {str(k): float(v)
                   for k, v in d.get("metrics", {}).items()},
                  str(d.get("inputs", "")),
                  (int(d["batch"][0]), int(d["batch"][1]))
                  if d.get("batch") else None)
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise errors.HwnasError(f"{where}: bad history row ({e!r}); move the "
                            "file away to start afresh") from None


def read(workdir: str | os.PathLike[str], *,
         repair: bool = False) -> list[Record]:
  """Reads `workdir/history.jsonl` (see `read_file`)."""
  return read_file(pathlib.Path(workdir) / HISTORY, repair=repair)


def read_file(path: str | os.PathLike[str], *,
              repair: bool = False) -> list[Record]:
  """Reads a history file; [] if it does not exist.

  A torn last line (no newline: killed while appending) is dropped; with
  `repair` it is also cut from the file, so appends continue cleanly.
  """
  path = pathlib.Path(path)
  if not path.exists():
    return []
  data = path.read_bytes()
  # Only newline-terminated lines are complete; a kill while appending
  # leaves a torn tail, which is dropped here and evaluated again.
  complete = data[:data.rfind(b"\n") + 1]
  records = []
  for n, line in enumerate(complete.split(b"\n")[:-1], 1):
    if not line.strip():
      continue
    try:
      d = json.loads(line)
    except ValueError:
      raise errors.HwnasError(f"{path}:{n}: corrupt history line; fix or "
                              "remove it") from None
    r = record_from_dict(d, f"{path}:{n}")
    if r.index != len(records):
      raise errors.HwnasError(f"{path}:{n}: index {r.index}, expected "
                              f"{len(records)}; the history was edited")
    records.append(r)
  if repair and len(complete) < len(data):
    with open(path, "r+b") as f:
      f.truncate(len(complete))
  return records


class Writer:
  """Appends records to `history.jsonl`, one flushed line each."""

  def __init__(self, workdir: str | os.PathLike[str]):
    self.path = pathlib.Path(workdir) / HISTORY
    self._f = open(self.path, "a", encoding="utf-8")

  def append(self, record: Record) -> None:
    if not math.isfinite(record.accuracy):
      raise errors.HwnasError(
          f"evaluate_fn returned {record.accuracy} for "
          f"{arch_lib.to_string(record.arch)}; accuracies must be finite")
    self._f.write(json.dumps(record.to_dict()) + "\n")
    self._f.flush()
    os.fsync(self._f.fileno())

  def close(self) -> None:
    self._f.close()


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
  """Writes JSON to `path` via a temporary file and `os.replace`."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_state(workdir: str | os.PathLike[str]) -> dict[str, Any] | None:
  """The saved state, or None if absent or unreadable (then the history is
  replayed, which needs nothing from it)."""
  path = pathlib.Path(workdir) / STATE
  try:
    d = json.loads(path.read_text())
  except FileNotFoundError:
    return None
  except (ValueError, OSError):
    return None
  return d if isinstance(d, dict) else None
