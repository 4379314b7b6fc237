"""hwnas.compile_cache: where the persistent cache lives, and that a second
process loads its compiled code from it (CPU backend)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from hwnas import compile_cache
from hwnas.errors import HwnasError

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A child process: turns the cache on (before or after importing jax, as
# the CLI and a library user would), compiles one small function and
# reports JAX's own cache events.
_CHILD = """
import json, sys
from hwnas import compile_cache
if sys.argv[1] == "before":
  compile_cache.enable()
import jax, jax.numpy as jnp
if sys.argv[1] == "after":
  compile_cache.enable()
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
x = jnp.arange(64.0).reshape(8, 8)
jax.jit(lambda a: jnp.tanh(a) @ a.T + jnp.cumsum(a, 0))(x).block_until_ready()
print(json.dumps({
    "hits": events.count("/jax/compilation_cache/cache_hits"),
    "misses": events.count("/jax/compilation_cache/cache_misses"),
    "dir": jax.config.jax_compilation_cache_dir}))
"""


def _env(tmp_path, **extra):
  env = {k: v for k, v in os.environ.items()
         if k not in ("HWNAS_CACHE_DIR", "XDG_CACHE_HOME",
                      "JAX_COMPILATION_CACHE_DIR", "HWNAS_COMPILE_CACHE")}
  env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
             JAX_PLATFORMS="cpu",
             # Cache even this sub-second compile.
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **extra)
  return env


def _child(env, when="before"):
  out = subprocess.run([sys.executable, "-c", _CHILD, when], env=env,
                       capture_output=True, text=True, timeout=120,
                       check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_cache_folder_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
  monkeypatch.delenv("HWNAS_CACHE_DIR", raising=False)
  assert compile_cache.jax_cache_dir() == tmp_path / ".cache/hwnas/jax"
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.cache_root() == tmp_path / "xdg/hwnas"
  monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "mine"))
  assert compile_cache.cache_root() == tmp_path / "mine"
  for off in ("0", "off", "False", "no"):
    monkeypatch.setenv("HWNAS_COMPILE_CACHE", off)
    assert not compile_cache.enabled_by_env()
    assert compile_cache.enable() is None
  monkeypatch.setenv("HWNAS_COMPILE_CACHE", "1")
  assert compile_cache.enabled_by_env()


@pytest.mark.parametrize("when", ["before", "after"])
def test_second_process_loads_compiled_code(tmp_path, when):
  env = _env(tmp_path)
  first = _child(env, when)
  folder = tmp_path / "home/.cache/hwnas/jax"
  assert first["dir"] == str(folder)
  assert first["hits"] == 0 and first["misses"] >= 1
  entries = sorted(p.name for p in folder.iterdir())
  assert entries, "nothing was written to the cache"
  second = _child(env, when)
  assert second["hits"] >= 1 and second["misses"] == 0
  assert sorted(p.name for p in folder.iterdir()) == entries


def test_switched_off_reads_and_writes_nothing(tmp_path):
  env = _env(tmp_path, HWNAS_CACHE_DIR=str(tmp_path / "c"))
  _child(env)
  off = _child(dict(env, HWNAS_COMPILE_CACHE="0"))
  assert off["hits"] == 0 and off["dir"] is None
  assert not (tmp_path / "home/.cache").exists()


def test_cli_flag_turns_it_off(tmp_path):
  code = ("import json, os, sys; from hwnas import cli;"
          "argv = cli._compile_cache(sys.argv[1:]);"
          "print(json.dumps([argv, os.environ.get('JAX_COMPILATION_CACHE_DIR'),"
          " os.environ.get('HWNAS_COMPILE_CACHE')]))")
  env = _env(tmp_path)
  run = lambda *a: json.loads(subprocess.run(
      [sys.executable, "-c", code, *a], env=env, capture_output=True,
      text=True, timeout=60, check=True).stdout)
  assert run("space", "list") == [
      ["space", "list"], str(tmp_path / "home/.cache/hwnas/jax"), None]
  assert run("space", "--no-compile-cache", "list") == [
      ["space", "list"], None, "0"]


def test_size_cap_setting(monkeypatch):
  monkeypatch.delenv("HWNAS_CACHE_MAX_MB", raising=False)
  assert compile_cache.max_bytes() == 2048 * 2**20
  monkeypatch.setenv("HWNAS_CACHE_MAX_MB", "0.5")
  assert compile_cache.max_bytes() == 2**19
  monkeypatch.setenv("HWNAS_CACHE_MAX_MB", "-1")
  assert compile_cache.max_bytes() == -1
  for bad in ("lots", "0", "-3", "nan"):
    monkeypatch.setenv("HWNAS_CACHE_MAX_MB", bad)
    with pytest.raises(HwnasError, match="HWNAS_CACHE_MAX_MB.*MiB"):
      compile_cache.max_bytes()


_CAPPED = _CHILD.replace(
    '"dir": jax.config.jax_compilation_cache_dir}',
    '"dir": jax.config.jax_compilation_cache_dir,'
    ' "max": jax.config.jax_compilation_cache_max_size}')


def test_jax_cache_is_capped_and_an_uncapped_folder_is_adopted(tmp_path):
  folder = tmp_path / "home/.cache/hwnas/jax"

  def child(**extra):
    out = subprocess.run([sys.executable, "-c", _CAPPED, "before"],
                         env=_env(tmp_path, **extra), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

  # Written without a cap: no access-time files beside the entries.
  assert child(HWNAS_CACHE_MAX_MB="-1")["max"] == -1
  entries = sorted(folder.glob("*-cache"))
  assert entries and not list(folder.glob("*-atime"))
  # Capped: JAX's own LRU eviction, whose access-time files are added
  # for the old entries, so the capped run reads them (a hit).
  capped = child(HWNAS_CACHE_MAX_MB="64")
  assert capped["max"] == 64 * 2**20 and capped["hits"] >= 1
  assert sorted(p.name[:-len("-cache")] for p in entries) == sorted(
      p.name[:-len("-atime")] for p in folder.glob("*-atime"))
  # A cap smaller than the entry: JAX evicts the old one to write another.
  cap = max(p.stat().st_size for p in entries) * 1.5
  small = cap / 2**20
  with_other = _CAPPED.replace("jnp.tanh(a)", "jnp.sin(a)")
  out = subprocess.run([sys.executable, "-c", with_other, "before"],
                       env=_env(tmp_path, HWNAS_CACHE_MAX_MB=f"{small:.6f}"),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  now = sorted(folder.glob("*-cache"))
  assert sum(p.stat().st_size for p in now) <= cap
  assert set(entries) - set(now), "nothing was evicted"
