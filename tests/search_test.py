"""Tests of the search controller with toy evaluators and costs (fast)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zlib

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from hwnas import arch, counting, errors, space
from hwnas.search import (default_settings, feasibility, history,
                          network_key, pareto, plots, report, run)

SPACE = space.load("tiny")
_MACS: dict = {}


def mmacs(a):
  if a not in _MACS:
    _MACS[a] = counting.count(arch.decode(SPACE, a)).macs / 1e6
  return _MACS[a]


def latency_ms(a):
  """Additive toy latency, deliberately not monotone in MACs."""
  ms = 0.02 * a.resolution
  for s, _, b in a.active_blocks():
    ms += (0.3 if b.type == "fused_ibn" else 0.5) * b.kernel / 3
    ms += 0.1 * b.expansion + (0.4 if b.se else 0.0) + 0.2 * s
    ms += 0.3 if b.activation == "hswish" else 0.0
  return ms + 0.01 * sum(a.widths)


def noise(a):
  return (zlib.crc32(arch.to_string(a).encode()) % 1000) / 1e5


def toy_accuracy(archs):
  """An evaluate_fn: (accuracies, no other metrics)."""
  return ([float(np.log1p(mmacs(a)) / 4 + noise(a)) for a in archs],
          [{} for _ in archs])


class Counter:
  """An evaluator that records every architecture it is asked about."""

  def __init__(self, fail_after=None):
    self.seen, self.fail_after = [], fail_after

  def __call__(self, archs):
    out = []
    for a in archs:
      if self.fail_after is not None and len(self.seen) >= self.fail_after:
        raise RuntimeError("simulated crash")
      self.seen.append(a)
      out.append(toy_accuracy([a])[0][0])
    return out, [{} for _ in out]


def search(workdir, fn=toy_accuracy, **kw):
  kw.setdefault("budget", 40)
  kw.setdefault("population", 8)
  kw.setdefault("target", 3.0)
  return run(SPACE, fn, {"latency_ms": latency_ms, "mmacs": mmacs},
             workdir=workdir, progress=False, plot=False, **kw)


def rows(workdir):
  """The history's records without `batch` (how the evaluate_fn calls were
  split, which a resume with another eval_batch_size changes)."""
  out = []
  for line in pathlib.Path(workdir, "history.jsonl").read_text().splitlines():
    d = json.loads(line)
    d.pop("batch", None)
    out.append(d)
  return out


@pytest.mark.parametrize("algorithm", ["surrogate", "aging", "ofa", "nsga2"])
def test_constraint_never_evaluates_or_returns_infeasible(tmp_path,
                                                          algorithm):
  r = search(tmp_path, algorithm=algorithm, target=2.6, budget=30)
  assert len(r.records) == 30
  assert all(rec.costs["latency_ms"] <= 2.6 for rec in r.records)
  assert r.best.costs["latency_ms"] <= 2.6
  assert r.best.accuracy == max(rec.accuracy for rec in r.records)
  best = json.loads((tmp_path / "best.json").read_text())
  assert arch.from_dict(best) == r.best.arch
  assert best["latency_ms"] <= 2.6


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**16), slack=st.floats(0.0, 2.0))
def test_constraint_feasible_for_any_seed_and_tight_target(seed, slack):
  import tempfile
  lo = feasibility.fastest(SPACE, latency_ms, np.random.default_rng(0))[1]
  with tempfile.TemporaryDirectory() as d:
    r = search(d, seed=seed, target=lo + slack, budget=12, population=4)
  assert r.records
  assert all(rec.costs["latency_ms"] <= lo + slack for rec in r.records)


def test_impossible_target_fails_before_any_evaluation(tmp_path):
  def never(archs):
    raise AssertionError("evaluated despite an impossible target")
  with pytest.raises(errors.HwnasError) as e:
    search(tmp_path, fn=never, target=0.5)
  msg = str(e.value)
  assert "below the lowest latency found in space tiny" in msg
  assert "--target-ms" in msg and "\n" not in msg
  assert not (tmp_path / "history.jsonl").exists()


def test_fastest_is_exact_for_an_additive_cost():
  a, c = feasibility.fastest(SPACE, latency_ms, np.random.default_rng(1))
  assert c == pytest.approx(latency_ms(a))
  rng = np.random.default_rng(2)
  sampled = min(latency_ms(arch.sample(rng, SPACE)) for _ in range(3000))
  assert c <= sampled
  for n in feasibility.neighbours(SPACE, a):   # a local minimum
    assert latency_ms(n) >= c


def test_pareto_front_is_non_dominated_over_several_costs(tmp_path):
  r = search(tmp_path, objective="pareto", target=None, budget=40)
  def dominates(p, q):
    ge = p.accuracy >= q.accuracy and all(
        p.costs[k] <= q.costs[k] for k in p.costs)
    gt = p.accuracy > q.accuracy or any(
        p.costs[k] < q.costs[k] for k in p.costs)
    return ge and gt
  front = set(x.index for x in r.front)
  for p in r.front:
    assert not any(dominates(q, p) for q in r.records)
  for q in r.records:
    if q.index not in front:
      assert any(dominates(p, q) for p in r.front)
  saved = json.loads((tmp_path / "pareto.json").read_text())
  assert [x["index"] for x in saved["front"]] == [x.index for x in r.front]
  assert saved["hypervolume"] > 0


def test_pareto_requires_nsga2(tmp_path):
  with pytest.raises(errors.HwnasError, match="nsga2"):
    search(tmp_path, objective="pareto", algorithm="aging", target=None)


def test_reward_best_maximises_mnasnet_reward(tmp_path):
  r = search(tmp_path, objective="reward", target=2.5, reward_weight=-0.5)
  reward = lambda x: x.accuracy * (x.costs["latency_ms"] / 2.5) ** -0.5
  assert reward(r.best) == max(reward(x) for x in r.records)
  assert any(x.costs["latency_ms"] > 2.5 for x in r.records)  # soft


@pytest.mark.parametrize("algorithm", ["surrogate", "aging", "ofa",
                                       "nsga2"])
def test_deterministic_per_seed_and_no_duplicates(tmp_path, algorithm):
  obj = "pareto" if algorithm == "nsga2" else "constraint"
  kw = dict(algorithm=algorithm, objective=obj, budget=36)
  c = Counter()
  r1 = search(tmp_path / "a", fn=c, **kw)
  r2 = search(tmp_path / "b", **kw)
  r3 = search(tmp_path / "c", seed=1, **kw)
  assert [x.arch for x in r1.records] == [x.arch for x in r2.records]
  assert rows(tmp_path / "a") == rows(tmp_path / "b")
  assert [x.arch for x in r1.records] != [x.arch for x in r3.records]
  assert len(set(c.seen)) == len(c.seen) == 36
  # Not even one network twice (choices differing by trailing skips).
  assert len({network_key(a) for a in c.seen}) == 36


@pytest.mark.parametrize("algorithm", ["surrogate", "aging", "ofa", "nsga2"])
def test_crash_and_resume_equals_uninterrupted(tmp_path, algorithm):
  obj = "pareto" if algorithm == "nsga2" else "constraint"
  kw = dict(algorithm=algorithm, objective=obj, budget=40,
            eval_batch_size=3)
  ref = search(tmp_path / "ref", **kw)
  crash = Counter(fail_after=17)
  with pytest.raises(RuntimeError, match="simulated crash"):
    search(tmp_path / "run", fn=crash, **kw)
  done = len(rows(tmp_path / "run"))   # the chunks (of <= 3) completed
  assert 14 <= done <= 17
  again = Counter()
  r = search(tmp_path / "run", fn=again, **kw)
  assert r.evaluated == len(again.seen) == 40 - done
  assert not set(again.seen) & set(crash.seen[:done])
  assert rows(tmp_path / "run") == rows(tmp_path / "ref")
  assert r.best == ref.best
  assert (tmp_path / "run" / "best.json").read_text() == (
      tmp_path / "ref" / "best.json").read_text()


def test_torn_history_line_and_corrupt_state_are_tolerated(tmp_path):
  ref = search(tmp_path / "ref")
  full = (tmp_path / "ref" / "history.jsonl").read_bytes()
  lines = full.split(b"\n")
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  # Killed while appending evaluation 13 (mid generation), state torn too.
  torn = b"\n".join(lines[:13]) + b"\n" + lines[13][:40]
  (run_dir / "history.jsonl").write_bytes(torn)
  (run_dir / "state.json").write_text('{"config": {"seed"')
  c = Counter()
  r = search(run_dir, fn=c)
  assert r.evaluated == len(c.seen) == 40 - 13
  assert c.seen[0] == ref.records[13].arch
  assert (run_dir / "history.jsonl").read_bytes() == full
  assert r.best == ref.best


def test_corrupt_line_inside_history_is_an_error(tmp_path):
  search(tmp_path)
  lines = (tmp_path / "history.jsonl").read_text().splitlines()
  lines[5] = lines[5][:30]
  (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(errors.HwnasError, match="history.jsonl:6"):
    search(tmp_path)


def test_resume_with_other_settings_is_refused(tmp_path):
  search(tmp_path, budget=10)
  with pytest.raises(errors.HwnasError, match="seed"):
    search(tmp_path, budget=20, seed=5)
  os.remove(tmp_path / "state.json")   # then the records' digest does
  with pytest.raises(errors.HwnasError, match="was made with other "
                     "settings or inputs"):
    search(tmp_path, budget=20, seed=5)


def test_raising_the_budget_continues_the_same_search(tmp_path):
  ref = search(tmp_path / "ref", budget=40)
  search(tmp_path / "run", budget=22)
  c = Counter()
  r = search(tmp_path / "run", fn=c, budget=40)
  assert len(c.seen) == 18
  assert rows(tmp_path / "run") == rows(tmp_path / "ref")
  assert r.best == ref.best


_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import search_test as t
calls = []
def slow(archs):
  calls.append(1)
  time.sleep(0.05 if len(calls) <= 14 else 60)   # wait to be killed
  return t.toy_accuracy(archs)
t.search({workdir!r}, fn=slow, budget=40, eval_batch_size=1,
         algorithm="surrogate")
"""


def test_kill_9_and_resume_equals_uninterrupted(tmp_path):
  # The surrogate-guided search: its surrogate is refitted from the
  # replayed history, so the resumed run proposes exactly the same.
  ref = search(tmp_path / "ref", budget=40, algorithm="surrogate")
  workdir = tmp_path / "run"
  code = _CHILD.format(tests=str(pathlib.Path(__file__).parent),
                       workdir=str(workdir))
  proc = subprocess.Popen([sys.executable, "-c", code])
  hist = workdir / "history.jsonl"
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    if hist.exists() and hist.read_bytes().count(b"\n") >= 12:
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = len(history.read(workdir))
  assert 12 <= done <= 14
  c = Counter()
  r = search(workdir, fn=c, budget=40, algorithm="surrogate")
  assert len(c.seen) == 40 - done
  assert rows(workdir) == rows(tmp_path / "ref")
  assert r.best == ref.best


def test_pymoo_wrappers_rank_a_known_front():
  F = np.array([[1., 2.], [2., 1.], [2., 2.], [0.5, 3.], [3., 3.]])
  assert pareto.front(F).tolist() == [0, 1, 3]
  assert [f.tolist() for f in pareto.fronts(F)] == [[0, 1, 3], [2], [4]]
  assert pareto.survive(F, 3).tolist() == [0, 1, 3]
  assert pareto.hypervolume(F[[0, 1, 3]], [3., 3.]) == pytest.approx(3.0)


def test_outputs_and_plot(tmp_path):
  r = run(SPACE, toy_accuracy, {"latency_ms": latency_ms}, budget=16,
          population=8, target=3.0, workdir=tmp_path, progress=False,
          provenance={"kind": "estimated", "model": "toy"},
          references={"ref-net": (2.0, 0.5), "no-acc": (2.5, None)})
  best = json.loads((tmp_path / "best.json").read_text())
  assert best["provenance"] == {"kind": "estimated", "model": "toy"}
  assert best["arch_string"] == arch.to_string(r.best.arch)
  assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
  state = json.loads((tmp_path / "state.json").read_text())
  assert state["evaluations"] == 16


def test_cli_impossible_target_fails_before_loading_the_supernet(
    tmp_path, capsys):
  from hwnas.cli import main
  code = main(["search", "--space", "edgetpu", "--table",
               "edgetpu-usb3/edgetpu", "--target-ms", "0.01", "--supernet",
               str(tmp_path), "--workdir", str(tmp_path / "w"),
               "--budget", "10"])
  out, err = capsys.readouterr()
  assert code == 2
  assert "search: surrogate, budget 10: 10 random, then 5 per generation" \
      in out
  assert "below the lowest latency found in space edgetpu" in err
  assert "raise the target (CLI: --target-ms" in err
  assert err.count("\n") == 1
  assert not (tmp_path / "w" / "history.jsonl").exists()


def test_a_target_only_a_few_architectures_meet_terminates(tmp_path):
  lo = feasibility.fastest(SPACE, latency_ms, np.random.default_rng(0))[1]
  c = Counter()
  r = search(tmp_path, fn=c, target=lo + 1e-9, budget=50, population=4,
             max_tries=10)
  assert 0 < len(r.records) < 50            # the feasible set ran out
  assert len(set(c.seen)) == len(c.seen)
  assert all(x.costs["latency_ms"] <= lo + 1e-9 for x in r.records)


def test_pareto_best_meets_the_target_or_is_none(tmp_path):
  r = search(tmp_path / "a", objective="pareto", target=3.5, budget=30)
  assert r.best.costs["latency_ms"] <= 3.5
  assert r.best.accuracy == max(x.accuracy for x in r.records
                                if x.costs["latency_ms"] <= 3.5)
  r = search(tmp_path / "b", objective="pareto", target=0.1, budget=10)
  assert r.best is None and len(r.records) == 10
  assert json.loads((tmp_path / "b" / "best.json").read_text())["arch"] is None


def anti_cost(a):
  """Falls as MACs grow: anti-correlated with `mmacs`."""
  return 50.0 / (1.0 + mmacs(a))


def test_several_anti_correlated_targets_find_a_joint_anchor(tmp_path):
  # Feasible: mmacs in [50 / 6 - 1, 12]. The fewest-MACs architecture
  # (the fastest for the first target) violates the second target, which
  # the old anchor check took for "no architecture meets all targets".
  targets = {"mmacs": 12.0, "anti": 6.0}
  rng = np.random.default_rng(0)
  sample = [arch.sample(rng, SPACE) for _ in range(300)]
  joint = [a for a in sample if mmacs(a) <= 12 and anti_cost(a) <= 6]
  assert len(joint) > 30
  small = feasibility.fastest(SPACE, mmacs, np.random.default_rng(0))[0]
  assert anti_cost(small) > 6
  c = Counter()
  r = run(SPACE, c, {"mmacs": mmacs, "anti": anti_cost}, target=targets,
          budget=30, workdir=tmp_path / "a", progress=False, plot=False)
  assert len(r.records) == len(c.seen) == 30
  assert all(x.costs["mmacs"] <= 12 and x.costs["anti"] <= 6
             for x in r.records)
  assert r.fastest[0] == small      # reported for the primary target
  with pytest.raises(errors.HwnasError) as e:   # an empty band
    run(SPACE, c, {"mmacs": mmacs, "anti": anti_cost},
        target={"mmacs": 3.0, "anti": 6.0}, budget=10,
        workdir=tmp_path / "b", progress=False, plot=False)
  assert "meets all targets" in str(e.value) and "\n" not in str(e.value)
  assert not (tmp_path / "b").exists()


def test_budget_aware_defaults():
  s = default_settings("aging", 100)
  assert (s.population, s.sample_size, s.batch_size) == (20, 5, 5)
  assert default_settings("aging", 5000).population == 100
  s = default_settings("surrogate", 100)
  assert (s.population, s.batch_size, s.sample_size) == (20, 5, 10)
  assert s.candidates >= 20 * s.batch_size
  assert default_settings("surrogate", 1000).batch_size == 20
  assert default_settings("aging", 100, population=7).population == 7
  # A budget under the default population is one generation of it (the
  # derived default never exceeds the budget a user gave).
  for algorithm in ("aging", "surrogate"):
    s = default_settings(algorithm, 6)
    assert s.population == 6
    assert default_settings(algorithm, 6, population=s.population) == s
  for bad in (dict(population=0), dict(population=1), dict(batch_size=0),
              dict(mutation_prob=5.0), dict(mutation_prob=0.0)):
    with pytest.raises(errors.HwnasError, match="search: "):
      default_settings("aging", 100, **bad)


def test_a_search_with_a_budget_under_ten_runs(tmp_path):
  for algorithm in ("aging", "surrogate"):
    r = search(tmp_path / algorithm, algorithm=algorithm, budget=6,
               population=None)
    assert len(r.records) == 6


def test_a_100_evaluation_search_is_not_one_random_generation(tmp_path):
  for algorithm in ("aging", "surrogate"):
    r = search(tmp_path / algorithm, algorithm=algorithm, budget=100,
               population=None)
    assert len(r.records) == 100
    assert sum(x.generation == 0 for x in r.records) <= 20
    assert r.records[-1].generation >= 4


def test_resume_against_a_changed_cost_source_is_refused(tmp_path):
  src = {"latency_ms": {"table": "t.json", "sha256": "aa"}}
  search(tmp_path, budget=8, sources=src)
  before = rows(tmp_path)
  src = {"latency_ms": {"table": "t.json", "sha256": "bb"}}
  with pytest.raises(errors.HwnasError) as e:
    search(tmp_path, budget=16, sources=src)
  msg = str(e.value)
  assert "the source of latency_ms changed" in msg and "\n" not in msg
  assert "sha256 was 'aa', now 'bb'" in msg
  assert rows(tmp_path) == before


def test_best_breaks_ties_by_cost_and_the_front_lists_a_network_once():
  from hwnas.search import objectives
  rng = np.random.default_rng(0)
  a = arch.sample(rng, SPACE)
  while a.depths[1] != 1:
    a = arch.sample(rng, SPACE)
  s2 = SPACE.stages[1]
  skip = arch.BlockChoice("skip", s2.kernels[0], s2.expansions[0],
                          s2.se[0], s2.activations[0])
  blocks = list(a.blocks[1])
  blocks[1] = skip
  twin = arch.ArchChoice(a.space, a.resolution, a.widths, (a.depths[0], 2),
                         (a.blocks[0], tuple(blocks)))
  arch.validate(SPACE, twin)
  assert twin != a and network_key(twin) == network_key(a)
  b = arch.sample(rng, SPACE)
  recs = [history.Record(0, 0, b, 0.9, {"latency_ms": 2.0}),
          history.Record(1, 0, a, 0.9, {"latency_ms": 1.5}),
          history.Record(2, 0, twin, 0.9, {"latency_ms": 1.5})]
  obj = objectives.make("constraint", ["latency_ms"], 3.0)
  best = report.select_best(recs, obj)
  assert best.index == 1
  fr = report.front(recs, ["latency_ms"])
  assert [r.index for r in fr] == [1]
  assert plots.axis_label("latency_ms") == "latency (ms)"
  assert report.plot_title({"table": "/x/xla/tiny.json",
                            "kind": "estimated"}) == (
                                "latency table xla/tiny (estimated)")


def test_cli_rejects_bad_search_settings(tmp_path, capsys):
  from hwnas.cli import main
  for flag, value in (("--population", "0"), ("--mutation-prob", "5"),
                      ("--batch-size", "0"), ("--eval-batch-size", "0")):
    code = main(["search", "--space", "tiny", "--cost", "mmacs", "--target",
                 "3", "--supernet", str(tmp_path), "--workdir",
                 str(tmp_path / "w"), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: search: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "w").exists()
