"""Tests of hwnas.rank_check and `hwnas supernet rank-check`: the statistics
on a constructed case, the stratified sample, and an end-to-end run that is
killed (SIGKILL) mid-way and resumed without retraining what finished."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hwnas import arch as arch_lib
from hwnas import rank_check
from hwnas import space as space_lib
from hwnas.configs import rank_check as rank_config
from hwnas.errors import HwnasError

MICRO = pathlib.Path(__file__).parent / "testdata" / "micro.yaml"


# Tiny nets: XLA optimisations cost more compile time than they save.
pytestmark = pytest.mark.usefixtures("fast_compile_module")


def test_summarize_constructed_case():
  sn = [0.5, 0.6, 0.7, 0.8]
  st = np.array([[0.10, 0.25], [0.20, 0.10], [0.30, 0.30], [0.40, 0.40]])
  s = rank_check.summarize(sn, st, top_k=3)
  # The mean over seeds orders 1 < 0 < 2 < 3: one of 6 pairs discordant.
  assert s["kendall_tau"] == pytest.approx(4 / 6)
  assert s["spearman_rho"] == pytest.approx(1 - 6 * 2 / (4 * 15))
  # Seed 0 agrees fully with the supernet, seed 1 like the mean.
  assert s["kendall_tau_per_seed"] == pytest.approx((1 + 4 / 6) / 2)
  assert s["noise_ceiling"] == pytest.approx(4 / 6)   # seed 0 vs seed 1
  assert s["ceiling_fraction"] == pytest.approx(1.25)
  assert s["best_in_top_k"] is True          # index 3 is best in both
  assert s["top_k_overlap"] == pytest.approx(2 / 3)   # {3,2,1} vs {3,2,0}
  assert s["mean_gap"] == pytest.approx(np.mean(st.mean(1) - sn))
  reversed_ = rank_check.summarize(sn[::-1], st, top_k=1)
  assert reversed_["kendall_tau"] == pytest.approx(-4 / 6)
  assert reversed_["best_in_top_k"] is False
  one_seed = rank_check.summarize(sn, st[:, :1])
  assert one_seed["noise_ceiling"] is None and one_seed["kendall_tau"] == 1


def test_summarize_interval_verdict_and_ceiling_above_one():
  sn = [0.5, 0.6, 0.7, 0.8]
  st = np.array([[0.10, 0.25], [0.20, 0.10], [0.30, 0.30], [0.40, 0.40]])
  s = rank_check.summarize(sn, st)
  lo, hi = s["tau_interval"]
  assert lo <= s["kendall_tau_per_seed"] <= hi and hi <= 1
  assert any("at the ceiling" in w for w in s["warnings"])   # 1.25 > 1
  lines = rank_check.summary_lines({"summary": s, "dataset": "d",
                                    "split": "val", "split_size": 9})
  assert "125%" not in "\n".join(lines) and "(at the ceiling)" in lines[0]
  assert lines[-1].startswith("verdict: ranking ")


def test_vectorised_tau_matches_scipy_with_ties():
  from scipy import stats
  rng = np.random.default_rng(1)
  x = rng.integers(0, 4, (40, 12)).astype(float)
  y = rng.integers(0, 5, (40, 12)).astype(float)
  x[0] = 3.0                                   # a constant row: undefined
  got = rank_check.kendall_tau_b(x, y)
  assert np.isnan(got[0])
  want = [stats.kendalltau(a, b).statistic for a, b in zip(x[1:], y[1:])]
  np.testing.assert_allclose(got[1:], want, atol=1e-12)


def test_summarize_verdicts_from_agreement_and_noise():
  rng = np.random.default_rng(0)
  true = np.linspace(0.6, 0.9, 24)
  st = true[:, None] + rng.normal(0, 0.005, (24, 2))
  good = rank_check.summarize(true + rng.normal(0, 0.005, 24), st)
  assert good["verdict"] == "trustworthy"
  assert good["tau_interval"][0] > 0.6
  noise = rank_check.summarize(rng.permutation(true), st)
  assert noise["verdict"] == "no better than noise"
  assert noise["tau_interval"][0] <= 0 <= noise["tau_interval"][1]
  assert rank_check.summary_lines(
      {"summary": noise, "dataset": "d", "split": "val", "split_size": 9}
  )[-1] == "verdict: ranking no better than noise for this setting"


def test_summarize_constant_accuracies_are_explained_not_nan():
  st = np.array([[0.5, 0.6], [0.6, 0.5], [0.7, 0.8], [0.8, 0.7]])
  s = rank_check.summarize([0.9] * 4, st)
  assert s["kendall_tau_per_seed"] is None and s["kendall_tau"] is None
  assert s["spearman_rho"] is None and s["tau_interval"] is None
  assert s["verdict"] == "undefined"
  assert any("same accuracy" in w for w in s["warnings"])
  json.dumps(s, allow_nan=False)              # no NaN reaches the JSON
  flat = rank_check.summarize([0.5, 0.6, 0.7, 0.8],
                              np.full((4, 2), 0.1))
  assert flat["noise_ceiling"] is None and flat["verdict"] == "undefined"
  json.dumps(flat, allow_nan=False)


def test_summarize_warns_when_standalone_runs_are_undertrained():
  sn = [0.96, 0.97, 0.98, 0.99]
  st = np.array([[0.44, 0.45], [0.95, 0.96], [0.97, 0.97], [0.98, 0.99]])
  s = rank_check.summarize(sn, st)
  w = [w for w in s["warnings"] if "undertrained" in w]
  assert len(w) == 1 and "a00" in w[0] and "44.5%" in w[0]
  fine = rank_check.summarize(sn, st[[1, 1, 2, 3]])
  assert not any("undertrained" in w for w in fine["warnings"])


def test_sample_includes_extremes_and_spreads_over_macs():
  s = space_lib.load("tiny")
  cost = rank_check.cost_function(s, "macs")
  extra = arch_lib.sample(np.random.default_rng(7), s)
  archs = rank_check.sample_architectures(s, 10, seed=0, cost=cost,
                                          include=[extra], pool=300)
  keys = [arch_lib.to_string(a) for a in archs]
  assert len(archs) == 10 and len(set(keys)) == 10
  big = arch_lib.to_string(arch_lib.largest(s))        # at 32, the largest
  small = arch_lib.smallest(s)                          # at 24
  assert keys[0] == big and archs[0].resolution == max(s.resolutions)
  assert keys[1] == arch_lib.to_string(small)
  assert keys[2] == arch_lib.to_string(extra)
  costs = [cost(a) for a in archs]
  assert max(costs) == costs[0] and min(costs) == costs[1]
  pool = [cost(arch_lib.sample(np.random.default_rng(i), s))
          for i in range(200)]
  rest = costs[3:]
  assert rest == sorted(rest)
  assert min(rest) <= np.quantile(pool, 0.2)
  assert max(rest) >= np.quantile(pool, 0.8)


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
  """A 1-step micro supernet on digits-10 (weights barely trained: the
  rank-check machinery, not the ranking, is under test)."""
  from hwnas.configs import supernet as supernet_config
  from hwnas.supernet import loop
  root = tmp_path_factory.mktemp("rank")
  (root / "micro.yaml").write_text(MICRO.read_text())
  c = supernet_config.get_config("tiny")
  c.space, c.dataset = str(root / "micro.yaml"), "digits-10"
  c.train.steps, c.train.batch_size = 1, 8
  c.eval.bn_batches, c.eval.batch_size = 1, 64
  loop.train(c, root / "sn", progress=False)
  return root / "sn"


_SETTINGS = ["pool=40", "seeds=[0,1]", "standalone.train.steps=2",
             "standalone.train.batch_size=8", "standalone.train.log_every=1",
             "standalone.eval.batch_size=256"]


def _config(samples):
  from hwnas.configs import loader
  c = rank_config.get_config()
  c.samples = samples
  return loader.override(c, _SETTINGS)


@pytest.mark.slow
def test_rank_check_resumes_after_kill(supernet, tmp_path):
  """`hwnas supernet rank-check` killed with SIGKILL after its first
  finished standalone run; the rerun reuses every finished run (its
  result.json is untouched) and completes the report."""
  out = tmp_path / "rc"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  argv = [sys.executable, "-m", "hwnas", "supernet", "rank-check",
          "--workdir", str(supernet), "--samples", "2", "--out", str(out),
          "--no-progress"] + [x for s in _SETTINGS for x in ("--set", s)]
  proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  first = out / "standalone" / "a00_s0" / "result.json"
  deadline = time.time() + 300
  while not first.is_file() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)
  _, err = proc.communicate()
  assert first.is_file(), err.decode()[-2000:]
  assert not (out / "rank_check.json").exists()  # killed mid-way
  done = {p.parent.name: p.stat().st_mtime_ns
          for p in (out / "standalone").glob("*/result.json")}
  result = rank_check.run(supernet, _config(2), out=out)
  for name, mtime in done.items():
    assert (out / "standalone" / name / "result.json").stat(
        ).st_mtime_ns == mtime
  rows = result["rows"]
  assert len(rows) == 2 and all(len(r["standalone"]) == 2 for r in rows)
  s = result["summary"]
  assert -1 <= s["kendall_tau"] <= 1 and s["noise_ceiling"] is not None
  saved = json.loads((out / "rank_check.json").read_text())
  assert saved["summary"] == json.loads(json.dumps(s))
  assert (out / "rank_check.png").stat().st_size > 1000
  # A finished check is all reuse: nothing is trained again.
  again = rank_check.run(supernet, _config(2), out=out)
  assert again["timing"]["standalone_s"] == 0.0
  # The command itself ends with the report's summary line (all reuse).
  cli = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=300)
  assert cli.returncode == 0, cli.stderr[-2000:]
  assert str(out / "rank_check.json") in cli.stdout
  with pytest.raises(HwnasError, match="another sample"):
    rank_check.run(supernet, _config(3), out=out)
