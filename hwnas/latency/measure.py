"""`hwnas table measure`: time every layer a space can produce, resumably.

Every distinct layer signature reachable in the space (at the chosen
resolutions) is built standalone and timed by a backend (`backends.py`):
`chunk` layers are built (jit-compiled / converted) first, then timed
together in `rounds` interleaved rounds, so that every entry's median sees
the same mix of machine load (on a shared machine that, not the number of
runs, decides how well entries add up to whole networks; see
`benchmarks/results/latency.md`). Each finished chunk is appended at once,
entry by entry, to a journal next to the output,
`<out>.partial.jsonl`, whose first line records the measurement settings;
an interrupted run (Ctrl-C, kill, reboot) started again with the same
command re-measures nothing that is in the journal. When every entry is
measured the table is written (atomically) and the journal removed. An
existing table at `--out` with the same settings is extended, not redone:
that is how a table grows by resolutions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
from typing import Any, Iterable

from hwnas import errors
from hwnas.latency import space_layers
from hwnas.latency import table as tbl
from hwnas.latency import table_schema
from hwnas.latency.backends import Backend
from hwnas.latency.timing import Timing, load_note, time_interleaved
from hwnas.netspec import Layer
from hwnas.space import SearchSpace

JOURNAL_SCHEMA = "hwnas/latency-journal@1"
# Settings that must agree between a journal / existing table and a run.
_SETTINGS = ("backend", "precision", "batch_size", "threads", "warmup",
             "repeats", "timer", "rounds")


@dataclasses.dataclass(frozen=True)
class MeasureResult:
  table: tbl.LatencyTable | None   # None while entries remain
  measured: int                    # entries timed by this run
  reused: int                      # entries taken from journal / old table
  remaining: int                   # entries still to measure
  journal: pathlib.Path


def journal_path(out: str | os.PathLike[str]) -> pathlib.Path:
  p = pathlib.Path(out)
  return p.with_name(p.name + ".partial.jsonl")


def _read_journal(path: pathlib.Path, settings: dict[str, Any]
                  ) -> dict[str, tbl.Entry]:
  """Entries of a journal; a cut last line (killed mid-write) is ignored."""
  if not path.is_file():
    return {}
  lines = path.read_text().splitlines()
  if not lines:
    return {}
  try:
    first = json.loads(lines[0])
  except json.JSONDecodeError:
    raise errors.HwnasError(f"{path}: not a measurement journal; delete it "
                            "to start over") from None
  if first.get("journal") != JOURNAL_SCHEMA:
    raise errors.HwnasError(f"{path}: not a {JOURNAL_SCHEMA} journal; delete "
                            "it to start over")
  _check_settings(first.get("settings", {}), settings, path)
  out = {}
  for i, line in enumerate(lines[1:], start=2):
    try:
      d = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines):
        break  # the run was killed while writing this line
      raise errors.HwnasError(f"{path}: line {i} is not JSON; delete the "
                              "line or the journal") from None
    key = d.pop("key")
    out[key] = tbl.parse_entry(key, d, str(path))
  return out


def _meaning(fields: dict[str, Any], options: dict[str, Any]
             ) -> dict[str, Any]:
  """Settings besides timing that change what an entry means: the device
  (for the Edge TPU model it names the link and clock) and the backend
  options (link=, clock=, ...); part of every resume check."""
  return {"device": fields.get("device"),
          "options": {k: str(v) for k, v in sorted(options.items())}}


def _check_settings(old: dict[str, Any], new: dict[str, Any],
                    where: pathlib.Path | str,
                    keys: tuple[str, ...] = _SETTINGS + ("device", "options")
                    ) -> None:
  for k in keys:
    if k in ("device", "options") and k not in old:
      continue  # a journal of an older hwnas did not record them
    if old.get(k) != new.get(k):
      raise errors.HwnasError(
          f"{where}: was measured with {k}={old.get(k)!r} but this run uses "
          f"{k}={new.get(k)!r}; rerun with the same settings, or write to "
          "another --out (or delete that file to start over)")


def _append(path: pathlib.Path, entry: tbl.Entry) -> None:
  with open(path, "a") as f:
    f.write(json.dumps({"key": entry.key, **entry.to_dict()}) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _progress(enabled: bool):
  from hwnas import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  return progress_lib.make(enabled, lambda: rp.Progress(
      rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
      rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), rp.TextColumn("eta"),
      rp.TimeRemainingColumn(), rp.TextColumn("{task.fields[key]}"),
      disable=not enabled, transient=False))


def measure_space(space: SearchSpace, backend: str | Backend,
                  out: str | os.PathLike[str], *,
                  resolutions: Iterable[int] | None = None,
                  batch_size: int = 1, threads: int = 1, warmup: int = 10,
                  repeats: int = 50, seed: int = 0, timer: str = "wall",
                  rounds: int = 5, chunk: int = 16,
                  max_entries: int | None = None, progress: bool = True,
                  command: str | None = None,
                  backend_options: dict[str, Any] | None = None
                  ) -> MeasureResult:
  """Measures (or resumes measuring) a table of `space` into `out`.

  Args:
    space: the search space to cover.
    backend: a backend name ('xla', 'litert', 'litert-int8', 'edgetpu', or
      a registered one) or a backend object.
    out: the table to write; `<out>.partial.jsonl` holds progress.
    resolutions: a subset of the space's resolutions (default: all).
    batch_size, threads, warmup, repeats: timing settings (in the header).
    timer: 'wall' or 'cpu' (process CPU time; see timing.time_interleaved).
    rounds: timing rounds; `chunk` layers are built, then timed together
      in `rounds` interleaved rounds (timing.time_interleaved).
    seed: initialisation and input seed.
    max_entries: stop after timing this many new entries (the journal
      keeps them; run again to continue).
    progress: show a rich progress bar with ETA.
    command: the command line, recorded in the provenance.
    backend_options: extra keyword options for the backend factory.

  Returns:
    A MeasureResult; `.table` is None while entries remain.
  """
  res = tuple(resolutions or space.resolutions)
  bad = sorted(set(res) - set(space.resolutions))
  if bad:
    raise errors.HwnasError(
        f"--resolutions {bad} not in space {space.id}; allowed: "
        f"{list(space.resolutions)}")
  opts = dict(backend_options or {})
  if timer != "wall":
    opts["timer"] = timer   # plug-in backends need not know the option
  be = _backend(backend, threads, seed, timer, backend_options)
  fields = be.header_fields()
  settings = {"backend": be.name, "precision": be.precision,
              "batch_size": batch_size, "threads": threads,
              "warmup": warmup, "repeats": repeats,
              "timer": getattr(be, "timer", timer),
              "rounds": rounds if hasattr(be, "prepare_layer") else 1,
              **_meaning(fields, opts)}
  out = pathlib.Path(out)
  jpath = journal_path(out)
  done, old = _resume(be, out, jpath, settings)
  # A shift layer times as its multiply equivalent (the same entry; see
  # `table._MultEquivalent`), so only that one is measured.
  todo_layers = {l.as_mult()
                 for l in space_layers.enumerate_layers(space, res)}
  if old is not None and old.provenance["kind"] == "estimated":
    # An estimate is recomputed whole, the old table's other spaces too.
    keys = {l.key() for l in todo_layers}
    todo_layers = list(todo_layers) + [
        e.layer for k, e in old.entries.items() if k not in keys]
  todo_layers = sorted(todo_layers, key=lambda l: (l.input_size, l.key()))
  todo = [l for l in todo_layers if l.key() not in done]
  reused = len(todo_layers) - len(todo)
  load_start = load_note()
  limit = len(todo) if max_entries is None else min(len(todo), max_entries)
  with _progress(progress) as bar:
    task = bar.add_task(f"{be.name} {space.id}", total=len(todo_layers),
                        completed=reused, key="")
    step = max(1, chunk) if settings["rounds"] > 1 else 1
    for start in range(0, limit, step):
      group = todo[start:min(start + step, limit)]
      for t, layer in zip(_time_group(be, group, settings, seed, bar,
                                      task), group):
        entry = _entry(layer, t)
        _append(jpath, entry)
        done[entry.key] = entry
      bar.advance(task, len(group))
  if limit < len(todo):
    return MeasureResult(None, limit, reused, len(todo) - limit, jpath)
  if old is not None and set(done) == set(old.entries) and (
      set(res) <= set(old.header.get("resolutions", {}).get(space.id, ()))):
    jpath.unlink(missing_ok=True)   # nothing new: keep the table as it is
    return MeasureResult(old, 0, reused, 0, jpath)
  table = _finish(space, be, fields, settings, done, old, res, out,
                  load_start, command)
  table.save(out)
  jpath.unlink(missing_ok=True)
  return MeasureResult(table, limit, reused, 0, jpath)


def _backend(backend: str | Backend, threads: int, seed: int, timer: str,
             backend_options: dict[str, Any] | None) -> Backend:
  """A backend object (created by name from `hwnas.latency.BACKENDS`)."""
  if not isinstance(backend, str):
    return backend
  opts = dict(backend_options or {})
  if timer != "wall":
    opts["timer"] = timer   # plug-in backends need not know the option
  from hwnas.latency.backend_kinds import get_backend  # pylint: disable=g-import-not-at-top
  return get_backend(backend, threads=threads, seed=seed, **opts)


def _resume(be: Backend, out: pathlib.Path, jpath: pathlib.Path,
            settings: dict[str, Any]
            ) -> tuple[dict[str, tbl.Entry], tbl.LatencyTable | None]:
  """Entries already done (journal, then `out`) and the old table; starts
  the journal. An estimate times nothing: it recomputes every entry (a
  changed model must not leave stale entries behind)."""
  estimated = (be.header_fields().get("provenance") or {}).get(
      "kind") == "estimated"
  if estimated:
    jpath.unlink(missing_ok=True)
  done = _read_journal(jpath, settings)
  old = None
  if out.is_file():
    old = tbl.load_table(out)
    # Timing settings only bind measured tables (estimates time nothing);
    # what an entry means (backend, device: link and clock) binds all.
    _check_settings(old.header, settings, out,
                    (_SETTINGS if old.provenance["kind"] == "measured" else
                     ("backend", "precision", "batch_size")) + ("device",))
    for k, e in old.entries.items():
      if not estimated:
        done.setdefault(k, e)
  if not jpath.is_file():
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps({"journal": JOURNAL_SCHEMA,
                                 "settings": settings}) + "\n")
  return done, old


def _time_group(be, group: list[Layer], settings: dict[str, Any],
                seed: int, bar, task) -> list[Timing]:
  """Builds then times `group` (interleaved rounds when supported)."""
  kw = dict(batch_size=settings["batch_size"])
  if settings["rounds"] <= 1:
    bar.update(task, key=group[0].key())
    return [be.time_layer(group[0], warmup=settings["warmup"],
                          repeats=settings["repeats"], **kw)]
  prepared = []
  for layer in group:
    bar.update(task, key=f"build {layer.key()}")
    prepared.append(be.prepare_layer(layer, settings["batch_size"]))
  bar.update(task, key=f"timing {len(group)} layers")
  return time_interleaved(prepared, warmup=settings["warmup"],
                          repeats=settings["repeats"],
                          rounds=settings["rounds"],
                          timer=settings["timer"], seed=seed)


def _entry(layer: Layer, t: Timing) -> tbl.Entry:
  extras = {k: v for k, v in dict(t.extras).items() if v is not None}
  return tbl.Entry(layer, t.latency_ms, t.p10_ms, t.p90_ms, t.count, extras)


def _finish(space, be, fields, settings, done, old, res, out, load_start,
            command) -> tbl.LatencyTable:
  spaces = sorted(set((old.header["spaces"] if old else [])) | {space.id})
  resolutions = dict(old.header.get("resolutions", {})) if old else {}
  resolutions[space.id] = sorted(set(resolutions.get(space.id, [])) |
                                 set(res))
  notes = fields.pop("notes", "")
  provenance = fields.pop("provenance", None) or {
      "kind": "measured", "backend": be.name,
      "command": command or " ".join(["hwnas"] + sys.argv[1:])}
  timed = provenance.get("kind") == "measured"
  if not timed and command:
    provenance = {**provenance, "command": command}
  fields = {"threads": settings["threads"], **fields}
  if timed:
    fields = {"timer": settings["timer"], "rounds": settings["rounds"],
              **fields}
  header = table_schema.make_header(
      backend=be.name, precision=be.precision,
      batch_size=settings["batch_size"],
      warmup=settings["warmup"] if timed else 0,
      repeats=settings["repeats"] if timed else 0,
      spaces=spaces, provenance=provenance,
      resolutions=resolutions,
      load=f"{load_start}; {load_note().replace('at start', 'at end')}",
      notes=notes, **fields)
  for k in ("network_model", "calibration", "fidelity"):
    if old is not None and k in old.header and k not in header:
      header[k] = old.header[k]   # fitted on the old entries; revalidate
  return tbl.new_table(header, done.values(), out)


def retime(table: tbl.LatencyTable, timer: str) -> tbl.LatencyTable:
  """The table re-read with the other clock of the same runs.

  Every entry measured by `time_interleaved` records the median of both
  clocks (`extras.wall_median_ms`, `extras.cpu_median_ms`); this swaps
  `latency_ms` to the chosen one. p10/p90 were taken on the measuring
  clock only, so they are kept only when `timer` is that clock. The
  table's calibration and fidelity summary are dropped (they belong to the
  other clock): validate again.
  """
  key = {"wall": "wall_median_ms", "cpu": "cpu_median_ms"}.get(timer)
  if key is None:
    raise errors.HwnasError(f"--timer {timer!r}: allowed: wall, cpu")
  h = dict(table.header)
  if h.get("timer", "wall") == timer:
    return table
  entries = []
  for k, e in table.entries.items():
    if key not in e.extras:
      raise errors.HwnasError(
          f"{table.path}: entries[{k!r}] has no extras.{key}: it was not "
          f"measured with both clocks; re-measure with --timer {timer}")
    entries.append(dataclasses.replace(e, latency_ms=float(e.extras[key]),
                                       p10_ms=None, p90_ms=None))
  for k in ("calibration", "fidelity"):
    h.pop(k, None)
  h["timer"] = timer
  h["notes"] = (h.get("notes", "") + f"; latency_ms re-read as the {timer} "
                f"clock median of the same runs (hwnas table retime; p10/p90 "
                f"were of the other clock and are dropped)").lstrip("; ")
  return tbl.new_table(h, entries, table.path)
