"""Tests of hwnas.models: blocks, depthwise implementations, Network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch, counting, netspec, references, space
from hwnas.models import layers, ops, standalone
from hwnas.netspec import Layer


@pytest.mark.parametrize("size,kernel,stride", [
    (8, 3, 1), (7, 5, 2), (2, 7, 2), (1, 5, 1), (5, 3, 2), (8, 7, 2),
    (2, 7, 1), (4, 5, 2), ((6, 3), 5, 1), ((7, 4), 3, 2)])
def test_depthwise_shift_equals_lax(size, kernel, stride):
  h, w_ = size if isinstance(size, tuple) else (size, size)
  kx, kk = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (2, h, w_, 6))
  w = jax.random.normal(kk, (kernel, kernel, 1, 6))
  a = ops.depthwise_conv(x, w, stride, impl="lax")
  b = ops.depthwise_conv(x, w, stride, impl="shift")
  assert a.shape == b.shape == (2, -(-h // stride), -(-w_ // stride), 6)
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  # Gradients agree too (the shift-add's hand-written VJP is used for
  # training), and so do gradients of gradients.
  f = lambda impl: jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      ops.depthwise_conv(x, w, stride, impl=impl))), (0, 1)))(x, w)
  for ga, gb in zip(f("lax"), f("shift")):
    np.testing.assert_allclose(ga, gb, atol=1e-4, rtol=1e-4)
  gg = lambda impl: jax.grad(lambda w: jnp.sum(jax.grad(
      lambda x: jnp.sum(jnp.sin(ops.depthwise_conv(x, w, stride,
                                                      impl=impl))))(x) ** 2))(w)
  np.testing.assert_allclose(gg("lax"), gg("shift"), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("size,kernel,stride,sizes", [
    (9, 7, 2, (3, 5, 7)), (2, 7, 1, (3, 7)), (5, 3, 1, (3,))])
def test_elastic_depthwise_is_the_centre_kernel(size, kernel, stride, sizes):
  """The supernet's elastic depthwise conv with a traced kernel choice equals
  the plain conv with the centre crop, in values, gradients and gradients
  of gradients, for both implementations (one compilation for all
  choices)."""
  kx, kk = jax.random.split(jax.random.key(1))
  x = jax.random.normal(kx, (2, size, size, 4))
  w = jax.random.normal(kk, (kernel, kernel, 1, 4))

  def loss(x, w, k, impl="shift"):
    return jnp.sum(jnp.sin(ops.elastic_depthwise_conv(
        x, w, k, sizes, stride, impl=impl)))

  grad = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=3)
  want = jax.jit(jax.value_and_grad(lambda x, c: jnp.sum(jnp.sin(
      ops.depthwise_conv(x, c, stride, impl="lax"))), (0, 1)))
  for k in sizes:
    lo = (kernel - k) // 2
    crop = w[lo:lo + k, lo:lo + k]
    (v, (gx, gw)), (wv, (wx, wc)) = grad(x, w, k, "shift"), want(x, crop)
    np.testing.assert_allclose(v, wv, rtol=1e-4)
    np.testing.assert_allclose(gx, wx, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(gw[lo:lo + k, lo:lo + k], wc, atol=1e-4,
                               rtol=1e-4)
    assert float(jnp.abs(gw).sum()) == pytest.approx(
        float(jnp.abs(wc).sum()), rel=1e-5)     # zero outside the crop
    np.testing.assert_allclose(grad(x, w, k, "lax")[0], wv, rtol=1e-4)
  gg = jax.jit(lambda w, impl: jax.grad(lambda w: jnp.sum(jax.grad(
      lambda x: loss(x, w, sizes[0], impl))(x) ** 2))(w),
               static_argnums=1)
  np.testing.assert_allclose(gg(w, "lax"), gg(w, "shift"), atol=1e-3,
                             rtol=1e-3)
  assert grad._cache_size() == 2            # pylint: disable=protected-access


@pytest.mark.parametrize("size,kernel,stride", [
    (8, 3, 2), (7, 5, 1), (2, 5, 1), ((6, 5), 3, 2)])
def test_conv2d_canonical_backward_equals_lax(size, kernel, stride):
  """The dense conv's hand-written backward pass (canonical convolutions,
  fast inside control flow on XLA:CPU) equals XLA's own, in values,
  gradients, and inside a `lax.cond`."""
  h, w_ = size if isinstance(size, tuple) else (size, size)
  kx, kk = jax.random.split(jax.random.key(2))
  x = jax.random.normal(kx, (2, h, w_, 3))
  w = jax.random.normal(kk, (kernel, kernel, 3, 5))

  def loss(x, w, impl, on):
    f = lambda x, w: jnp.sum(jnp.sin(ops.conv2d(x, w, stride, impl=impl)))
    return jax.lax.cond(on, f, lambda x, w: jnp.sum(x) * 0.0, x, w)

  grad = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=2)
  (va, ga), (vb, gb) = grad(x, w, "lax", True), grad(x, w, "shift", True)
  np.testing.assert_allclose(va, vb, rtol=1e-5)
  for a, b in zip(ga, gb):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
  assert ops.conv2d(x, w, stride).shape == (
      2, -(-h // stride), -(-w_ // stride), 5)


def test_depthwise_auto_is_shift_on_cpu():
  assert ops.resolve_impl("auto") == (
      "shift" if jax.default_backend() == "cpu" else "lax")
  with pytest.raises(ValueError, match="unknown"):
    ops.resolve_impl("fft")


@pytest.mark.parametrize("name", ["relu", "relu6", "hswish", "swish", "none"])
def test_activations(name):
  x = jnp.linspace(-8, 8, 33)
  y = ops.activation(name)(x)
  ref = {"relu": np.maximum(x, 0), "relu6": np.clip(x, 0, 6),
         "hswish": x * np.clip(x + 3, 0, 6) / 6, "swish": x / (1 + np.exp(-x)),
         "none": x}[name]
  np.testing.assert_allclose(y, ref, atol=1e-6)


def test_global_pool_lowers_to_reduce_window():
  x = jnp.arange(2 * 3 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 3, 4)
  y = ops.global_avg_pool(x)
  np.testing.assert_allclose(y[:, 0, 0], x.mean(axis=(1, 2)), rtol=1e-6)
  text = str(jax.make_jaxpr(ops.global_avg_pool)(x))
  assert "reduce_window" in text and "reduce_sum" not in text


def _se_reference(block, x):
  s = x.mean(axis=(1, 2), keepdims=True)
  s = np.maximum(np.einsum("bhwc,cd->bhwd", s,
                           block.reduce.kernel[...][0, 0]) +
                 block.reduce.bias[...], 0)
  g = np.einsum("bhwc,cd->bhwd", s, block.expand.kernel[...][0, 0]) + (
      block.expand.bias[...])
  return x * np.clip(g + 3, 0, 6) / 6


def test_squeeze_excite_semantics():
  se = layers.SqueezeExcite(16, 8, rngs=nnx.Rngs(1))
  x = jax.random.normal(jax.random.key(2), (2, 4, 4, 16))
  np.testing.assert_allclose(se(x), _se_reference(se, np.asarray(x)),
                             atol=1e-5)


@pytest.mark.parametrize("layer", [
    Layer("conv", 8, 3, 16, kernel=3, stride=2, activation="hswish"),
    Layer("ibn", 8, 16, 16, mid_channels=16, kernel=3, residual=True,
          activation="relu"),
    Layer("ibn", 8, 16, 24, mid_channels=48, kernel=5, stride=2,
          se_channels=16, activation="hswish"),
    Layer("fused_ibn", 8, 16, 16, mid_channels=32, kernel=3, se_channels=8,
          activation="relu", residual=True),
    Layer("fused_ibn", 8, 16, 24, mid_channels=16, kernel=3, stride=2,
          activation="relu"),
    Layer("dsc", 8, 16, 32, kernel=3, stride=2, activation="relu6"),
    Layer("pool", 4, 32, 32),
    Layer("fc", 1, 32, 10),
])
def test_build_layer_shapes_and_params(layer):
  m = layers.build_layer(layer, rngs=nnx.Rngs(0))
  shape = (2, layer.input_size, layer.input_size, layer.in_channels)
  y = m(jnp.ones(shape), train=False)
  if layer.type == "fc":
    assert y.shape == (2, layer.out_channels)
  else:
    assert y.shape == (2, layer.output_size, layer.output_size,
                       layer.out_channels)
  assert standalone.num_params(m) == (
      counting.layer_counts(layer).trainable_params)


def test_lax_impl_is_one_xla_convolution_per_conv():
  """Export's impl ('lax') traces every convolution, 1x1 included, to one
  `conv_general_dilated` (TFLite CONV_2D / DEPTHWISE_CONV_2D); the default
  computes 1x1 convolutions as matrix products; both give the same values."""
  layer = Layer("ibn", 8, 16, 16, mid_channels=32, kernel=3, se_channels=8,
                residual=True, activation="hswish")
  m = layers.build_layer(layer, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(3), (2, 8, 8, 16))
  fast = m(x)
  assert "dot_general" in str(jax.make_jaxpr(lambda v: m(v))(x))
  m = layers.build_layer(layer, rngs=nnx.Rngs(0), depthwise="lax")
  text = str(jax.make_jaxpr(lambda v: m(v))(x))
  # expand, depthwise, SE reduce, SE expand, project
  assert text.count("conv_general_dilated[") == 5
  assert "dot_general" not in text
  np.testing.assert_allclose(m(x), fast, atol=1e-5)


def test_ibn_without_expand_has_no_expand_conv():
  layer = Layer("ibn", 8, 16, 16, mid_channels=16, kernel=3, residual=True)
  m = layers.build_layer(layer, rngs=nnx.Rngs(0))
  assert m.expand is None and m.dw is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v1_0.25", "mobilenet_v3_small_1.0"])
def test_reference_networks_build_and_count(name):
  spec = references.load(name, resolution=32)
  # Shapes only (nnx.eval_shape): building the modules runs every
  # constructor, and initialising the weights eagerly took ~17 s.
  net = nnx.eval_shape(lambda: standalone.Network(spec, rngs=nnx.Rngs(0)))
  assert standalone.num_params(net) == counting.count(spec).trainable_params


@pytest.mark.slow
def test_network_train_and_impls_agree():
  s = space.load("tiny")
  spec = arch.decode(s, arch.sample(np.random.default_rng(3), s))
  net = standalone.Network(spec, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (4, spec.resolution,
                                            spec.resolution, 3))
  y_train = net(x, train=True)  # updates BN statistics
  assert y_train.shape == (4, 10) and bool(jnp.all(jnp.isfinite(y_train)))
  y_shift = net(x)
  lax = nnx.eval_shape(lambda: standalone.Network(spec, rngs=nnx.Rngs(0),
                                                  depthwise="lax"))
  nnx.update(lax, nnx.state(net))
  np.testing.assert_allclose(lax(x), y_shift, atol=1e-4, rtol=1e-4)
  with pytest.raises(ValueError, match="input shape"):
    net(jnp.zeros((1, 8, 8, 3)))
