"""Run directories: an exclusive lock per workdir, checksummed checkpoints.

Two processes writing one workdir (or one latency table) interleave their
records and leave it unusable, so every command that writes one holds
`lock(path)` while it runs: an `fcntl.flock` on a lock file there. The
second process fails at once with one line naming the holder's PID. The
lock is released (and its file removed) when the command ends, and the
kernel releases it if the process dies (kill -9 included).

A checkpoint step directory (Orbax) gets `hwnas_checksums.json`, the
SHA-256 of every file in it, written after Orbax committed the step: the
file is hwnas's own commit marker. `verify(step_dir)` names the first file
that is missing or changed, so a checkpoint that was damaged on disk is
never restored silently.

This module sits at the lowest layer (it imports only `errors`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import sys
from typing import Iterator

from hwnas import errors

LOCK_NAME = ".hwnas.lock"
CHECKSUMS = "hwnas_checksums.json"
_ORBAX_COMMIT = "commit_success.txt"


# ------------------------------------------------------------------ lock --


def _acquire(lock_path: pathlib.Path, what: str, fix: str):
  """An open, flock'ed lock file (retries if the file was replaced)."""
  while True:
    f = open(lock_path, "a+", encoding="utf-8")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        f.close()
        raise
      f.seek(0)
      pid = f.read().strip() or "?"
      f.close()
      raise errors.HwnasError(
          f"{what}: in use by another hwnas process (pid {pid}, lock file "
          f"{lock_path}); wait for it to finish or {fix}") from None
    try:   # the holder may have removed the file between open and flock
      same = os.stat(lock_path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
      same = False
    if same:
      f.seek(0)
      f.truncate()
      f.write(f"{os.getpid()}\n")
      f.flush()
      return f
    f.close()


def _has_files(d: pathlib.Path, ignore: str) -> bool:
  return any(p.is_file() and p.name != ignore for p in d.rglob("*"))


@contextlib.contextmanager
def lock(directory: str | os.PathLike[str], *, flag: str = "--workdir",
         cleanup: bool = True, enabled: bool = True
         ) -> Iterator[pathlib.Path]:
  """Holds the exclusive lock of a run directory (created if needed).

  Args:
    directory: the workdir.
    flag: the option that named it (for the fix in the message).
    cleanup: if this call created the directory and the run fails before
      any file was written into it, remove it again (no empty workdirs).
    enabled: False on the non-leading hosts of a multi-host run (the
      leading host, `jax.process_index() == 0`, holds the lock).

  Yields:
    The directory as a Path.

  Raises:
    HwnasError: another process holds the lock (naming its PID).
  """
  d = pathlib.Path(directory)
  if d.exists() and not d.is_dir():
    raise errors.HwnasError(f"{flag} {d}: is a file, not a directory; give "
                            "a directory")
  created = not d.exists()
  d.mkdir(parents=True, exist_ok=True)
  if not enabled:
    yield d
    return
  lock_path = d / LOCK_NAME
  f = _acquire(lock_path, str(d), f"use another {flag}")
  ok = False
  try:
    yield d
    ok = True
  finally:
    lock_path.unlink(missing_ok=True)
    f.close()
    if not ok and cleanup and created and not _has_files(d, LOCK_NAME):
      shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def lock_file(path: str | os.PathLike[str], *, flag: str = "--out"
              ) -> Iterator[pathlib.Path]:
  """Holds the exclusive lock of an output file (`<path>.lock` beside it)."""
  p = pathlib.Path(path)
  p.parent.mkdir(parents=True, exist_ok=True)
  lock_path = p.with_name(p.name + ".lock")
  f = _acquire(lock_path, str(p), f"write to another {flag}")
  try:
    yield p
  finally:
    lock_path.unlink(missing_ok=True)
    f.close()


# ------------------------------------------------------------- checksums --


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in step_dir.rglob("*")
                if p.is_file() and p.name != CHECKSUMS)


def write_checksums(step_dir: str | os.PathLike[str]) -> pathlib.Path:
  """Records the SHA-256 of every file of a committed checkpoint step.

  Written atomically (temporary file, then rename) after the checkpoint's
  own commit, so its presence marks the step complete.
  """
  d = pathlib.Path(step_dir)
  sums = {str(p.relative_to(d)): _sha256(p) for p in _files(d)}
  out = d / CHECKSUMS
  tmp = out.with_name(out.name + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"sha256": sums}, f, indent=0, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, out)
  return out


def has_checksums(step_dir: str | os.PathLike[str]) -> bool:
  return (pathlib.Path(step_dir) / CHECKSUMS).is_file()


def verify(step_dir: str | os.PathLike[str]) -> str | None:
  """None if the step matches its checksums, else what is wrong (short).

  A step without `hwnas_checksums.json` (interrupted before hwnas marked it
  complete) or without Orbax's commit marker is reported as incomplete.
  """
  d = pathlib.Path(step_dir)
  if not d.is_dir():
    return "missing"
  try:
    sums = json.loads((d / CHECKSUMS).read_text(encoding="utf-8"))["sha256"]
  except FileNotFoundError:
    return f"incomplete (no {CHECKSUMS})"
  except (ValueError, KeyError, TypeError, UnicodeDecodeError):
    return f"{CHECKSUMS} is damaged"
  for rel, digest in sorted(sums.items()):
    p = d / rel
    if not p.is_file():
      return (f"incomplete (no commit marker {rel})"
              if rel == _ORBAX_COMMIT else f"{rel} is missing")
    if _sha256(p) != digest:
      return f"{rel} does not match its checksum"
  return None


def ignore_closed_event_loop() -> None:
  """Silences the echo of a failed Orbax restore.

  When Orbax fails to read a checkpoint it closes its asyncio event loop
  while tensorstore reads are still in flight; each of them then reports
  `RuntimeError: Event loop is closed` as an unraisable exception (dozens of
  tracebacks after the one-line error). This drops exactly those, keeping
  every other unraisable exception. Call it before a restore that may
  fail (the echoes can start while the restore is still failing).
  """
  prev = sys.unraisablehook
  if getattr(prev, "_hwnas_closed_loop", False):
    return

  def hook(unraisable):
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
      return
    prev(unraisable)

  hook._hwnas_closed_loop = True  # type: ignore[attr-defined]
  sys.unraisablehook = hook
  # tensorstore's callbacks into the closed loop print the same error
  # through sys.excepthook (PyErr_Print) from its own threads.
  prev_except = sys.excepthook

  def excepthook(kind, value, tb):
    if isinstance(value, RuntimeError) and str(value) == (
        "Event loop is closed"):
      return
    prev_except(kind, value, tb)

  sys.excepthook = excepthook
  # The reads that had already failed are logged by asyncio as "Task (or
  # Future) exception was never retrieved", with a traceback each; the
  # restore's own error already said what is wrong.
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger("asyncio").addFilter(
      lambda r: "exception was never retrieved" not in r.getMessage())
