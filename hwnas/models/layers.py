"""Building blocks of hwnas networks (Flax NNX), one per NetSpec layer type.

The semantics of each block are those of the `hwnas.netspec` docstring:
BatchNorm after every conv (never after `fc`), squeeze-excite as in
MobileNetV3 (global average pool, 1x1 conv + bias, ReLU, 1x1 conv + bias,
hard-sigmoid, multiply), the expansion conv of `ibn` / `fused_ibn` omitted
when `mid == in`, and a linear projection.

Two implementation choices follow measurements on this project's machines
(docs/stack_notes.md, 2 and 5):

* Depthwise convolution (`depthwise_conv`) has two implementations that
  give the same values: XLA's grouped convolution (`'lax'`) and a shift-add
  (`'shift'`: one strided slice per kernel tap times a per-channel weight).
  On XLA:CPU the grouped convolution's backward pass is 10-25x slower than
  the shift-add, so `'auto'` picks shift-add on the CPU backend and the
  grouped convolution on GPU/TPU. Export must use `'lax'`: the shift-add
  converts to hundreds of MUL/ADD/SLICE ops instead of one
  DEPTHWISE_CONV_2D. The shift-add has a hand-written backward pass
  (`jax.custom_vjp`, see `_depthwise_shift_bwd`): one pass over the
  activations for the weight gradient instead of one per kernel tap. Being
  a custom VJP, it supports reverse mode (`jax.grad`, also of gradients) but
  not forward mode (`jax.jvp`); use `'lax'` for that.
  `elastic_depthwise_conv` is the supernet's variant: a traced kernel-size
  choice selects (`lax.switch`) which centred taps the shift-add runs.
* Global average pooling uses `avg_pool` (a `reduce_window`), which TFLite
  lowers to AVERAGE_POOL_2D; `jnp.mean` would become SUM + MUL.

Every block is callable as `block(x, train=False)` on NHWC float32 input,
so a single block can be timed or exported on its own (`build_layer`).

Size: above 450 lines because the depthwise shift-add and the convolution
each carry a hand-written backward pass next to their forward pass; the
layer modules themselves are short and split would separate each VJP from
the primal it must match.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from hwnas.models.deepshift import power_of_two
from hwnas.netspec import Layer

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
DEPTHWISE_IMPLS = ("auto", "lax", "shift")

# ------------------------------------------------------------ functions --


def hard_sigmoid(x: jax.Array) -> jax.Array:
  """relu6(x + 3) / 6, the MobileNetV3 gate (TFLite fuses it into a conv)."""
  return jax.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x: jax.Array) -> jax.Array:
  return x * hard_sigmoid(x)


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "hswish": hard_swish,
    "swish": jax.nn.silu,
    "none": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation function called `name` (see netspec.ACTIVATIONS)."""
  try:
    return _ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"unknown activation {name!r}; allowed: "
                     f"{', '.join(_ACTIVATIONS)}") from None


def global_avg_pool(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, 1, 1, C] via avg_pool (TFLite AVERAGE_POOL_2D)."""
  h, w = x.shape[1], x.shape[2]
  return nnx.avg_pool(x, (h, w), strides=(h, w), padding="VALID")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """(low, high) padding of TF/XLA 'SAME' for one spatial dimension."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def resolve_depthwise_impl(impl: str) -> str:
  """'auto' -> 'shift' on the CPU backend, 'lax' elsewhere."""
  if impl not in DEPTHWISE_IMPLS:
    raise ValueError(f"depthwise impl {impl!r} is unknown; allowed: "
                     f"{', '.join(DEPTHWISE_IMPLS)}")
  if impl == "auto":
    return "shift" if jax.default_backend() == "cpu" else "lax"
  return impl


def _live_taps(size: int, kernel: int, stride: int, pad_lo: int) -> list[int]:
  """Kernel offsets that read at least one real (non-padding) pixel."""
  out = -(-size // stride)
  live = []
  for i in range(kernel):
    rows = range(i - pad_lo, i - pad_lo + stride * (out - 1) + 1, stride)
    if any(0 <= r < size for r in rows):
      live.append(i)
  return live


def _shift_geometry(h: int, w: int, k: int, stride: int,
                    size: int | None = None):
  """Padding, output size and live taps of a 'SAME' depthwise conv (only
  the taps of the centred size x size, if given; the centre tap is always
  live)."""
  (ph0, ph1), (pw0, pw1) = (same_padding(h, k, stride),
                            same_padding(w, k, stride))
  lo, hi = ((k - size) // 2, (k + size) // 2) if size else (0, k)
  taps = [(i, j) for i in _live_taps(h, k, stride, ph0)
          for j in _live_taps(w, k, stride, pw0)
          if lo <= i < hi and lo <= j < hi]
  return (ph0, ph1, pw0, pw1), (-(-h // stride), -(-w // stride)), taps


def _shift_patches(x: jax.Array, k: int, stride: int,
                   size: int | None = None):
  """Yields ((i, j), strided slice of the padded input read by tap i, j)."""
  _, h, w, c = x.shape
  (ph0, ph1, pw0, pw1), (ho, wo), taps = _shift_geometry(h, w, k, stride,
                                                         size)
  xp = jnp.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1), (0, 0)))
  for i, j in taps:
    yield (i, j), jax.lax.slice(
        xp, (0, i, j, 0),
        (xp.shape[0], i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
        (1, stride, stride, 1))


def _shift_forward(x: jax.Array, kernel: jax.Array, stride: int,
                   size: int | None = None) -> jax.Array:
  """Shift-add over the live taps (of the centred size x size only)."""
  out = None
  # Taps that only ever read padding contribute zero: dropping them keeps
  # the result exact and makes large kernels cheap on tiny maps.
  for (i, j), patch in _shift_patches(x, kernel.shape[0], stride, size):
    term = patch * kernel[i, j, 0]
    out = term if out is None else out + term
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _depthwise_shift(x: jax.Array, kernel: jax.Array, stride: int
                     ) -> jax.Array:
  return _shift_forward(x, kernel, stride)


def _depthwise_shift_fwd(x, kernel, stride):
  return _shift_forward(x, kernel, stride), (x, kernel)


def _depthwise_shift_bwd(stride, res, g):
  x, kernel = res
  return _shift_grads(x, kernel, g, stride)


def _shift_grads(x, kernel, g, stride, size: int | None = None):
  """Hand-written backward pass of the shift-add depthwise conv.

  Autodiff of the shift-add emits one reduction over [B, H', W'] per tap
  for the weight gradient (49 passes over the activations for a 7x7
  kernel) and a pad-and-add per tap for the input gradient. Here the
  weight gradient is ONE variadic `lax.reduce` with an output per tap (a
  single pass), and the input gradient is a shift-add of the
  (stride-dilated, padded) output gradient with the flipped kernel.
  Measured on XLA:CPU, batch 64, per layer gradient: 16x16x96 k7 s2 58 ->
  27 ms, 8x8x144 k7 s1 52 -> 37 ms, 4x4x240 k7 s1 25 -> 18 ms
  (benchmarks/results/supernet.md). With `size`, only the taps of the
  centred size x size count (the others get zero gradient).
  """
  k = kernel.shape[0]
  _, h, w, c = x.shape
  (ph0, _, pw0, _), (ho, wo), taps = _shift_geometry(h, w, k, stride, size)
  patches = list(_shift_patches(x, k, stride, size))
  zero = jnp.zeros((), g.dtype)
  sums = jax.lax.reduce(
      tuple(p * g for _, p in patches), (zero,) * len(patches),
      lambda a, b: tuple(u + v for u, v in zip(a, b)), (0, 1, 2))
  by_tap = {tap: s for (tap, _), s in zip(patches, sums)}
  none = jnp.zeros((c,), g.dtype)
  dk = jnp.stack([by_tap.get((i, j), none) for i in range(k)
                  for j in range(k)]).reshape(k, k, 1, c)
  # dx[y, x] = sum_ij gd[y + ph0 - i, x + pw0 - j] * k[i, j], gd being g
  # with stride - 1 zeros between rows / columns; pad gd by k - 1 in front
  # so every index is non-negative.
  hi_h = max(0, ph0 + h - (stride * (ho - 1) + 1))
  hi_w = max(0, pw0 + w - (stride * (wo - 1) + 1))
  gp = jax.lax.pad(g, zero, ((0, 0, 0), (k - 1, hi_h, stride - 1),
                             (k - 1, hi_w, stride - 1), (0, 0, 0)))
  dx = None
  for i, j in taps:
    s0, s1 = ph0 + k - 1 - i, pw0 + k - 1 - j
    term = jax.lax.slice(gp, (0, s0, s1, 0),
                         (gp.shape[0], s0 + h, s1 + w, c)) * kernel[i, j, 0]
    dx = term if dx is None else dx + term
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_depthwise_shift.defvjp(_depthwise_shift_fwd, _depthwise_shift_bwd)


# An elastic kernel (the supernet's): of a k x k kernel only the centred
# size x size taps count, size one of `sizes` chosen by a traced index.
# `lax.switch` runs only the chosen size's taps, forward and backward, so a
# 3x3 choice of a 7x7 slot costs 9 taps, not 49.


def _elastic_forward(x, kernel, index, sizes, stride):
  return jax.lax.switch(index, [
      functools.partial(_shift_forward, stride=stride, size=s)
      for s in sizes], x, kernel)


_elastic_shift = jax.custom_vjp(_elastic_forward, nondiff_argnums=(3, 4))


def _elastic_shift_fwd(x, kernel, index, sizes, stride):
  return _elastic_forward(x, kernel, index, sizes, stride), (x, kernel, index)


def _elastic_shift_bwd(sizes, stride, res, g):
  x, kernel, index = res
  dx, dk = jax.lax.switch(index, [
      functools.partial(_shift_grads, stride=stride, size=s)
      for s in sizes], x, kernel, g)
  return dx, dk, None


_elastic_shift.defvjp(_elastic_shift_fwd, _elastic_shift_bwd)


def _depthwise_lax(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=x.shape[-1])


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int, *,
                   impl: str = "auto") -> jax.Array:
  """'SAME'-padded depthwise convolution.

  Args:
    x: [B, H, W, C] input.
    kernel: [k, k, 1, C] weights (the layout of `nnx.Conv` with
      `feature_group_count=C`).
    stride: spatial stride.
    impl: 'lax' (grouped conv), 'shift' (shift-add) or 'auto' (see the
      module docstring).

  Returns:
    [B, ceil(H / stride), ceil(W / stride), C].
  """
  if kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
    raise ValueError(f"depthwise kernel {kernel.shape} does not match input "
                     f"channels {x.shape[3]}")
  if resolve_depthwise_impl(impl) == "shift":
    return _depthwise_shift(x, kernel, stride)
  return _depthwise_lax(x, kernel, stride)


def elastic_depthwise_conv(x: jax.Array, kernel: jax.Array, size: jax.Array,
                           sizes: tuple[int, ...], stride: int, *,
                           impl: str = "auto") -> jax.Array:
  """Depthwise conv with only the centred `size` x `size` taps of `kernel`.

  `size` may be traced (one of the static `sizes`); 'SAME' padding is that
  of the full kernel, which for a centred odd kernel equals the padding of
  the `size` kernel. The shift-add runs only the chosen size's taps (a
  `lax.switch`); 'lax' convolves the masked full kernel.
  """
  if resolve_depthwise_impl(impl) == "shift":
    sizes = tuple(sorted(sizes))
    index = jnp.sum(jnp.asarray(size) > jnp.asarray(sizes[:-1]))
    return _elastic_shift(x, kernel, index.astype(jnp.int32), sizes, stride)
  return _depthwise_lax(x, kernel * kernel_mask(size, kernel.shape[0]),
                        stride)


def kernel_mask(k: jax.Array, size: int) -> jax.Array:
  """[size, size, 1, 1] float mask of the centred k x k taps (k traced)."""
  lo = (size - k) // 2
  r = jnp.arange(size)
  m = ((r >= lo) & (r < lo + k)).astype(jnp.float32)
  return (m[:, None] * m[None, :])[:, :, None, None]


# A dense k x k convolution whose backward pass stays on XLA:CPU's fast
# convolution path inside control flow. At the top level of a computation
# XLA:CPU rewrites the weight-gradient convolution (dimension labels
# `f01b_i01o->01bf`) into transposes around a canonical NHWC / HWIO
# convolution, which runs on its fast library path; inside a `lax.cond`,
# `lax.switch` or `lax.scan` body (a nested HLO computation) it does not, and
# that convolution falls back to a naive loop: 50x slower for a 5x5 conv of
# a [32, 16, 16, 24] map to 96 channels (HLO dumps with `XLA_FLAGS=
# --xla_dump_to`; benchmarks/results/supernet.md). Here the backward pass is
# written with the transposes explicit, so every convolution XLA sees is
# canonical wherever it is.

_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_forward(x, w, stride):
  (ph0, ph1), (pw0, pw1) = (same_padding(x.shape[1], w.shape[0], stride),
                            same_padding(x.shape[2], w.shape[1], stride))
  return jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((ph0, ph1), (pw0, pw1)),
      dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_canonical(x, w, stride):
  return _conv_forward(x, w, stride)


def _conv_canonical_fwd(x, w, stride):
  return _conv_forward(x, w, stride), (x, w)


def _conv_canonical_bwd(stride, res, g):
  x, w = res
  _, h, wd, _ = x.shape
  kh, kw = w.shape[0], w.shape[1]
  (ph0, ph1), (pw0, pw1) = (same_padding(h, kh, stride),
                            same_padding(wd, kw, stride))
  ho, wo = g.shape[1], g.shape[2]
  # dW[i, j, c, d] = sum_{b, y, x} xpad[b, s*y + i, s*x + j, c] g[b, y, x, d]:
  # a convolution with the channels as batch and the batch as features.
  xp = jnp.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1), (0, 0)))
  xp = xp[:, :kh + stride * (ho - 1), :kw + stride * (wo - 1)]
  dw = jax.lax.conv_general_dilated(
      jnp.transpose(xp, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)),
      (1, 1), "VALID", rhs_dilation=(stride, stride),
      dimension_numbers=_NHWC)
  dw = jnp.transpose(dw, (1, 2, 0, 3))
  # dx: the stride-dilated g convolved with the flipped, io-swapped kernel.
  wf = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))
  pad = ((kh - 1 - ph0, h - stride * (ho - 1) - 1 + ph0),
         (kw - 1 - pw0, wd - stride * (wo - 1) - 1 + pw0))
  dx = jax.lax.conv_general_dilated(
      g, wf, (1, 1), pad, lhs_dilation=(stride, stride),
      dimension_numbers=_NHWC)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_canonical.defvjp(_conv_canonical_fwd, _conv_canonical_bwd)


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, *,
           impl: str = "auto") -> jax.Array:
  """'SAME' convolution of NHWC `x` with an HWIO kernel `w`, no bias.

  A 1x1 kernel is a matrix product. Larger kernels: `impl='shift'` (what
  'auto' picks on the CPU backend; the name follows `depthwise_conv`) uses
  a hand-written backward pass made of canonical convolutions (see above),
  'lax' XLA's own; both give the same values.
  """
  if w.shape[0] == 1 and w.shape[1] == 1:
    if stride > 1:
      x = x[:, ::stride, ::stride, :]
    return jnp.einsum("bhwc,cd->bhwd", x, w[0, 0])
  if resolve_depthwise_impl(impl) == "shift":
    return _conv_canonical(x, w, stride)
  return _conv_forward(x, w, stride)


# -------------------------------------------------------------- modules --


def batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                       rngs=rngs)


def conv(cin: int, cout: int, kernel: int, stride: int, rngs: nnx.Rngs, *,
         bias: bool = False) -> nnx.Conv:
  return nnx.Conv(cin, cout, (kernel, kernel), strides=(stride, stride),
                  padding="SAME", use_bias=bias, rngs=rngs)


class DepthwiseConv(nnx.Module):
  """Depthwise k x k convolution without bias; kernel [k, k, 1, C].
  `shift`: the kernel is used as signed powers of two (`deepshift`)."""

  def __init__(self, channels: int, kernel: int, stride: int, *,
               rngs: nnx.Rngs, impl: str = "auto", shift: bool = False):
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, 1,
                                                 channels)))
    self.stride = stride
    self.impl = impl
    self.shift = shift

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.kernel[...]
    return depthwise_conv(x, power_of_two(w) if self.shift else w,
                          self.stride, impl=self.impl)


class ConvBN(nnx.Module):
  """Conv (k x k, stride s, no bias), BatchNorm, activation. `shift`: the
  kernel is used as signed powers of two (`hwnas.models.deepshift`)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int,
               act: str, *, rngs: nnx.Rngs, shift: bool = False):
    self.conv = conv(cin, cout, kernel, stride, rngs)
    self.bn = batch_norm(cout, rngs)
    self.act = act
    self.shift = shift

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = (conv2d(x, power_of_two(self.conv.kernel[...]), self.conv.strides[0])
         if self.shift else self.conv(x))
    return activation(self.act)(self.bn(y, use_running_average=not train))


class DepthwiseBN(nnx.Module):
  """Depthwise conv, BatchNorm, activation."""

  def __init__(self, channels: int, kernel: int, stride: int, act: str, *,
               rngs: nnx.Rngs, impl: str = "auto", shift: bool = False):
    self.conv = DepthwiseConv(channels, kernel, stride, rngs=rngs, impl=impl,
                              shift=shift)
    self.bn = batch_norm(channels, rngs)
    self.act = act

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return activation(self.act)(
        self.bn(self.conv(x), use_running_average=not train))


class SqueezeExcite(nnx.Module):
  """MobileNetV3 SE: pool, 1x1+bias, ReLU, 1x1+bias, hard-sigmoid, scale."""

  def __init__(self, channels: int, se_channels: int, *, rngs: nnx.Rngs):
    self.reduce = conv(channels, se_channels, 1, 1, rngs, bias=True)
    self.expand = conv(se_channels, channels, 1, 1, rngs, bias=True)

  def __call__(self, x: jax.Array) -> jax.Array:
    s = jax.nn.relu(self.reduce(global_avg_pool(x)))
    return x * hard_sigmoid(self.expand(s))


class ConvLayer(nnx.Module):
  """`conv` layer: k x k conv, BN, activation (stem and head)."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs):
    self.body = ConvBN(layer.in_channels, layer.out_channels, layer.kernel,
                       layer.stride, layer.activation, rngs=rngs,
                       shift=layer.op == "shift")

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.body(x, train)


class InvertedBottleneck(nnx.Module):
  """`ibn` and `fused_ibn` blocks (see the netspec docstring)."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs, depthwise: str = "auto"):
    cin, mid, cout = layer.in_channels, layer.mid_channels, layer.out_channels
    k, s, act = layer.kernel, layer.stride, layer.activation
    sh = layer.op == "shift"   # power-of-two weights in every conv but SE
    self.fused = layer.type == "fused_ibn"
    self.residual = layer.residual
    expand = dw = se = None
    if self.fused:
      if layer.has_expand:
        expand = ConvBN(cin, mid, k, s, act, rngs=rngs, shift=sh)
      # Without the fused k x k conv the projection carries the stride.
      project_stride = 1 if layer.has_expand else s
    else:
      if layer.has_expand:
        expand = ConvBN(cin, mid, 1, 1, act, rngs=rngs, shift=sh)
      dw = DepthwiseBN(mid, k, s, act, rngs=rngs, impl=depthwise, shift=sh)
      project_stride = 1
    if layer.se_channels:
      se = SqueezeExcite(mid, layer.se_channels, rngs=rngs)
    self.expand = nnx.data(expand)
    self.dw = nnx.data(dw)
    self.se = nnx.data(se)
    self.project = ConvBN(mid, cout, 1, project_stride, "none", rngs=rngs,
                          shift=sh)

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

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs, depthwise: str = "auto"):
    sh = layer.op == "shift"
    self.dw = DepthwiseBN(layer.in_channels, layer.kernel, layer.stride,
                          layer.activation, rngs=rngs, impl=depthwise,
                          shift=sh)
    self.pw = ConvBN(layer.in_channels, layer.out_channels, 1, 1,
                     layer.activation, rngs=rngs, shift=sh)
    self.residual = layer.residual

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = self.pw(self.dw(x, train), train)
    return x + y if self.residual else y


class GlobalPool(nnx.Module):
  """`pool` layer: global average pooling, [B, H, W, C] -> [B, 1, 1, C]."""

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return global_avg_pool(x)


class Dense(nnx.Module):
  """`fc` layer: dense with bias, optional activation; takes [B, C] or
  [B, 1, 1, C] and returns [B, out]."""

  def __init__(self, layer: Layer, *, rngs: nnx.Rngs):
    self.linear = nnx.Linear(layer.in_channels, layer.out_channels, rngs=rngs)
    self.act = layer.activation

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = x.reshape(x.shape[0], -1)
    return activation(self.act)(self.linear(x))


def build_layer(layer: Layer, *, rngs: nnx.Rngs, depthwise: str = "auto"
                ) -> nnx.Module:
  """The module computing one NetSpec layer, callable as `m(x, train=False)`.

  Args:
    layer: the layer (any type of `hwnas.netspec.LAYER_TYPES`).
    rngs: parameter initialisation keys.
    depthwise: depthwise-conv implementation ('auto', 'lax', 'shift'); use
      'lax' for export.

  Returns:
    An `nnx.Module` taking [B, H, W, C_in] (an `fc` also takes [B, C_in]).
  """
  resolve_depthwise_impl(depthwise)  # validate early
  t = layer.type
  if t == "conv":
    return ConvLayer(layer, rngs=rngs)
  if t in ("ibn", "fused_ibn"):
    return InvertedBottleneck(layer, rngs=rngs, depthwise=depthwise)
  if t == "dsc":
    return DepthwiseSeparable(layer, rngs=rngs, depthwise=depthwise)
  if t == "pool":
    return GlobalPool()
  if t == "fc":
    return Dense(layer, rngs=rngs)
  raise ValueError(f"unknown layer type {t!r}")
