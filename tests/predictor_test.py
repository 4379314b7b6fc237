"""Tests of the MLP accuracy predictor on a synthetic additive problem."""

import json

import numpy as np
import pytest

from hwnas import arch, errors, space
from hwnas.search import history, predictor, run

SPACE = space.load("tiny")


def additive_accuracy(a):
  """A per-gene score: learnable from the encoding, known ground truth."""
  score = 0.5 + 0.05 * (a.resolution == 32) + 0.01 * sum(a.widths) / 8
  for _, j, b in a.active_blocks():
    score += 0.03 * (b.kernel == 5) + 0.02 * (b.expansion == 4) - 0.01 * j
    score += 0.02 * b.se + 0.01 * (b.type == "fused_ibn")
  return score


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  archs = list({arch.sample(rng, SPACE) for _ in range(400)})
  archs.sort(key=arch.to_string)
  return archs, [additive_accuracy(a) for a in archs]


@pytest.fixture(scope="module")
def trained(data):
  archs, accs = data
  return predictor.train(SPACE, archs, accs, seed=0, hidden=(64, 64),
                         ensemble=3, steps=600)


@pytest.mark.slow  # trains (compiles) a small JAX MLP
def test_ranks_held_out_architectures(trained):
  held = trained.metrics["heldout"]
  assert held["n"] >= 60
  assert held["spearman"] > 0.9 and held["kendall"] > 0.75


@pytest.mark.slow  # trains (compiles) a small JAX MLP
def test_ensemble_gives_uncertainty_and_save_load_round_trips(
    trained, data, tmp_path):
  archs = data[0][:20]
  mean, std = predictor.predict(trained, SPACE, archs)
  assert mean.shape == std.shape == (20,)
  assert np.all(std > 0)
  predictor.save(trained, tmp_path / "p")
  cfg = json.loads((tmp_path / "p" / "predictor.json").read_text())
  assert cfg["ensemble"] == 3 and cfg["space"] == SPACE.id
  again = predictor.load(tmp_path / "p")
  np.testing.assert_array_equal(predictor.predict(again, SPACE, archs)[0],
                                mean)


@pytest.mark.slow  # trains (compiles) a small JAX MLP
def test_wrong_space_or_bad_directory_is_a_clear_error(trained, tmp_path):
  with pytest.raises(errors.HwnasError, match="trained on space tiny@1"):
    predictor.predict(trained, space.load("edgetpu"),
                      [arch.sample(np.random.default_rng(0),
                                   space.load("edgetpu"))])
  with pytest.raises(errors.HwnasError, match="not a predictor directory"):
    predictor.load(tmp_path)


@pytest.mark.slow  # trains (compiles) a small JAX MLP
def test_trains_from_history_and_drives_a_search(trained, tmp_path):
  evaluate = lambda archs: ([additive_accuracy(a) for a in archs],
                            [{} for _ in archs])
  lat = lambda a: 0.02 * a.resolution + 0.1 * sum(a.depths)
  run(SPACE, evaluate, {"latency_ms": lat}, target=1.0, budget=30,
      population=10, workdir=tmp_path / "s", progress=False, plot=False)
  archs, accs = predictor.pairs_from_history([tmp_path / "s"], SPACE)
  assert len(archs) == 30
  assert accs == [r.accuracy for r in history.read(tmp_path / "s")]
  r = run(SPACE, predictor.make_evaluator(trained, SPACE),
          {"latency_ms": lat}, target=1.0, budget=20, population=10,
          workdir=tmp_path / "p", progress=False, plot=False)
  assert r.best.accuracy == pytest.approx(
      predictor.predict(trained, SPACE, [r.best.arch])[0][0])


@pytest.mark.slow  # trains (compiles) a small JAX MLP
def test_cli_train_then_search_with_the_predictor(tmp_path, capsys):
  from hwnas.cli import main
  evaluate = lambda archs: ([additive_accuracy(a) for a in archs],
                            [{} for _ in archs])
  run(SPACE, evaluate, {"mmacs": lambda a: a.resolution / 10}, target=3.0,
      budget=60, population=20, workdir=tmp_path / "h", progress=False,
      plot=False)
  assert main(["predictor", "train", "--space", "tiny", "--history",
               str(tmp_path / "h" / "history.jsonl"), "--out",
               str(tmp_path / "p"), "--steps", "300", "--hidden", "32",
               "--ensemble", "2"]) == 0
  assert "held-out:" in capsys.readouterr().out
  assert main(["search", "--space", "tiny", "--cost", "mmacs", "--target",
               "3", "--evaluator", "predictor", "--predictor",
               str(tmp_path / "p"), "--budget", "16", "--population", "8",
               "--workdir", str(tmp_path / "s"), "--no-progress"]) == 0
  best = json.loads((tmp_path / "s" / "best.json").read_text())
  assert best["costs"]["mmacs"] <= 3
  assert len(history.read(tmp_path / "s")) == 16
  # Resuming against a changed predictor is refused in one line.
  cfg = tmp_path / "p" / predictor.CONFIG
  cfg.write_text(cfg.read_text().replace('"steps": 300', '"steps": 301'))
  before = (tmp_path / "s" / "history.jsonl").read_bytes()
  capsys.readouterr()
  assert main(["search", "--space", "tiny", "--cost", "mmacs", "--target",
               "3", "--evaluator", "predictor", "--predictor",
               str(tmp_path / "p"), "--budget", "20", "--population", "8",
               "--workdir", str(tmp_path / "s"), "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert "the source of evaluator changed" in err and err.count("\n") == 1
  assert (tmp_path / "s" / "history.jsonl").read_bytes() == before


def test_fast_encoder_equals_arch_encode():
  for name in ("tiny", "mobilenetv3"):
    s = space.load(name)
    enc = predictor.Encoder(s)
    rng = np.random.default_rng(3)
    for _ in range(200):
      a = arch.sample(rng, s)
      np.testing.assert_array_equal(enc(a), arch.encode(s, a))


def test_ridge_ensemble_ranks_and_its_loo_alpha_is_exact(data):
  archs, accs = data
  p = predictor.fit_ridge(SPACE, archs[:150], accs[:150], seed=1)
  mean, sd = predictor.predict(p, SPACE, archs[150:])
  held = predictor.rank_metrics(accs[150:], mean)
  assert held["spearman"] > 0.85         # the problem is near additive
  assert sd.shape == mean.shape and (sd > 0).all()
  again = predictor.fit_ridge(SPACE, archs[:150], accs[:150], seed=1)
  np.testing.assert_array_equal(predictor.predict(again, SPACE, archs)[0],
                                predictor.predict(p, SPACE, archs)[0])
  # The closed-form leave-one-out error equals refitting without each row.
  x = np.stack([arch.encode(SPACE, a) for a in archs[:40]]).astype(float)
  y = np.asarray(accs[:40]) * 10
  alpha, err = predictor._ridge_path(x, y, [p.metrics["alpha"]])
  brute = []
  for i in range(40):
    keep = np.arange(40) != i
    w = predictor._ridge(x[keep], y[keep], alpha)
    brute.append((y[i] - x[i] @ w[:-1] - w[-1]) ** 2)
  assert err == pytest.approx(np.mean(brute), rel=1e-6)


def test_heldout_split_keeps_duplicates_together():
  """Rows of one architecture (a search history repeats none, but merged
  histories and sampled pairs do) never straddle the held-out split."""
  rng = np.random.default_rng(3)
  uniq = list({arch.sample(rng, SPACE) for _ in range(40)})
  archs = uniq + uniq[:15] + uniq[:5]           # 20 duplicated rows
  x = np.stack([arch.encode(SPACE, a) for a in archs])
  val, tr = predictor.heldout_split(x, 0.25, seed=0)
  assert sorted(np.concatenate([val, tr]).tolist()) == list(range(len(x)))
  held = {x[i].tobytes() for i in val}
  assert held and not held & {x[i].tobytes() for i in tr}
  assert len(held) == 10                        # a quarter of 40 unique
