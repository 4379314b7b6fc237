"""JAX's persistent compilation cache in a user-level directory.

XLA compiles of the supernet's training step take minutes on a small CPU;
with the cache a second run of the same program (a resume, a second
quickstart in a new workdir, rank-check's standalone runs, an evaluation)
loads the compiled executables from disk instead. The CLI turns it on for
every command (`hwnas.cli.main`); library users call `enable()` themselves.

Where: `$HWNAS_CACHE_DIR`, else `$XDG_CACHE_HOME/hwnas`, else
`~/.cache/hwnas`; the executables go into its `jax/` folder (deleting the
folder is always safe). `hwnas.aot_cache` keeps whole executables of the
supernet's step and evaluator in its `aot/` folder, on the same switch. Off: `hwnas --no-compile-cache ...` or
`HWNAS_COMPILE_CACHE=0`. A user who sets JAX's own
`JAX_COMPILATION_CACHE_DIR` keeps that directory (and its size, which
hwnas then leaves alone).

Size: each of the two folders is kept under `$HWNAS_CACHE_MAX_MB` MiB
(default 2048; -1 for no limit), the least recently used entries deleted
first: JAX's own least-recently-used eviction for `jax/`
(`jax_compilation_cache_max_size`, which needs the `filelock` package),
`hwnas.aot_cache.prune` for `aot/`.

The settings reach JAX as environment variables when jax is not imported
yet (so the CLI does not import jax for commands that never compile, and
child processes inherit them), and through `jax.config` when it is.
"""

from __future__ import annotations

import os
import pathlib
import sys

ENV_DIR = "HWNAS_CACHE_DIR"
ENV_SWITCH = "HWNAS_COMPILE_CACHE"
ENV_MAX_MB = "HWNAS_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
_OFF = ("0", "off", "false", "no")

# Compiles shorter than this are not written (each entry is a file; the
# many sub-second compiles of small eager ops would only fill the folder).
MIN_COMPILE_TIME_S = 0.5


def cache_root() -> pathlib.Path:
  """`$HWNAS_CACHE_DIR`, else `$XDG_CACHE_HOME/hwnas`, else ~/.cache/hwnas."""
  if os.environ.get(ENV_DIR):
    return pathlib.Path(os.environ[ENV_DIR]).expanduser()
  xdg = os.environ.get("XDG_CACHE_HOME")
  base = pathlib.Path(xdg).expanduser() if xdg else (
      pathlib.Path.home() / ".cache")
  return base / "hwnas"


def jax_cache_dir() -> pathlib.Path:
  """The folder JAX's compiled executables go into."""
  return cache_root() / "jax"


def enabled_by_env() -> bool:
  """False when `HWNAS_COMPILE_CACHE` is 0/off/false/no."""
  return os.environ.get(ENV_SWITCH, "1").strip().lower() not in _OFF


def max_bytes() -> int:
  """The size cap of each cache folder in bytes (`$HWNAS_CACHE_MAX_MB`
  MiB, default 2048); -1 means no limit."""
  raw = os.environ.get(ENV_MAX_MB, "").strip()
  if not raw:
    return DEFAULT_MAX_MB * 2**20
  try:
    mib = float(raw)
  except ValueError:
    mib = float("nan")
  if mib == -1:
    return -1
  if not mib > 0:   # also NaN
    from hwnas.errors import HwnasError  # pylint: disable=g-import-not-at-top
    raise HwnasError(
        f"environment variable {ENV_MAX_MB}={raw!r}: not a size; give the "
        f"cache folders' cap in MiB (e.g. {DEFAULT_MAX_MB}), -1 for no "
        f"limit, or turn the cache off with {ENV_SWITCH}=0")
  return max(int(mib * 2**20), 1)


def _lru_ready(directory: pathlib.Path) -> bool:
  """Prepares `directory` for JAX's size-capped cache; False if it cannot
  be capped (no `filelock`). JAX's eviction reads an access-time file
  beside every entry, which an uncapped cache (an earlier hwnas, or
  `HWNAS_CACHE_MAX_MB=-1`) did not write: those are added from the
  entries' modification times."""
  try:
    import filelock  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  for entry in directory.glob("*-cache"):
    stamp = entry.with_name(entry.name[:-len("-cache")] + "-atime")
    if not stamp.exists():
      try:
        stamp.write_bytes(entry.stat().st_mtime_ns.to_bytes(8, "little"))
      except OSError:
        return False
  return True


def enable() -> pathlib.Path | None:
  """Turns the persistent cache on; returns its folder (None when
  `HWNAS_COMPILE_CACHE` turns it off or the folder cannot be created)."""
  if not enabled_by_env():
    return None
  own = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  directory = own or str(jax_cache_dir())
  try:
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
  except OSError:
    return None   # a read-only home: run uncached rather than fail
  settings = {
      "jax_compilation_cache_dir": directory,
      "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_TIME_S,
      # -1: no size floor (JAX's default may raise it per file system).
      "jax_persistent_cache_min_entry_size_bytes": -1,
  }
  cap = max_bytes()
  if not own and cap != -1 and _lru_ready(pathlib.Path(directory)):
    settings["jax_compilation_cache_max_size"] = cap
  for name, value in settings.items():
    os.environ.setdefault(name.upper(), str(value))
  if "jax" in sys.modules:
    import jax  # pylint: disable=g-import-not-at-top
    for name in settings:
      current = os.environ[name.upper()]
      jax.config.update(name, type(settings[name])(current))
  return pathlib.Path(directory)


def disable() -> None:
  """Turns the cache off for this process and its children."""
  os.environ[ENV_SWITCH] = "0"
  if "jax" in sys.modules:
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update("jax_enable_compilation_cache", False)
  else:
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
