"""Supernet training across processes (`jax.distributed`, gloo on CPU).

Two `hwnas supernet train` processes on this machine (a localhost
coordinator on a free port, one CPU device each, each reading its half of
every batch) must end with the parameters and BatchNorm statistics of one
process training on the same global batches: the gradients and batch
statistics are all-reduced by JAX's collectives.
"""

import importlib
import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from hwnas import errors
from hwnas import mesh

evaluate_lib = importlib.import_module("hwnas.supernet.evaluate")
ROOT = pathlib.Path(__file__).resolve().parents[1]

# One stage, few choices: the step compiles in seconds.
_SPACE = pathlib.Path(__file__).parent / "testdata" / "duo.yaml"

STEPS = 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _command(space: pathlib.Path, workdir: pathlib.Path) -> list[str]:
  sets = ["train.batch_size=8", "train.resolutions=[16]",
          "train.checkpoint_every=100", "optimizer.warmup_steps=0",
          # SGD: an update proportional to the gradient (Adam's first steps
          # are about lr * sign(g), which float noise flips where g ~ 0).
          "optimizer.name=sgd", "optimizer.learning_rate=0.1",
          "eval.batch_size=16", "eval.bn_batches=1", "eval.val_batches=1"]
  return [sys.executable, "-m", "hwnas", "supernet", "train", "--space",
          str(space), "--dataset", "digits", "--config", "tiny", "--steps",
          str(STEPS), "--workdir", str(workdir), "--no-progress",
          *[w for s in sets for w in ("--set", s)]]


def _leaves(workdir, key):
  _, _, state, _ = evaluate_lib.load_workdir(workdir)
  return [np.asarray(x) for x in jax.tree.leaves(state[key])]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  space = tmp_path / "duo.yaml"
  space.write_text(_SPACE.read_text())
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  env.pop("XLA_FLAGS", None)   # one CPU device per process
  coordinator = f"localhost:{_free_port()}"
  runs = [subprocess.Popen(
      _command(space, tmp_path / "two") + [
          "--coordinator", coordinator, "--num-processes", "2",
          "--process-id", str(i)],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(2)]
  runs.append(subprocess.Popen(
      _command(space, tmp_path / "one"), env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True))
  try:
    logs = [p.communicate(timeout=600)[0] for p in runs]
  finally:
    for p in runs:
      p.kill()
  for p, log in zip(runs, logs):
    assert p.returncode == 0, log[-3000:]
  assert "[Gloo] Rank 1 is connected" in logs[1]
  # Only process 0 writes the metrics (the step-3 row and the final
  # evaluation); they match the single process's.
  rows = {k: [json.loads(r) for r in (tmp_path / k / "metrics.jsonl")
              .read_text().splitlines()] for k in ("two", "one")}
  assert len(rows["two"]) == len(rows["one"]) == 2
  trained = rows["two"][0]
  assert trained["step"] == STEPS and trained["train/grad_norm"] > 0
  for name in ("train/loss", "train/grad_norm"):
    assert trained[name] == pytest.approx(rows["one"][0][name], rel=1e-4)
  # Final val accuracies (16 images): at most one prediction may flip.
  assert rows["two"][1] == pytest.approx(rows["one"][1], abs=1 / 16 + 1e-6)
  for key in ("params", "stats"):
    two, one = _leaves(tmp_path / "two", key), _leaves(tmp_path / "one", key)
    assert len(two) == len(one)
    for a, b in zip(two, one):
      # The all-reduce sums in another order than one process does:
      # float32 rounding only.
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_partial_flags_are_one_line_errors():
  with pytest.raises(errors.HwnasError, match="together"):
    mesh.initialize_distributed("localhost:1234", num_processes=2)
  with pytest.raises(errors.HwnasError, match="--process-id 2"):
    mesh.initialize_distributed("localhost:1234", num_processes=2,
                                process_id=2)
