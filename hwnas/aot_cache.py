"""Compiled executables on disk: a warm start without tracing.

JAX's persistent compilation cache (`hwnas.compile_cache`) saves XLA's
compile, but a warm start still traces the step in Python, lowers it to
MLIR and hashes the lowered module to find its entry; for the supernet's
branching sandwich step that is most of a warm start. This cache keys the
*executable* by what determines the program, computed without tracing, and
loads it with `jax.experimental.serialize_executable`:

    step = aot_cache.compiled("supernet_step", jitted_step, args,
                              key_parts={"config": ..., "resolution": r})
    state, metrics = step(*args)

The key hashes the hwnas package's source files (once per process), the
versions of jax, jaxlib, flax, optax and numpy, the backend, its devices
and (on CPU) the processor, `XLA_FLAGS`, JAX's configuration options, the
abstract values of `args` (tree structure, shapes, dtypes, weak types,
shardings) and the caller's `key_parts`, which must name everything the
jitted function closes over (its config, space, resolution). Entries live
in `cache_root()/aot/` (`$HWNAS_CACHE_DIR/aot`, ...); deleting the folder
is always safe. An entry is a header line (format, SHA-256 and length of
the payload) and a zlib-compressed pickle of the serialized executable and
its input and output trees, written to a temporary file and renamed.

An entry that cannot be read (truncated, corrupt, written by another
jax) is deleted and compiled again (and rewritten), with one line on
stderr; the run goes on. The cache is skipped (plain `jax.jit`) where the persistent
compilation cache is off (`HWNAS_COMPILE_CACHE=0`, `--no-compile-cache`,
or never enabled in a library process) and under a multi-process
`jax.distributed` run (each process would load an executable whose
collectives another process compiled). Donation is kept: the executable
is the one `jitted_fn.lower(*args).compile()` builds, donated arguments
included.

The folder is kept under `compile_cache.max_bytes()` (`$HWNAS_CACHE_MAX_MB`
MiB, default 2048): after each write the least recently used entries
(a load refreshes an entry's modification time) are deleted until it
fits (`prune`). Each change of hwnas's source starts new entries, so
without the cap the folder would only grow.

The executable is loaded with pickle, like JAX's own cache: only a cache
folder the user owns is read.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import pickle
import platform
import re
import sys
import tempfile
import zlib
from typing import Any, Callable

from hwnas import compile_cache

FORMAT = 1
MAGIC = b"hwnas-aot"
SUFFIX = ".exe"
# Executables this process loaded or compiled, by key (newest last).
_IN_MEMORY: dict[str, Callable] = {}
_IN_MEMORY_SIZE = 16
# JAX's monitoring event of an XLA compile (also recorded around a
# persistent-cache read, which records a cache hit as well).
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")
# JAX options that never change a program (where things are cached or
# logged, how errors are reported).
_IGNORED_OPTIONS = ("cache", "log", "explain", "traceback", "profil",
                    "dump", "monitoring", "coordination", "distributed")


def aot_dir() -> pathlib.Path:
  """The folder of the executables: `cache_root()/aot`."""
  return compile_cache.cache_root() / "aot"


def active() -> bool:
  """True where `compiled` stores and loads executables: the persistent
  compilation cache is on in this process and it is a single process."""
  import jax  # pylint: disable=g-import-not-at-top
  return (compile_cache.enabled_by_env()
          and bool(jax.config.jax_enable_compilation_cache)
          and bool(jax.config.jax_compilation_cache_dir)
          and jax.process_count() == 1)


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
  """SHA-256 of the hwnas package's Python files (paths and contents)."""
  root = pathlib.Path(__file__).resolve().parent
  digest = hashlib.sha256()
  for path in sorted(root.rglob("*.py")):
    digest.update(str(path.relative_to(root)).encode() + b"\0")
    digest.update(path.read_bytes() + b"\0")
  return digest.hexdigest()


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return "none"


def _processor() -> str:
  """The CPU model and feature flags (XLA:CPU compiles for the host)."""
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return platform.processor() or platform.machine()
  wanted = ("model name", "flags", "Features", "CPU part")
  lines = {line.split(":")[0].strip(): line for line in text.splitlines()
           if line.split(":")[0].strip() in wanted}
  return "\n".join(lines[k] for k in sorted(lines))


def _environment() -> dict[str, Any]:
  """What, besides the arguments, decides the compiled program."""
  import jax  # pylint: disable=g-import-not-at-top
  backend = jax.devices()[0].client
  options = {name: repr(value) for name, value in jax.config.values.items()
             if not any(word in name for word in _IGNORED_OPTIONS)}
  return {
      "python": sys.version.split()[0],
      "versions": {p: _version(p) for p in _PACKAGES},
      "platform": backend.platform,
      "platform_version": backend.platform_version,
      "devices": [(d.id, d.device_kind, d.process_index)
                  for d in jax.devices()],
      "processor": _processor() if backend.platform == "cpu" else "",
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "jax_options": options,
  }


def _abstract(args: tuple) -> dict[str, Any]:
  """Tree structure and per-leaf type, shape, dtype and sharding."""
  import jax  # pylint: disable=g-import-not-at-top
  leaves, treedef = jax.tree.flatten(args)
  rows = []
  for leaf in leaves:
    sharding = getattr(leaf, "sharding", None)
    rows.append((
        type(leaf).__name__, tuple(getattr(leaf, "shape", ())),
        str(getattr(leaf, "dtype", type(leaf).__name__)),
        bool(getattr(leaf, "weak_type", False)),
        "" if sharding is None else
        f"{sharding} {sorted(d.id for d in sharding.device_set)}"))
  return {"tree": str(treedef), "leaves": rows}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def graph_digest(graphdef: Any) -> str:
  """SHA-256 of an `nnx.GraphDef`'s repr with object addresses removed,
  for `key_parts`: a graph's static attributes include functions (e.g.
  flax's `promote_dtype`), whose repr names their address, which differs
  between processes."""
  return hashlib.sha256(
      _ADDRESS.sub("", repr(graphdef)).encode()).hexdigest()


def cache_key(name: str, args: tuple, key_parts: Any) -> str:
  """The entry's key: a SHA-256 of everything that decides the program.

  Args:
    name: the function's name (part of the key and of the file name).
    args: the positional arguments it will be called with.
    key_parts: JSON-serialisable values naming what the jitted function
      closes over (config, space, static arguments).
  """
  blob = json.dumps([FORMAT, name, source_digest(), _environment(),
                     _abstract(args), key_parts], sort_keys=True,
                    default=repr)
  return hashlib.sha256(blob.encode()).hexdigest()


def entry_path(name: str, key: str) -> pathlib.Path:
  return aot_dir() / f"{name}-{key[:40]}{SUFFIX}"


def _read(path: pathlib.Path, key: str) -> Callable:
  """The executable of `path`; raises ValueError if it is not intact."""
  from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
  data = path.read_bytes()
  header, _, payload = data.partition(b"\n")
  fields = header.split(b" ")
  if len(fields) != 4 or fields[0] != MAGIC or fields[1] != str(
      FORMAT).encode():
    raise ValueError("not an hwnas executable of this format")
  if int(fields[3]) != len(payload):
    raise ValueError(f"truncated ({len(payload)} of {int(fields[3])} bytes)")
  if hashlib.sha256(payload).hexdigest().encode() != fields[2]:
    raise ValueError("checksum mismatch")
  entry = pickle.loads(zlib.decompress(payload))
  if entry["key"] != key:
    raise ValueError("written for another program")
  return serialize_executable.deserialize_and_load(
      entry["executable"], entry["in_tree"], entry["out_tree"])


def _write(path: pathlib.Path, key: str, executable) -> None:
  """Serialises `executable` into `path` atomically (temporary + rename)."""
  from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
  blob, in_tree, out_tree = serialize_executable.serialize(executable)
  payload = zlib.compress(pickle.dumps(
      {"key": key, "executable": blob, "in_tree": in_tree,
       "out_tree": out_tree}, protocol=pickle.HIGHEST_PROTOCOL), 1)
  header = b" ".join([MAGIC, str(FORMAT).encode(),
                      hashlib.sha256(payload).hexdigest().encode(),
                      str(len(payload)).encode()])
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name,
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(header + b"\n" + payload)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _say(message: str) -> None:
  print(f"hwnas: {message}", file=sys.stderr, flush=True)


def load_or_compile(name: str, jitted_fn, args: tuple, *, key_parts: Any
                    ) -> tuple[Callable, str]:
  """The compiled `jitted_fn` for `args`, and where it came from.

  Args:
    name: a file-name-safe name of the function (e.g. 'supernet_step').
    jitted_fn: a `jax.jit`-wrapped function (donation and shardings are
      kept: the executable is `jitted_fn.lower(*args).compile()`).
    args: example positional arguments; the result must be called with
      arguments of the same structure, shapes, dtypes and shardings.
    key_parts: JSON-serialisable values naming everything `jitted_fn`
      closes over (see `cache_key`).

  Returns:
    `(fn, source)`: source is 'loaded' (read from the cache: no tracing),
    'compiled' (traced and compiled, then stored), 'jax cache' (traced,
    then loaded from JAX's persistent cache: not stored, see `_compile`),
    'memory' (this process loaded or compiled it before) or 'jit' (the
    cache is not active here: `fn` is `jitted_fn` itself).
  """
  if not active():
    return jitted_fn, "jit"
  key = cache_key(name, args, key_parts)
  if key in _IN_MEMORY:
    return _IN_MEMORY[key], "memory"
  fn, source = _load_or_compile(name, jitted_fn, args, key)
  if len(_IN_MEMORY) >= _IN_MEMORY_SIZE:
    del _IN_MEMORY[next(iter(_IN_MEMORY))]   # the oldest
  _IN_MEMORY[key] = fn
  return fn, source


def _load_or_compile(name: str, jitted_fn, args: tuple, key: str
                     ) -> tuple[Callable, str]:
  """`load_or_compile` past the in-memory executables."""
  path = entry_path(name, key)
  if path.is_file():
    try:
      loaded = _read(path, key)
    except Exception as err:  # pylint: disable=broad-except
      _say(f"compiled-code cache entry {path} is unreadable "
           f"({type(err).__name__}: {err}); compiling it again")
      with contextlib.suppress(OSError):   # said once, not every run
        path.unlink()
    else:
      with contextlib.suppress(OSError):   # most recently used
        os.utime(path)
      return _guarded(name, loaded, jitted_fn), "loaded"
  lowered = jitted_fn.lower(*args)
  executable, fresh = _compile(lowered)
  if not fresh:
    # JAX's persistent cache (or this process) supplied the executable;
    # XLA:CPU serialises a loaded executable without its kernels, so it
    # is used but not stored (the next run loads it the same way).
    return _guarded(name, executable, jitted_fn), "jax cache"
  try:
    _write(path, key, executable)
  except Exception as err:  # pylint: disable=broad-except
    _say(f"could not store the compiled {name} in {path.parent} "
         f"({type(err).__name__}: {err}); it compiles again next run")
  else:
    prune(path.parent, compile_cache.max_bytes(), keep=path)
  return _guarded(name, executable, jitted_fn), "compiled"


def prune(directory: pathlib.Path, max_bytes: int, *,
          keep: pathlib.Path | None = None) -> list[pathlib.Path]:
  """Deletes the least recently used entries of `directory` until their
  total size is at most `max_bytes` (-1: no limit); never `keep` (the
  entry just written, even if it alone is larger). Another process may
  delete or replace entries meanwhile: what is gone is skipped.

  Returns:
    the deleted entries, oldest first.
  """
  if max_bytes == -1:
    return []
  entries = []
  for entry in directory.glob(f"*{SUFFIX}"):
    try:
      stat = entry.stat()
    except OSError:
      continue
    entries.append((stat.st_mtime_ns, entry, stat.st_size))
  total = sum(size for _, _, size in entries)
  deleted = []
  for _, entry, size in sorted(entries, key=lambda e: (e[0], str(e[1]))):
    if total <= max_bytes:
      break
    if keep is not None and entry == keep:
      continue
    try:
      entry.unlink()
    except OSError:
      continue
    total -= size
    deleted.append(entry)
  return deleted


def _compile(lowered) -> tuple[Any, bool]:
  """(`lowered.compile()`, whether XLA compiled it just now rather than
  JAX loading it from its persistent cache or finding it in memory)."""
  import jax  # pylint: disable=g-import-not-at-top
  events = []

  def on_event(event: str, **kwargs) -> None:
    del kwargs
    events.append(event)

  def on_duration(event: str, duration_s: float, **kwargs) -> None:
    del duration_s, kwargs
    events.append(event)

  jax.monitoring.register_event_listener(on_event)
  jax.monitoring.register_event_duration_secs_listener(on_duration)
  try:
    executable = lowered.compile()
  finally:
    jax.monitoring.unregister_event_listener(on_event)
    jax.monitoring.unregister_event_duration_listener(on_duration)
  fresh = (_BACKEND_COMPILE in events
           and "/jax/compilation_cache/cache_hits" not in events)
  return executable, fresh


def _guarded(name: str, executable, jitted_fn) -> Callable:
  """`executable`, or `jitted_fn` from the first call whose arguments it
  refuses (another shape, dtype or sharding: a TypeError or ValueError
  raised before it runs, so donated arguments are still intact)."""
  fallback = []

  def call(*args):
    if not fallback:
      try:
        return executable(*args)
      except (TypeError, ValueError) as err:
        _say(f"the compiled {name} does not take these arguments "
             f"({type(err).__name__}: {str(err).splitlines()[0]}); "
             "compiling it for them")
        fallback.append(err)
    return jitted_fn(*args)

  return call


def compiled(name: str, jitted_fn, args: tuple, *, key_parts: Any
             ) -> Callable:
  """`load_or_compile(...)[0]`: the executable of `jitted_fn` for `args`."""
  return load_or_compile(name, jitted_fn, args, key_parts=key_parts)[0]
