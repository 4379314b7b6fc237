"""Building blocks of hwnas networks (Flax NNX), one per NetSpec layer type.

The semantics of each block are those of the `hwnas.netspec` docstring:
BatchNorm after every conv (never after `fc`), squeeze-excite as in
MobileNetV3 (global average pool, 1x1 conv + bias, ReLU, 1x1 conv + bias,
hard-sigmoid, multiply), the expansion conv of `ibn` / `fused_ibn` omitted
when `mid == in`, and a linear projection.

Every convolution runs through `hwnas.models.ops` (`conv2d`,
`depthwise_conv`), the operations the supernet uses too (one set of ops
for every path; benchmarks/RESULTS.md compares the steps). A block's
`impl` picks their implementation ('auto'; 'lax' for export, see
`hwnas.models.ops`). Every block is callable as `block(x, train=False)`
on NHWC float32 input, so a single block can be timed or exported on its
own (`build_layer`).
"""

from __future__ import annotations

import jax
from flax import nnx

from hwnas.models import ops
from hwnas.models.deepshift import power_of_two
from hwnas.models.ops import BN_EPSILON, BN_MOMENTUM
from hwnas.netspec import Layer

def batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                       rngs=rngs)


class Conv(nnx.Module):
  """'SAME' k x k convolution (`ops.conv2d`), kernel [k, k, cin, cout] and
  an optional bias; the parameters of `nnx.Conv`, with the same names.
  `dims=1`: a 1 x k kernel [1, k, cin, cout] (time series)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *,
               rngs: nnx.Rngs, bias: bool = False, impl: str = "auto",
               dims: int = 2):
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (
        kernel if dims == 2 else 1, kernel, cin, cout)))
    # Zeros, drawing a key as nnx.Conv does (so seeds give its weights).
    self.bias = nnx.data(nnx.Param(nnx.initializers.zeros_init()(
        rngs.params(), (cout,))) if bias else None)
    self.stride = stride
    self.impl = impl

  def __call__(self, x: jax.Array) -> jax.Array:
    y = ops.conv2d(x, self.kernel[...], self.stride, impl=self.impl)
    return y if self.bias is None else y + self.bias[...]


class DepthwiseConv(nnx.Module):
  """Depthwise k x k convolution without bias; kernel [k, k, 1, C] ([1, k,
  1, C] with `dims=1`). `shift`: the kernel is used as signed powers of
  two (`deepshift`)."""

  def __init__(self, channels: int, kernel: int, stride: int, *,
               rngs: nnx.Rngs, impl: str = "auto", shift: bool = False,
               dims: int = 2):
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (
        kernel if dims == 2 else 1, kernel, 1, channels)))
    self.stride = stride
    self.impl = impl
    self.shift = shift

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.kernel[...]
    return ops.depthwise_conv(x, power_of_two(w) if self.shift else w,
                              self.stride, impl=self.impl)


class ConvBN(nnx.Module):
  """Conv (k x k, stride s, no bias), BatchNorm, activation. `shift`: the
  kernel is used as signed powers of two (`hwnas.models.deepshift`)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int,
               act: str, *, rngs: nnx.Rngs, impl: str = "auto",
               shift: bool = False, dims: int = 2):
    self.conv = Conv(cin, cout, kernel, stride, rngs=rngs, impl=impl,
                     dims=dims)
    self.bn = batch_norm(cout, rngs)
    self.act = act
    self.shift = shift

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = (ops.conv2d(x, power_of_two(self.conv.kernel[...]), self.conv.stride,
                    impl=self.conv.impl) if self.shift else self.conv(x))
    return ops.activation(self.act)(self.bn(y, use_running_average=not train))


class DepthwiseBN(nnx.Module):
  """Depthwise conv, BatchNorm, activation."""

  def __init__(self, channels: int, kernel: int, stride: int, act: str, *,
               rngs: nnx.Rngs, impl: str = "auto", shift: bool = False,
               dims: int = 2):
    self.conv = DepthwiseConv(channels, kernel, stride, rngs=rngs, impl=impl,
                              shift=shift, dims=dims)
    self.bn = batch_norm(channels, rngs)
    self.act = act

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return ops.activation(self.act)(
        self.bn(self.conv(x), use_running_average=not train))


class SqueezeExcite(nnx.Module):
  """MobileNetV3 SE: pool, 1x1+bias, ReLU, 1x1+bias, hard-sigmoid, scale."""

  def __init__(self, channels: int, se_channels: int, *, rngs: nnx.Rngs,
               impl: str = "auto"):
    self.reduce = Conv(channels, se_channels, 1, rngs=rngs, bias=True,
                       impl=impl)
    self.expand = Conv(se_channels, channels, 1, rngs=rngs, bias=True,
                       impl=impl)

  def __call__(self, x: jax.Array) -> jax.Array:
    s = jax.nn.relu(self.reduce(ops.global_avg_pool(x)))
    return x * ops.hard_sigmoid(self.expand(s))


class ConvLayer(nnx.Module):
  """`conv` layer: k x k conv, BN, activation (stem and head)."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs, impl: str = "auto"):
    self.body = ConvBN(layer.in_channels, layer.out_channels, layer.kernel,
                       layer.stride, layer.activation, rngs=rngs, impl=impl,
                       shift=layer.op == "shift", dims=layer.dims)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.body(x, train)


class InvertedBottleneck(nnx.Module):
  """`ibn` and `fused_ibn` blocks (see the netspec docstring)."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs, impl: str = "auto"):
    cin, mid, cout = layer.in_channels, layer.mid_channels, layer.out_channels
    k, s, act = layer.kernel, layer.stride, layer.activation
    sh = layer.op == "shift"   # power-of-two weights in every conv but SE
    dims = layer.dims          # 1: 1 x k kernels (time series)
    self.fused = layer.type == "fused_ibn"
    self.residual = layer.residual
    expand = dw = se = None
    if self.fused:
      if layer.has_expand:
        expand = ConvBN(cin, mid, k, s, act, rngs=rngs, impl=impl, shift=sh,
                        dims=dims)
      # Without the fused k x k conv the projection carries the stride.
      project_stride = 1 if layer.has_expand else s
    else:
      if layer.has_expand:
        expand = ConvBN(cin, mid, 1, 1, act, rngs=rngs, impl=impl, shift=sh)
      dw = DepthwiseBN(mid, k, s, act, rngs=rngs, impl=impl, shift=sh,
                       dims=dims)
      project_stride = 1
    if layer.se_channels:
      se = SqueezeExcite(mid, layer.se_channels, rngs=rngs, impl=impl)
    self.expand = nnx.data(expand)
    self.dw = nnx.data(dw)
    self.se = nnx.data(se)
    self.project = ConvBN(mid, cout, 1, project_stride, "none", rngs=rngs,
                          impl=impl, shift=sh)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = x
    if self.expand is not None:
      y = self.expand(y, train)
    if self.dw is not None:
      y = self.dw(y, train)
    if self.se is not None:
      y = self.se(y)
    y = self.project(y, train)
    return x + y if self.residual else y


class DepthwiseSeparable(nnx.Module):
  """`dsc` block: depthwise, BN, act; pointwise, BN, act; optional residual."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs, impl: str = "auto"):
    sh = layer.op == "shift"
    self.dw = DepthwiseBN(layer.in_channels, layer.kernel, layer.stride,
                          layer.activation, rngs=rngs, impl=impl, shift=sh,
                          dims=layer.dims)
    self.pw = ConvBN(layer.in_channels, layer.out_channels, 1, 1,
                     layer.activation, rngs=rngs, impl=impl, shift=sh)
    self.residual = layer.residual

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = self.pw(self.dw(x, train), train)
    return x + y if self.residual else y


class GlobalPool(nnx.Module):
  """`pool` layer: global average pooling, [B, H, W, C] -> [B, 1, 1, C]."""

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return ops.global_avg_pool(x)


class Dense(nnx.Module):
  """`fc` layer: dense with bias, optional activation; takes [B, C] or
  [B, 1, 1, C] and returns [B, out]."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs):
    self.linear = nnx.Linear(layer.in_channels, layer.out_channels, rngs=rngs)
    self.act = layer.activation

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = x.reshape(x.shape[0], -1)
    return ops.activation(self.act)(self.linear(x))


def build_layer(layer: Layer, *, rngs: nnx.Rngs, depthwise: str = "auto"
                ) -> nnx.Module:
  """The module computing one NetSpec layer, callable as `m(x, train=False)`.

  Args:
    layer: the layer (any type of `hwnas.netspec.LAYER_TYPES`).
    rngs: parameter initialisation keys.
    depthwise: implementation of every convolution ('auto', 'lax',
      'shift'; see `hwnas.models.ops`); use 'lax' for export.

  Returns:
    An `nnx.Module` taking [B, H, W, C_in] (an `fc` also takes [B, C_in]).
  """
  ops.resolve_impl(depthwise)  # validate early
  t = layer.type
  if t == "conv":
    return ConvLayer(layer, rngs=rngs, impl=depthwise)
  if t in ("ibn", "fused_ibn"):
    return InvertedBottleneck(layer, rngs=rngs, impl=depthwise)
  if t == "dsc":
    return DepthwiseSeparable(layer, rngs=rngs, impl=depthwise)
  if t == "pool":
    return GlobalPool()
  if t == "fc":
    return Dense(layer, rngs=rngs)
  raise ValueError(f"unknown layer type {t!r}")
