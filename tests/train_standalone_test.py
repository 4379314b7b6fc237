"""Tests for hwnas.train_standalone and `hwnas train` (tiny space, digits)."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from hwnas import arch, space
from hwnas import train_standalone as ts
from hwnas.cli import main as cli_main
from hwnas.errors import HwnasError
from hwnas.models import Network


# Tiny nets: XLA optimisations cost more compile time than they save.
pytestmark = pytest.mark.usefixtures("fast_compile_module")


def _tiny():
  s = space.load("tiny")
  a = arch.smallest(s)
  return a, arch.decode(s, a)


def _config(**kw):
  base = {"train.steps": 4, "train.batch_size": 8, "resolution": 24,
          "train.log_every": 1, "train.checkpoint_every": 100,
          "optimizer.warmup_steps": 0, "eval.batch_size": 128}
  base.update(kw)
  return ts.get_config(**base)


def _rows(workdir):
  text = (workdir / "metrics.jsonl").read_text()
  return [json.loads(l) for l in text.splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted 4-step run: (workdir, result)."""
  a, spec = _tiny()
  workdir = tmp_path_factory.mktemp("straight")
  return workdir, ts.train(spec, _config(), workdir, arch=a)


@pytest.mark.slow
def test_smoke_run_writes_workdir(straight):
  workdir, r = straight
  assert r["finished"] and r["step"] == 4
  assert 0.0 <= r["test/accuracy"] <= 1.0 and 0.0 <= r["val/accuracy"] <= 1.0
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["config"]["train"]["steps"] == 4 and saved["arch"]["space"] == "tiny"
  assert saved["dataset"]["split_sizes"]["test"] == 360
  assert [row["step"] for row in _rows(workdir)] == [1, 2, 3, 4, 4]
  assert json.loads((workdir / "result.json").read_text()) == r
  model = ts.restore(workdir)
  assert model(np.zeros((1, 24, 24, 3), np.float32)).shape == (1, 10)


@pytest.mark.slow
def test_resume_continues_the_same_run(tmp_path, straight):
  a, spec = _tiny()
  first = ts.train(spec, _config(), tmp_path, arch=a, stop_after=2)
  assert first == {"step": 2, "finished": False}
  resumed = ts.train(spec, _config(), tmp_path, arch=a)
  assert resumed["step"] == 4
  assert [row["step"] for row in _rows(tmp_path)] == [1, 2, 3, 4, 4]
  loss = lambda w: [r["train/loss"] for r in _rows(w) if "train/loss" in r]
  np.testing.assert_allclose(loss(tmp_path), loss(straight[0]), rtol=1e-5)
  assert resumed["test/accuracy"] == pytest.approx(straight[1]["test/accuracy"])
  m1, m2 = ts.restore(tmp_path), ts.restore(straight[0])
  x = np.random.default_rng(0).normal(size=(2, 24, 24, 3)).astype(np.float32)
  np.testing.assert_allclose(m1(x), m2(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_workdir_of_another_run_is_refused(straight):
  a, spec = _tiny()
  with pytest.raises(HwnasError, match="optimizer"):
    ts.train(spec, _config(**{"optimizer.learning_rate": 0.5}), straight[0],
             arch=a)


def test_make_optimizer_decays_kernels_only():
  _, spec = _tiny()
  model = nnx.eval_shape(lambda: Network(spec, rngs=nnx.Rngs(0)))
  _, params, _ = nnx.split(model, nnx.Param, ...)
  params = jax.tree.map(lambda p: np.ones(p.shape, p.dtype), params)
  zeros = jax.tree.map(np.zeros_like, params)
  for name in ("sgd", "adamw"):
    tx = ts.make_optimizer(ts.get_config(**{
        "train.steps": 10, "optimizer.weight_decay": 0.5,
        "optimizer.learning_rate": 1.0, "optimizer.warmup_steps": 0,
        "optimizer.name": name, "optimizer.grad_clip": 1.0}))
    updates, _ = jax.jit(tx.update)(zeros, jax.jit(tx.init)(params), params)
    flat = jax.tree_util.tree_flatten_with_path(updates)[0]
    kernels = [v for p, v in flat if "kernel" in jax.tree_util.keystr(p)]
    others = [v for p, v in flat if "kernel" not in jax.tree_util.keystr(p)]
    assert kernels and others
    assert all(float(abs(v).sum()) > 0 for v in kernels)
    assert all(float(abs(v).sum()) == 0 for v in others)  # BN, biases
  with pytest.raises(HwnasError, match="optimizer"):
    ts.make_optimizer(ts.get_config(**{"optimizer.name": "lamb"}))


def test_schedule_warms_up_and_decays():
  lr = ts.learning_rate_fn(ts.get_config(**{
      "train.steps": 100, "optimizer.warmup_steps": 10,
      "optimizer.learning_rate": 0.2, "optimizer.final_lr_ratio": 0.1}))
  assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(0.2)
  assert float(lr(100)) == pytest.approx(0.02)
  assert float(lr(5)) < float(lr(10)) and float(lr(60)) < float(lr(10))


@pytest.mark.slow
def test_cli_train_from_arch_file(tmp_path, capsys):
  a, _ = _tiny()
  path = tmp_path / "a.json"
  path.write_text(arch.to_json(a))
  rc = cli_main(["train", "--arch", str(path), "--dataset", "digits",
                 "--workdir", str(tmp_path / "w"), "--steps", "4",
                 "--resolution", "24", "--set", "train.batch_size=8",
                 "--set", "train.log_every=1", "--set",
                 "train.checkpoint_every=100", "--set",
                 "optimizer.warmup_steps=0", "--set",
                 "eval.batch_size=128"])  # = _config(): no recompile
  assert rc == 0
  out = capsys.readouterr().out
  assert "test accuracy" in out
  assert (tmp_path / "w" / "result.json").is_file()
  rc = cli_main(["train", "--arch", str(tmp_path / "missing.json"),
                 "--workdir", str(tmp_path / "w2")])
  assert rc == 2
  assert "missing.json" in capsys.readouterr().err


def test_cli_config_file_and_overrides(tmp_path):
  import argparse  # pylint: disable=g-import-not-at-top
  from hwnas.cli import train as train_cli
  path = tmp_path / "c.py"
  path.write_text("from hwnas.configs import train\n"
                  "def get_config(arg=None):\n"
                  "  c = train.get_config()\n"
                  "  c.train.steps = 7\n"
                  "  c.optimizer.name = arg or 'adamw'\n"
                  "  return c\n")
  args = argparse.Namespace(steps=None, seed=3, dataset=None, init=None,
                            resolution=None)
  cfg = train_cli.load_config(f"{path}:sgd", args,
                              ["optimizer.learning_rate=0.5"])
  assert (cfg.train.steps, cfg.optimizer.name, cfg.optimizer.learning_rate,
          cfg.seed) == (7, "sgd", 0.5, 3)
  assert train_cli.load_config("rank").train.steps < 1000
  with pytest.raises(HwnasError, match="stepz"):
    train_cli.load_config(None, None, ["train.stepz=7"])


_TWO_DEVICE_RUN = """
import json, sys
import jax
jax.config.update("jax_disable_most_optimizations", True)
assert jax.device_count() == 2, jax.devices()
from hwnas import arch, space
from hwnas import train_standalone as ts
s = space.load("tiny")
a = arch.smallest(s)
import ml_collections
cfg = ml_collections.ConfigDict(json.loads(sys.argv[2]))
print(json.dumps(ts.train(arch.decode(s, a), cfg, sys.argv[1], arch=a)))
"""


@pytest.mark.slow
def test_two_devices_train_like_one(tmp_path, straight):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  cfg = _config().to_json()
  out = subprocess.run(
      [sys.executable, "-c", _TWO_DEVICE_RUN, str(tmp_path), cfg], env=env,
      capture_output=True, text=True, timeout=600, check=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert json.loads((tmp_path / "config.json").read_text())["devices"] == 2
  loss = lambda w: [r["train/loss"] for r in _rows(w) if "train/loss" in r]
  np.testing.assert_allclose(loss(tmp_path), loss(straight[0]), rtol=1e-4)
  assert result["test/accuracy"] == pytest.approx(
      straight[1]["test/accuracy"], abs=1 / 360)


@pytest.mark.slow
def test_cli_init_from_supernet_copies_its_weights(tmp_path):
  """--init supernet:W starts from the supernet's shared weights (checked
  with learning rate 0, which leaves the weights where they started)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from hwnas.configs import supernet as supernet_config
  from hwnas.supernet import extract_subnet, loop
  c = supernet_config.get_config("tiny")
  c.train.steps, c.train.batch_size, c.train.resolutions = 1, 8, (24,)
  c.eval.bn_batches, c.eval.batch_size = 1, 48
  loop.train(c, tmp_path / "sn", progress=False)
  s = space.load("tiny")
  a = dataclasses.replace(arch.sample(np.random.default_rng(1), s),
                          resolution=24)
  (tmp_path / "a.json").write_text(arch.to_json(a))
  rc = cli_main(["train", "--arch", str(tmp_path / "a.json"), "--workdir",
                 str(tmp_path / "ft"), "--init", f"supernet:{tmp_path / 'sn'}",
                 "--steps", "1", "--set", "train.batch_size=8", "--set",
                 "optimizer.learning_rate=0", "--set", "eval.batch_size=128"])
  assert rc == 0
  tuned = nnx.state(ts.restore(tmp_path / "ft"), nnx.Param)
  ref = nnx.state(extract_subnet(tmp_path / "sn", a, recalibrate=False),
                  nnx.Param)
  jax.tree.map(np.testing.assert_array_equal, tuned, ref)


def test_digits_few_per_class_split():
  """`digits-N`: N training images per class whatever the seed, the rest of
  digits' training pool as val, digits' own test split."""
  from hwnas import data  # pylint: disable=g-import-not-at-top
  few = data.load("digits-20", seed=3)
  full = data.load("digits")
  assert few.info.split_sizes == {"train": 200, "val": 1237, "test": 360}
  assert np.bincount(few.splits["train"].labels).tolist() == [20] * 10
  np.testing.assert_array_equal(few.splits["test"].images,
                                full.splits["test"].images)
  again = data.load("digits-20", seed=0)
  np.testing.assert_array_equal(few.splits["train"].images,
                                again.splits["train"].images)
  with pytest.raises(HwnasError, match="digits-N"):
    data.load("digits-0")
