"""Resumes end bit-identical to the uninterrupted run, from any cut.

A search whose `state.json` is gone still refuses a changed table (each
history record carries the digest of its inputs); an evaluation batch cut
between two appends is evaluated again whole, so an evaluator whose floats
depend on the batch (the predictor's matrix products) gives the same
history; SIGINT leaves a resumable workdir and says so; `supernet train`
killed with SIGKILL resumes to the same parameters.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

from hwnas import space as space_lib
from hwnas.cli import main
from hwnas.search import history, predictor, run

from reliability_test import TINY_TABLE, fails  # pylint: disable=g-bad-import-order

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPACE = space_lib.load("tiny")


def _mlp(seed=0, hidden=(32,)):
  """A predictor with random weights (an MLP: batch-dependent floats)."""
  rng = np.random.default_rng(seed)
  d = predictor.Encoder(SPACE).size
  sizes = [d, *hidden, 1]
  weights = []
  for a, b in zip(sizes[:-1], sizes[1:]):
    weights += [rng.normal(size=(2, a, b)).astype(np.float32) / np.sqrt(a),
                rng.normal(size=(2, b)).astype(np.float32) * 0.1]
  return predictor.Predictor(SPACE.id, tuple(hidden), tuple(weights), 0.5,
                             0.1)


def _batch_dependent(archs):
  """A toy evaluator whose floats depend on the call's batch, as a real
  one's may (different reduction orders)."""
  return ([0.5 + 1e-7 * len(archs) + 1e-3 * a.resolution for a in archs],
          [{} for _ in archs])


def _search(workdir, fn, **kw):
  return run(SPACE, fn, {"mmacs": lambda a: a.resolution / 10},
             target=4.0, budget=14, population=6, workdir=workdir,
             progress=False, plot=False, **kw)


@pytest.mark.parametrize("evaluator", ["predictor", "toy"])
@pytest.mark.parametrize("eval_batch_size", [2, 3, None])
def test_a_batch_cut_midway_resumes_bit_identical(tmp_path, evaluator,
                                                  eval_batch_size):
  fn = (predictor.make_evaluator(_mlp(), SPACE) if evaluator == "predictor"
        else _batch_dependent)
  ref = tmp_path / "ref"
  _search(ref, fn, eval_batch_size=eval_batch_size)
  lines = (ref / history.HISTORY).read_bytes().splitlines(keepends=True)
  rows = [json.loads(l) for l in lines]
  cuts = [i for i, r in enumerate(rows) if i - r["batch"][0] not in (
      0, r["batch"][1])][:4]   # kills between two records of one call
  assert cuts
  for cut in cuts:
    w = tmp_path / f"cut{cut}"
    w.mkdir()
    (w / history.HISTORY).write_bytes(b"".join(lines[:cut]))
    calls = []
    _search(w, lambda archs: calls.append(len(archs)) or fn(archs),
            eval_batch_size=eval_batch_size)
    assert (w / history.HISTORY).read_bytes() == b"".join(lines), cut
    # The cut call was made again whole, with its original size.
    r = rows[cut]
    assert calls[0] == r["batch"][1]


def test_resume_without_state_json_refuses_a_changed_table(tmp_path,
                                                           capsys):
  pred = tmp_path / "pred"
  predictor.save(_mlp(), pred)
  table = tmp_path / "t.json"
  table.write_bytes(TINY_TABLE.read_bytes())
  w = tmp_path / "w"
  argv = ["search", "--space", "tiny", "--table", table, "--target-ms",
          "50", "--evaluator", "predictor", "--predictor", pred,
          "--budget", "12", "--population", "6", "--workdir", w,
          "--no-progress"]
  assert main([str(a) for a in argv]) == 0
  capsys.readouterr()
  hist = w / history.HISTORY
  # A shorter budget's history, then the table edited, state.json gone.
  keep = b"".join(hist.read_bytes().splitlines(keepends=True)[:7])
  hist.write_bytes(keep)
  d = json.loads(table.read_text())
  for e in d["entries"].values():
    e["latency_ms"] *= 1.5
  table.write_text(json.dumps(d))
  (w / history.STATE).unlink()
  fails(capsys, argv, "history.jsonl: evaluation 0 was made with other",
        keep=[hist])
  assert hist.read_bytes() == keep


def _search_argv(w):
  return ["search", "--space", "tiny", "--cost", "mmacs", "--target", "4",
          "--supernet", ".", "--budget", "16", "--population", "6",
          "--eval-batch-size", "2", "--workdir", str(w), "--no-progress"]


_SLOW_SEARCH = """
import signal, sys, time
# Ctrl-C as a terminal delivers it, whatever the test worker that starts
# this process inherited (an ignored or blocked SIGINT is inherited).
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
import reliability_resume_test as t
import hwnas.pipeline as p
from hwnas.cli import main
calls = []
def slow(archs):
  calls.append(1)
  if len(calls) > 4:
    print("ready", flush=True)
    time.sleep(60)   # wait for SIGINT
  return t._batch_dependent(archs)
p._evaluator = lambda *a, **k: slow
sys.exit(main(t._search_argv({w!r})))
"""


def test_sigint_leaves_a_resumable_workdir_and_says_so(tmp_path, capsys,
                                                       monkeypatch):
  w = tmp_path / "w"
  code = _SLOW_SEARCH.format(root=str(ROOT), tests=str(ROOT / "tests"),
                             w=str(w))
  proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  while proc.poll() is None and proc.stdout.readline().strip() != "ready":
    pass
  proc.send_signal(signal.SIGINT)
  try:
    _, err = proc.communicate(timeout=120)
  except subprocess.TimeoutExpired:
    proc.kill()   # never leave it running into the next test
    _, err = proc.communicate()
    pytest.fail(f"the search did not stop on SIGINT: {err[-2000:]}")
  assert proc.returncode == 130, err
  lines = [l for l in err.splitlines() if l.strip()]
  assert len(lines) == 1 and "interrupted" in lines[0], err
  assert "rerun the same command to resume" in lines[0]
  assert len(history.read(w)) == 8   # four calls of two, recorded
  # The same command resumes it to the uninterrupted run's history.
  import hwnas.pipeline  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(hwnas.pipeline, "_evaluator",
                      lambda *a, **k: _batch_dependent)
  assert main(_search_argv(w)) == 0
  assert main(_search_argv(tmp_path / "ref")) == 0
  capsys.readouterr()
  assert (w / history.HISTORY).read_bytes() == (
      tmp_path / "ref" / history.HISTORY).read_bytes()


_SN_ARGS = ["--space", "tiny", "--steps", "12", "--no-progress",
            "--set", "train.batch_size=8", "--set", "train.log_every=2",
            "--set", "train.checkpoint_every=2", "--set", "eval.bn_batches=1",
            "--set", "eval.val_batches=1", "--set", "train.resolutions=[24]"]

_SN_CHILD = """
import sys
sys.path.insert(0, {root!r})
from hwnas.supernet import checkpoint
save = checkpoint.save
def announce(mgr, step, state):
  save(mgr, step, state)
  print("saved", step, flush=True)
checkpoint.save = announce
from hwnas.cli import main
sys.exit(main(["supernet", "train", "--workdir", {w!r}] + {args!r}))
"""


def _params(workdir):
  import jax  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  _, _, state, _ = evaluate.load_workdir(workdir)
  return [np.asarray(x) for x in jax.tree.leaves(state)]


@pytest.mark.slow   # three short supernet runs (one compiles, two reuse it)
def test_supernet_train_kill_9_resumes_to_the_same_parameters(tmp_path):
  """Killed after its step-4 checkpoint, with that checkpoint then damaged
  (the fallback to step 2), `supernet train` ends with exactly the
  parameters and optimiser state of an uninterrupted run."""
  from hwnas import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  # Three processes, one XLA compilation: JAX's persistent cache.
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
         "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla_cache"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
         "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  w = tmp_path / "killed"
  proc = subprocess.Popen(
      [sys.executable, "-c", _SN_CHILD.format(root=str(ROOT), w=str(w),
                                              args=_SN_ARGS)],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
  while proc.poll() is None and proc.stdout.readline().strip() != "saved 4":
    pass
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  steps = sorted(int(p.name) for p in (w / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert 4 in steps and 12 not in steps, steps
  newest = w / "checkpoints" / str(max(steps))
  f = max((p for p in newest.rglob("*") if p.is_file() and
           p.name != workdir_lib.CHECKSUMS), key=lambda p: p.stat().st_size)
  data = bytearray(f.read_bytes())
  data[len(data) // 2] ^= 0xFF
  f.write_bytes(bytes(data))
  ref = tmp_path / "ref"
  for d in (w, ref):
    p = subprocess.run([sys.executable, "-m", "hwnas", "supernet", "train",
                        "--workdir", str(d)] + _SN_ARGS, env=env, text=True,
                       capture_output=True, timeout=900)
    assert p.returncode == 0, p.stderr
    if d == w:
      assert f"checkpoint {max(steps)} is damaged" in p.stderr, p.stderr
  got, want = _params(w), _params(ref)
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)
