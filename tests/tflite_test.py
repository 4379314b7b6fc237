"""Tests for hwnas.tflite: jax2tf conversion, op inspection, LiteRT runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hwnas import errors, tflite

SHAPE = (1, 8, 8, 3)


def _params():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  return {"conv": jax.random.normal(k1, (3, 3, 3, 8)) * 0.3,
          "dw": jax.random.normal(k2, (3, 3, 1, 8)) * 0.3,
          "fc": jax.random.normal(k3, (8, 4)) * 0.3}


def _net(params, act=jax.nn.relu):
  dn = ("NHWC", "HWIO", "NHWC")

  def fn(x):
    y = jax.lax.conv_general_dilated(x, params["conv"], (1, 1), "SAME",
                                     dimension_numbers=dn)
    y = act(y)
    y = jax.lax.conv_general_dilated(y, params["dw"], (2, 2), "SAME",
                                     dimension_numbers=dn,
                                     feature_group_count=8)
    y = jax.nn.relu6(y)
    y = jnp.mean(y, axis=(1, 2))
    return y @ params["fc"]
  return fn


def _samples(n, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, size=(n,) + SHAPE[1:]).astype(np.float32)


@pytest.fixture(scope="module")
def models():
  fn = _net(_params())
  rep = [s[None] for s in _samples(16, seed=2)]  # covers the test inputs
  return (fn, tflite.convert(fn, SHAPE),
          tflite.convert(fn, SHAPE, int8=True, representative=rep))


@pytest.mark.slow
def test_float_model_matches_jax(models):
  fn, float_bytes, _ = models
  x = _samples(4)
  want = np.concatenate([np.asarray(fn(x[i:i + 1])) for i in range(4)])
  got = tflite.Runner(float_bytes).run(x)
  assert got.shape == (4, 4)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_op_list_is_clean(models):
  _, float_bytes, int8_bytes = models
  ops = tflite.op_list(float_bytes)
  assert "DEPTHWISE_CONV_2D" in ops and "CONV_2D" in ops
  assert "FULLY_CONNECTED" in ops or "BATCH_MATMUL" in ops
  assert "DELEGATE" not in ops
  assert tflite.op_counts(int8_bytes)["CONV_2D"] == ops.count("CONV_2D")


@pytest.mark.slow
def test_int8_model_has_no_float_tensors(models):
  _, float_bytes, int8_bytes = models
  assert tflite.float_ops(float_bytes)
  assert tflite.float_ops(int8_bytes) == []
  dtypes = set(tflite.tensor_dtypes(int8_bytes).values())
  assert dtypes <= {"INT8", "INT32"}  # int32: biases and shape arguments
  runner = tflite.Runner(int8_bytes)
  assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8


@pytest.mark.slow
def test_int8_model_close_to_float(models):
  fn, _, int8_bytes = models
  x = _samples(8, seed=2)
  want = np.concatenate([np.asarray(fn(x[i:i + 1])) for i in range(8)])
  got = tflite.Runner(int8_bytes).run(x)
  scale = np.abs(want).max()
  assert np.abs(got - want).max() < 0.05 * scale


@pytest.mark.slow
def test_hard_swish_becomes_hard_swish_op():
  fn = _net(_params(), act=jax.nn.hard_swish)
  rep = [s[None] for s in _samples(4)]
  ops = tflite.op_list(tflite.convert(fn, SHAPE, int8=True,
                                      representative=rep))
  assert "HARD_SWISH" in ops


@pytest.mark.slow
def test_timing_stats(models):
  _, float_bytes, _ = models
  stats = tflite.Runner(float_bytes).time(repeats=30, warmup=3)
  assert stats.count == 30
  assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms


@pytest.mark.slow
def test_saved_model_roundtrip(models, tmp_path):
  import tensorflow as tf
  fn, _, _ = models
  tflite.save_saved_model(fn, SHAPE, tmp_path / "sm")
  loaded = tf.saved_model.load(str(tmp_path / "sm"))
  x = _samples(1)
  got = loaded.signatures["serving_default"](tf.constant(x))
  (out,) = got.values()
  np.testing.assert_allclose(out.numpy(), np.asarray(fn(x)), atol=1e-5)


def test_int8_needs_representative_data():
  with pytest.raises(errors.HwnasError, match="representative"):
    tflite.convert(lambda x: x * 2.0, SHAPE, int8=True)


def test_bad_bytes_are_a_user_error():
  with pytest.raises(errors.HwnasError, match="TFLite"):
    tflite.op_list(b"not a flatbuffer at all")


@pytest.mark.slow
def test_runner_rejects_wrong_shape(models):
  _, float_bytes, _ = models
  with pytest.raises(errors.HwnasError, match="shape"):
    tflite.Runner(float_bytes).run(np.zeros((1, 4, 4, 3), np.float32))
