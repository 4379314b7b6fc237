"""Keeps TensorFlow / absl / converter log chatter off the user's terminal.

The TFLite converter prints a line per conversion from C++ straight to file
descriptor 2 (`fully_quantize: 0, inference_type: 6, ...`, hundreds of them
while measuring a table), TensorFlow and XLA log `I0000`/`W0000` lines at
import, and none of it obeys Python's logging. `native()` wraps such calls:
it sends fd 2 to a temporary file for the duration, then replays every line
that is not known chatter (so real errors still show), and replays all of
it if the call raised. Some chatter comes at any time from C++ threads:
XLA's "Very slow compile?" alarm during a long first compile, LiteRT's
delegate INFO lines. `install()` (the `hwnas` command calls it) filters
fd 2 for the rest of the process through a pipe read by a forked
forwarder process that passes every other line on at once (a process,
not a thread: it still drains the pipe when the command crashes). `HWNAS_VERBOSE=1` (the CLI's
`--verbose`) turns both filters off.

Lowest layer: imports nothing of hwnas.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import signal
import tempfile
import threading
import time
from typing import Iterator

ENV = "HWNAS_VERBOSE"
_LIVE: list = []   # the pump thread of the active `live()` block, if any
# Lines that carry no information for a user (TF 2.21, jax 0.10, litert 2.3).
_CHATTER = re.compile(
    r"^(fully_quantize: |WARNING: All log messages before absl::|"
    r"[IW]\d{4} \d\d:\d\d:\d\d[.\d]* +\d+ |INFO: Created TensorFlow Lite|"
    r"INFO: Initialized TensorFlow Lite|"
    r"INFO: Replacing \d+ out of \d+ node\(s\) with delegate|"
    # XLA's slow-compile alarm: its log line, the banner and the advice.
    r".*slow_operation_alarm\.cc:\d+\]|\*{8,}\s*$|"
    r"(\[Compiling module [^]]*\] )?Very slow compile\?|"
    r"The operation took \d|"
    # libjpeg's own messages while TF decodes a damaged JPEG; hwnas names
    # the file in its one error line instead.
    r"Corrupt JPEG data|Premature end of JPEG file|Invalid JPEG file |"
    r"Invalid SOS parameters|Improper call to JPEG library|Not a JPEG file|"
    r"Bogus |Unsupported marker|JPEG datastream contains no image|"
    r"Huffman table 0x|Quantization table 0x|Unsupported JPEG process|"
    r"Warning: unknown JFIF revision|Wrong JPEG library version)")
# What a line of chatter may start with (a partial line that could still
# become chatter is held back until its end arrives).
_MAYBE = re.compile(r"^([IWEF]\d|\d{4}-|\*|\[|INFO|WARNING|fully_|The )")


def verbose() -> bool:
  return os.environ.get(ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
  """Shows (on) or filters (off) native chatter, here and in subprocesses;
  also the Python loggers of TensorFlow and absl."""
  os.environ[ENV] = "1" if on else ""
  if not on:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  for name in ("absl", "tensorflow", "jax._src.xla_bridge"):
    logging.getLogger(name).setLevel(logging.DEBUG if on else logging.ERROR)


def is_chatter(line: str) -> bool:
  return bool(_CHATTER.match(line))


def _dup_stderr() -> int | None:
  """A duplicate of fd 2 (to restore it later), or None where there is no
  real fd 2 (embedded interpreters)."""
  try:
    sys.stderr.flush()
    return os.dup(2)
  except (OSError, ValueError):
    return None


@contextlib.contextmanager
def live() -> Iterator[None]:
  """Drops known chatter from fd 2 while the block runs and passes every
  other line on as it is written (unlike `native`, which holds lines back
  until the end): for long blocks such as a dataset's iteration, whose
  native threads (TF's decoders) write at any time. Blocks inside an
  active one (iterators open at once) add nothing; the first restores fd 2
  when it ends."""
  saved = None if verbose() or _LIVE else _dup_stderr()
  if saved is None:
    yield
    return
  read_fd, write_fd = os.pipe()
  out_fd = os.dup(saved)   # the pump's own, closed by the pump
  os.dup2(write_fd, 2)
  os.close(write_fd)

  def pump():
    with os.fdopen(read_fd, "rb") as f:
      for line in f:   # ends when fd 2 no longer points at the pipe
        if not is_chatter(line.decode("utf-8", "replace")):
          os.write(out_fd, line)
    os.close(out_fd)

  thread = threading.Thread(target=pump, daemon=True)
  _LIVE.append(thread)
  thread.start()
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    _LIVE.clear()
    thread.join(timeout=5)


@contextlib.contextmanager
def native() -> Iterator[None]:
  """Filters what native code writes to fd 2 while the block runs."""
  saved = None if verbose() else _dup_stderr()
  if saved is None:
    yield
    return
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      text = tmp.read().decode("utf-8", "replace")
      keep = [l for l in text.splitlines() if failed or not is_chatter(l)]
      if keep:
        sys.stderr.write("\n".join(keep) + "\n")
        sys.stderr.flush()


_installed: dict[str, int] = {}


def _pump(read_fd: int, out_fd: int) -> None:
  """Forwards what arrives on `read_fd` to `out_fd`, less chatter lines."""
  pending = b""
  while True:
    try:
      chunk = os.read(read_fd, 65536)
    except InterruptedError:
      continue
    except OSError:
      chunk = b""
    if not chunk:
      break
    pending += chunk
    *lines, pending = pending.split(b"\n")
    keep = [l for l in lines
            if not is_chatter(l.decode("utf-8", "replace"))]
    out = b"".join(l + b"\n" for l in keep)
    if pending and not _MAYBE.match(pending.decode("utf-8", "replace")):
      out, pending = out + pending, b""
    if out:
      os.write(out_fd, out)
  if pending and not is_chatter(pending.decode("utf-8", "replace")):
    os.write(out_fd, pending)


def install() -> None:
  """Filters chatter from fd 2 for the rest of the process (not with
  `--verbose`; once; call it before starting threads).

  A forked child reads the pipe that fd 2 becomes and forwards every other
  line to the real stderr, so what a crashing process wrote last (an abort
  message, a fatal-error traceback) still arrives: the child drains the
  pipe after its writer died. Undone at exit, after the last line.
  """
  if verbose() or _installed or not hasattr(os, "fork"):
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):
    return
  read_fd, write_fd = os.pipe()
  pid = os.fork()
  if pid == 0:   # the forwarder: no stdin/stdout, deaf to Ctrl-C
    code = 0
    try:
      signal.signal(signal.SIGINT, signal.SIG_IGN)
      signal.signal(signal.SIGTERM, signal.SIG_IGN)
      os.close(write_fd)
      for fd in (0, 1, 2):
        try:
          os.close(fd)
        except OSError:
          pass
      _pump(read_fd, saved)
    except BaseException:  # pylint: disable=broad-except
      code = 1
    finally:
      os._exit(code)  # pylint: disable=protected-access
  os.close(read_fd)
  os.dup2(write_fd, 2)
  os.close(write_fd)
  _installed.update(saved=saved, pid=pid)
  atexit.register(uninstall)


def uninstall() -> None:
  """Restores fd 2 and waits (up to 5 s) for the forwarder to finish."""
  if not _installed:
    return
  try:
    sys.stderr.flush()
  except (OSError, ValueError):
    pass
  saved, pid = _installed["saved"], _installed["pid"]
  os.dup2(saved, 2)            # closes our end of the pipe: EOF
  os.close(saved)
  _installed.clear()
  for _ in range(500):
    try:
      done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
      return
    if done:
      return
    time.sleep(0.01)
