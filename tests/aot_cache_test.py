"""hwnas.aot_cache: a second process loads the compiled executable instead
of tracing, computes what the first computed, and every damaged or
foreign entry falls back to compiling (CPU backend, fresh processes)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from hwnas import aot_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A child process: the compile cache on (as the CLI turns it on), one
# jitted function with a donated argument, loaded or compiled through the
# AOT cache. `traces` counts how often Python ran the function's body.
_CHILD = """
import json, sys
from hwnas import compile_cache
compile_cache.enable()
import jax, jax.numpy as jnp
from hwnas import aot_cache
settings = json.loads(sys.argv[1])
traces = []
scale = settings.get("scale", 2.0)

def step(state, x):
  traces.append(1)
  return {"w": state["w"] * scale + jnp.tanh(x) @ x.T}, jnp.sum(x)

fn = jax.jit(step, donate_argnums=0)
n = settings.get("n", 8)
state = {"w": jnp.ones((n, n))}
x = jnp.arange(float(n * n)).reshape(n, n) / (n * n)
run, source = aot_cache.load_or_compile("toy_step", fn, (state, x),
                                        key_parts={"scale": scale})
out = []
for i in range(2):
  new, total = run(state, x)
  out.append([state["w"].is_deleted(), float(total)])
  state = new
if settings.get("other_shape"):
  y = jnp.ones((n + 1, n + 1))
  state, total = run({"w": jnp.ones((n + 1, n + 1))}, y)
print(json.dumps({"source": source, "traces": len(traces), "calls": out,
                  "w": jax.device_get(state["w"]).tolist()}))
"""


def _env(tmp_path, **extra):
  env = {k: v for k, v in os.environ.items()
         if k not in ("HWNAS_CACHE_DIR", "XDG_CACHE_HOME", "XLA_FLAGS",
                      "JAX_COMPILATION_CACHE_DIR", "HWNAS_COMPILE_CACHE")}
  env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
             JAX_PLATFORMS="cpu", HWNAS_CACHE_DIR=str(tmp_path / "cache"),
             **extra)
  return env


def _child(env, **settings):
  proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(settings)],
                        env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  out["stderr"] = [line for line in proc.stderr.splitlines()
                   if line.startswith("hwnas:")]
  return out


def _entries(tmp_path):
  folder = tmp_path / "cache" / "aot"
  return sorted(folder.iterdir()) if folder.exists() else []


def test_second_process_loads_instead_of_tracing(tmp_path):
  env = _env(tmp_path)
  first = _child(env)
  assert first["source"] == "compiled" and first["traces"] == 1
  [entry] = _entries(tmp_path)
  assert entry.name.startswith("toy_step-") and entry.suffix == ".exe"
  second = _child(env)
  assert second["source"] == "loaded" and second["traces"] == 0
  assert second["stderr"] == []
  # The same numbers, and the donated state is consumed as under jit.
  assert second["w"] == first["w"] and second["calls"] == first["calls"]
  assert all(deleted for deleted, _ in second["calls"])
  assert _entries(tmp_path) == [entry]
  # Another setting the function closes over: another key and entry.
  other = _child(env, scale=3.0)
  assert other["source"] == "compiled" and other["traces"] == 1
  assert other["w"] != first["w"] and len(_entries(tmp_path)) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_entry_is_compiled_again_with_one_line(tmp_path, damage):
  env = _env(tmp_path)
  first = _child(env)
  [entry] = _entries(tmp_path)
  data = bytearray(entry.read_bytes())
  if damage == "flip":
    data[len(data) // 2] ^= 0xFF
  else:
    del data[len(data) // 3:]
  entry.write_bytes(bytes(data))
  again = _child(env)
  assert again["source"] == "compiled" and again["w"] == first["w"]
  [line] = again["stderr"]
  assert str(entry) in line and "unreadable" in line and "compiling" in line
  # Rewritten: the next process loads it.
  assert _child(env)["source"] == "loaded"


def test_switched_off_writes_no_aot_folder(tmp_path):
  env = _env(tmp_path, HWNAS_COMPILE_CACHE="0")
  off = _child(env)
  assert off["source"] == "jit" and off["traces"] == 1
  assert not (tmp_path / "cache").exists()


def test_an_executable_from_jax_cache_is_used_not_stored(tmp_path):
  """XLA:CPU serialises an executable it loaded from JAX's persistent
  cache without its kernels; such an entry would fail when run, so it is
  never written."""
  env = _env(tmp_path, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  first = _child(env)
  [entry] = _entries(tmp_path)
  entry.unlink()
  from_jax = _child(env)
  assert from_jax["source"] == "jax cache" and from_jax["traces"] == 1
  assert from_jax["w"] == first["w"] and _entries(tmp_path) == []


def test_other_arguments_fall_back_to_jit(tmp_path):
  out = _child(_env(tmp_path), other_shape=True)
  assert out["source"] == "compiled" and out["traces"] == 2
  [line] = out["stderr"]
  assert "does not take these arguments" in line
  assert np.asarray(out["w"]).shape == (9, 9)


def test_key_follows_what_decides_the_program():
  x = jnp.ones((4, 4))
  key = aot_cache.cache_key("f", (x,), {"lr": 0.1})
  assert key == aot_cache.cache_key("f", (jnp.zeros((4, 4)),), {"lr": 0.1})
  assert key != aot_cache.cache_key("f", (x,), {"lr": 0.2})
  assert key != aot_cache.cache_key("g", (x,), {"lr": 0.1})
  assert key != aot_cache.cache_key("f", (jnp.ones((4, 5)),), {"lr": 0.1})
  assert key != aot_cache.cache_key("f", (x.astype(jnp.bfloat16),),
                                    {"lr": 0.1})
  assert key != aot_cache.cache_key("f", ({"x": x},), {"lr": 0.1})
  assert key != aot_cache.cache_key("f", (jnp.float32(1.0),), {"lr": 0.1})
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", not old)
  try:
    assert key != aot_cache.cache_key("f", (x,), {"lr": 0.1})
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


# The supernet's step: one stage, few choices (compiles in seconds).
_SPACE = pathlib.Path(__file__).parent / "testdata" / "duo.yaml"
_SETS = ("train.batch_size=8", "train.resolutions=[16]", "eval.batch_size=16",
         "eval.bn_batches=1", "eval.val_batches=1", "train.log_every=1",
         "train.checkpoint_every=2")


def _train(env, space, workdir):
  argv = [sys.executable, "-m", "hwnas", "supernet", "train", "--space",
          str(space), "--dataset", "digits", "--config", "tiny", "--steps",
          "3", "--workdir", str(workdir), "--no-progress"]
  argv += [w for s in _SETS for w in ("--set", s)]
  proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.slow
def test_second_supernet_run_loads_its_step_and_trains_the_same(tmp_path):
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  space = tmp_path / "duo.yaml"
  space.write_text(_SPACE.read_text())
  env = _env(tmp_path, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  first = _train(env, space, tmp_path / "one")
  assert "loaded the compiled step" not in first
  names = sorted(p.name.split("-")[0] for p in _entries(tmp_path))
  assert names == ["supernet_eval", "supernet_step"]
  second = _train(env, space, tmp_path / "two")
  assert "loaded the compiled step at 16 px" in second
  drop = ("time", "train/images_per_s", "train/first_step_s")
  rows = [[{k: v for k, v in json.loads(r).items() if k not in drop}
           for r in (tmp_path / w / "metrics.jsonl").read_text().splitlines()]
          for w in ("one", "two")]
  assert len(rows[0]) == 4 and rows[0] == rows[1]
  # A resume from step 2 (the step-3 checkpoint gone) with the loaded step.
  shutil.copytree(tmp_path / "one", tmp_path / "resumed")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "3")
  assert "loaded the compiled step" in _train(env, space,
                                              tmp_path / "resumed")
  resumed = [{k: v for k, v in json.loads(r).items() if k not in drop}
             for r in (tmp_path / "resumed" / "metrics.jsonl")
             .read_text().splitlines()]
  assert resumed[4:] == rows[0][2:]   # steps 3 and the final evaluation
  states = [evaluate.load_workdir(tmp_path / w)[2]
            for w in ("one", "two", "resumed")]
  for one, *others in zip(*map(jax.tree.leaves, states)):
    for other in others:
      np.testing.assert_array_equal(np.asarray(other), np.asarray(one))


def test_supernet_step_key_follows_the_config():
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas.configs import supernet as configs  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import checkpoint, loop  # pylint: disable=g-import-not-at-top
  space = space_lib.from_dict(yaml.safe_load(_SPACE.read_text()))
  config = configs.get_config("tiny")
  graphdef, state, _ = checkpoint.build(space, config, 10)
  args = (state,)

  def key(**changes):
    c = config.copy_and_resolve_references()
    for name, value in changes.items():
      section, field = name.split("__")
      c[section][field] = value
    return aot_cache.cache_key(
        "supernet_step", args, loop.step_key_parts(c, space, graphdef, 16))

  base = key()
  assert base == key() != key(train__steps=601)
  assert base != key(optimizer__learning_rate=0.01)
  assert base != aot_cache.cache_key(
      "supernet_step", args, loop.step_key_parts(config, space, graphdef, 24))


def test_prune_deletes_least_recently_used_first(tmp_path):
  sizes = {"a": 300, "b": 300, "c": 300, "d": 300}
  for age, (name, size) in enumerate(sizes.items()):
    path = tmp_path / f"{name}{aot_cache.SUFFIX}"
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(10**18 + age * 10**9,) * 2)
  (tmp_path / "other.tmp").write_bytes(b"x" * 5000)   # not an entry
  # 'a' is the oldest but was just loaded: its time is now.
  os.utime(tmp_path / f"a{aot_cache.SUFFIX}")
  keep = tmp_path / f"b{aot_cache.SUFFIX}"
  deleted = aot_cache.prune(tmp_path, 700, keep=keep)
  assert [p.stem for p in deleted] == ["c", "d"]
  assert sorted(p.stem for p in tmp_path.glob(f"*{aot_cache.SUFFIX}")) == [
      "a", "b"]
  assert (tmp_path / "other.tmp").exists()
  assert aot_cache.prune(tmp_path, -1) == []
  # The entry just written stays even when it alone is over the cap.
  assert [p.stem for p in aot_cache.prune(tmp_path, 1, keep=keep)] == ["a"]
  assert [p.stem for p in tmp_path.glob(f"*{aot_cache.SUFFIX}")] == ["b"]


def test_a_new_entry_over_the_cap_evicts_the_oldest(tmp_path):
  env = _env(tmp_path)
  _child(env, scale=2.0)
  [old] = _entries(tmp_path)
  cap_mib = old.stat().st_size * 1.5 / 2**20   # room for one entry
  env = _env(tmp_path, HWNAS_CACHE_MAX_MB=f"{cap_mib:.6f}")
  assert _child(env, scale=3.0)["source"] == "compiled"
  [new] = _entries(tmp_path)
  assert new != old and _child(env, scale=3.0)["source"] == "loaded"
  assert _child(env, scale=2.0)["source"] == "compiled"


# One tiny standalone network (a spec file of the shipped micro space).
_TRAIN_SETS = ("train.batch_size=16", "eval.batch_size=200",
               "train.log_every=2", "train.checkpoint_every=4")


def _train_standalone(env, arch, workdir, seed=0):
  argv = [sys.executable, "-m", "hwnas", "train", "--arch", str(arch),
          "--steps", "4", "--seed", str(seed), "--workdir", str(workdir),
          "--no-progress"]
  argv += [w for s in _TRAIN_SETS for w in ("--set", s)]
  proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((workdir / "result.json").read_text())


@pytest.mark.slow
def test_standalone_training_loads_its_step_and_trains_the_same(tmp_path):
  arch = tmp_path / "arch.json"
  sample = subprocess.run(
      [sys.executable, "-m", "hwnas", "arch", "sample", "--space",
       str(pathlib.Path(__file__).parent / "testdata" / "micro.yaml"),
       "--seed", "0"], env=_env(tmp_path), capture_output=True, text=True,
      timeout=300, check=True).stdout
  arch.write_text(sample)
  env = _env(tmp_path, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  first = _train_standalone(env, arch, tmp_path / "one")
  entries = _entries(tmp_path)
  assert sorted({p.name.split("-")[0] for p in entries}) == [
      "train_eval", "train_step"]
  stamps = {p: p.stat().st_mtime_ns for p in entries}
  # A second run in a new workdir loads both (their times refreshed).
  second = _train_standalone(env, arch, tmp_path / "two", seed=0)
  assert _entries(tmp_path) == entries
  assert all(p.stat().st_mtime_ns > stamps[p] for p in entries)
  assert second == first


def test_graph_digest_ignores_object_addresses():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  one = nnx.split(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))[0]
  other = nnx.split(nnx.Linear(2, 4, rngs=nnx.Rngs(0)))[0]
  assert " at 0x" in repr(one)   # flax's promote_dtype, dot_general
  text = repr(one).replace(" at 0x", " at 0x1")   # another process
  assert aot_cache._ADDRESS.sub("", text) == aot_cache._ADDRESS.sub(  # pylint: disable=protected-access
      "", repr(one))
  assert aot_cache.graph_digest(one) != aot_cache.graph_digest(other)
