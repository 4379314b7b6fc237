"""Tests for simulated int8: hwnas.supernet.int8 (the arithmetic and the
forward hook) and hwnas.supernet.quant (evaluation)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch, space, tflite
from hwnas.supernet import extract, int8, quant
from hwnas.supernet import model as model_lib


def test_act_params_match_the_converters_input_quantisation():
  # An exported model's [0, 1] input is int8 with scale 1/255, zp -128.
  scale, zp = int8.act_params(jnp.array([0.0, 1.0]))
  assert float(scale) == pytest.approx(1 / 255) and int(zp) == -128
  r = jnp.array([-0.3, 2.0])
  scale, zp = int8.act_params(r)
  x = jnp.linspace(-0.3, 2.0, 101)
  y = int8.fake_quant(x, r)
  assert float(jnp.max(jnp.abs(y - x))) <= float(scale) / 2 + 1e-7
  assert float(int8.fake_quant(jnp.zeros(()), r)) == 0.0   # 0 is exact
  assert float(int8.fake_quant(jnp.array(5.0), r)) == pytest.approx(
      float(scale) * (127 - float(zp)))                      # clipped
  # A range without 0 is widened to contain it.
  assert float(int8.act_params(jnp.array([0.5, 1.0]))[0]) == pytest.approx(
      1 / 255)


def test_weights_per_output_channel_over_active_inputs_only():
  rng = np.random.default_rng(0)
  w = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
  w[:, :, 3, :] = 100.0                 # an inactive input channel
  mask = jnp.array([1.0, 1.0, 1.0, 0.0])
  b = jnp.array([0.3, -0.7])
  r_in = jnp.array([0.0, 2.55])         # input scale 0.01
  wq, bq = int8.quant_weights(jnp.asarray(w), b, r_in, mask)
  active = np.asarray(w[:, :, :3])
  s = np.abs(active).max(axis=(0, 1, 2)) / 127
  np.testing.assert_allclose(np.asarray(wq)[:, :, 3], 0.0)
  q = np.asarray(wq)[:, :, :3] / s
  np.testing.assert_allclose(q, np.round(q), atol=1e-3)
  assert np.abs(q).max() == pytest.approx(127, abs=1e-3)
  assert (np.abs(np.asarray(wq)[:, :, :3] - active) <= s / 2 + 1e-6).all()
  sb = 0.01 * s
  np.testing.assert_allclose(np.asarray(bq) / sb, np.round(np.asarray(bq) /
                                                           sb), atol=1e-2)


def _supernet():
  """The tiny space's supernet with random BatchNorm statistics (so that
  folding them matters)."""
  s = space.load("tiny")
  net = model_lib.Supernet(s, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  for path, v in nnx.iter_graph(net):
    if isinstance(v, nnx.BatchStat):
      value = (rng.uniform(0.5, 1.5, v.value.shape) if path[-1] == "var"
               else rng.normal(0.0, 0.2, v.value.shape))
      v.value = jnp.asarray(value, jnp.float32)
  return s, net


def _archs(s):
  """Architectures at r24 covering SE, hard-swish, fused, residual."""
  rng = np.random.default_rng(4)
  out = []
  while len(out) < 4:
    a = dataclasses.replace(arch.sample(rng, s), resolution=24)
    bs = [b for _, _, b in a.active_blocks()]
    kinds = (any(b.se for b in bs), any(b.activation == "hswish"
                                         for b in bs))
    if kinds == ((True, True), (True, False), (False, True),
                 (False, False))[len(out)]:
      out.append(a)
  return out


@pytest.fixture(scope="module")
def supernet():
  return _supernet()


@pytest.fixture(scope="module")
def compiled(supernet):
  """One jitted function (shared by the tests below, compiled once):
  (folded float, supernet float, simulated int8 logits, ranges, points)
  of an architecture, calibrated on `calib`, evaluated on `x`."""
  s, net = supernet
  graphdef, state = nnx.split(net)

  @jax.jit
  def f(state, a, calib, x):
    n = nnx.merge(graphdef, state)
    ranges = quant.calibrate(n, calib, a)
    folded, seen = n.observe(x, a)
    return (folded, n(x, a, train=False), n(x, a, int8_ranges=ranges),
            ranges, seen)

  rng = np.random.default_rng(3)
  calib = rng.uniform(0, 1, (2, 16, 24, 24, 3)).astype(np.float32)
  x = rng.uniform(0, 1, (24, 24, 24, 3)).astype(np.float32)
  return lambda a: f(state, model_lib.arch_arrays(s, a), calib, x), f, calib, x


def test_observing_forward_is_the_float_supernet_one_compile(supernet,
                                                            compiled):
  s, _ = supernet
  run, f, calib, _ = compiled
  for a in _archs(s):
    folded, ref, q8, ranges, seen = run(a)
    scale = float(jnp.abs(ref).max())
    np.testing.assert_allclose(folded, ref, atol=1e-5 * scale)
    err = float(jnp.abs(q8 - ref).max())
    assert 0 < err < 0.2 * scale          # quantised, and close
    r_in = ranges["input"]
    assert float(r_in[0]) == pytest.approx(float(calib.min()), abs=1e-6)
    assert set(seen) == set(ranges)
  assert f._cache_size() == 1


@pytest.mark.slow
def test_simulated_int8_matches_the_real_tflite_int8_model(supernet,
                                                          compiled):
  """The simulated int8 logits equal those of the converter's full-int8
  model of the same subnet (same weights and calibration images) to about
  a quantisation step: a different quantisation point, scale or rounding
  rule would show as many steps."""
  s, net = supernet
  run, _, calib, x = compiled
  a = _archs(s)[0]                          # SE and hard-swish
  sim = np.asarray(run(a)[2])
  sub = extract.subnet(net, a, depthwise="lax")
  g, st = nnx.split(sub)
  model = tflite.convert(lambda v: nnx.merge(g, st)(v, train=False),
                         (1, 24, 24, 3), int8=True,
                         representative=[c[None] for c in calib.reshape(
                             -1, 24, 24, 3)])
  runner = tflite.Runner(model)
  real = runner.run(x)
  step = runner.output_quantization[0]
  err = np.abs(sim - real) / step
  assert err.mean() < 0.5 and err.max() <= 3.0, (err.mean(), err.max())
  assert np.mean(sim.argmax(-1) == real.argmax(-1)) >= 0.9


def test_search_records_both_accuracies(tmp_path):
  """An evaluator's returned metrics (float and int8 accuracy, as the int8
  search evaluator reports them) reach history.jsonl and pareto.png."""
  import json
  from hwnas import counting
  from hwnas.search import history, run
  s = space.load("tiny")

  def two_kinds(archs):
    macs = [counting.count(arch.decode(s, a)).macs / 1e8 for a in archs]
    metrics = [{"accuracy_float": 0.5 + m,
                "accuracy_int8": 0.5 + m - 0.1 * (i % 2)}
               for i, m in enumerate(macs)]
    return [m["accuracy_int8"] for m in metrics], metrics

  cost = lambda a: counting.count(arch.decode(s, a)).macs / 1e6
  run(s, two_kinds, {"mmacs": cost}, budget=8, population=4,
      target=100.0,
      workdir=tmp_path, progress=False)
  rows = [json.loads(l) for l in
          (tmp_path / "history.jsonl").read_text().splitlines()]
  assert len(rows) == 8
  for row in rows:
    assert row["accuracy"] == row["metrics"]["accuracy_int8"]
    assert row["metrics"]["accuracy_float"] >= row["accuracy"]
  assert history.read(tmp_path)[0].metrics == rows[0]["metrics"]
  assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluator_float_equals_the_float_evaluator(supernet):
  """quant.Evaluator computes float accuracy exactly as
  hwnas.supernet.evaluate does (same recalibration and data), int8 in the
  same call, and one compilation serves several architectures."""
  from hwnas import data
  from hwnas.supernet import evaluate
  s, net = supernet
  graphdef, params, stats = nnx.split(net, nnx.Param, nnx.BatchStat)
  state = {"params": params, "stats": stats}
  d = evaluate.EvalData(data.load("digits"), batch_size=48, bn_batches=1,
                        val_batches=1, bn_batch_size=32)
  archs = _archs(s)[:3]
  ev = quant.Evaluator(graphdef, state, s, d, accuracy="int8",
                       also=("float",))
  int8, metrics = ev(archs)
  flt, _ = evaluate.Evaluator(graphdef, state, s, d)(archs)
  assert [m["accuracy_float"] for m in metrics] == pytest.approx(flt, abs=1e-6)
  assert [m["accuracy_int8"] for m in metrics] == int8
  assert all(abs(a - b) <= 0.25 for a, b in zip(int8, flt))
  assert quant._accuracy_fn(graphdef, ("int8", "float"))._cache_size() == 1


def test_cli_int8_accuracy_needs_the_supernet_evaluator(tmp_path, capsys):
  from hwnas.cli import main as cli_main
  rc = cli_main(["search", "--space", "tiny", "--cost", "mmacs",
                 "--target", "50", "--evaluator", "predictor",
                 "--predictor", str(tmp_path), "--accuracy", "int8",
                 "--workdir", str(tmp_path / "w")])
  err = capsys.readouterr().err
  assert rc == 2 and "--accuracy int8" in err
  assert "needs --evaluator supernet" in err
