"""The raw operations of hwnas networks: convolutions (dense, depthwise,
1x1), their hand-written backward passes, activations and pooling.

Every path that computes a network reads these functions: the standalone
`hwnas.models.Network` (training, fine-tuning, rank checks, export's
reference forward), the supernet's branches (`hwnas.supernet.model`) and
its simulated int8 evaluation. Which implementation runs is chosen per
shape by measurement on this project's machines (benchmarks/RESULTS.md);
`impl` selects it:

* 'auto' (the default): the fastest measured on the backend. On XLA:CPU
  that is the shift-add depthwise, a 1x1 convolution as a matrix product,
  and a k x k convolution with a backward pass written as canonical
  convolutions; on GPU/TPU XLA's own convolutions (1x1 still a matrix
  product).
* 'lax': XLA's own convolution for every layer, 1x1 included. Export
  uses it: TFLite maps a `conv_general_dilated` to one CONV_2D /
  DEPTHWISE_CONV_2D, whereas the shift-add converts to hundreds of
  MUL/ADD/SLICE ops and a matrix product to FULLY_CONNECTED.
* 'shift': the CPU choices above on any backend.

All implementations give the same values.

Depthwise convolution (`depthwise_conv`): XLA:CPU's grouped convolution has
a backward pass 10-25x slower than a shift-add (one strided slice per
kernel tap times a per-channel weight). The shift-add has a hand-written
backward pass (`jax.custom_vjp`, `_shift_grads`): one pass over the
activations for the weight gradient instead of one per kernel tap. Being
a custom VJP, it supports reverse mode (`jax.grad`, also of gradients) but
not forward mode (`jax.jvp`); use 'lax' for that. `elastic_depthwise_conv`
is the supernet's variant: a traced kernel-size choice selects
(`lax.switch`) which centred taps the shift-add runs.

Dense convolution (`conv2d`): see the comment above `_conv_canonical`.
Global average pooling uses `avg_pool` (a `reduce_window`), which TFLite
lowers to AVERAGE_POOL_2D; `jnp.mean` would become SUM + MUL.

Size: above 400 lines because each hand-written backward pass sits next
to the forward pass it must match.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
IMPLS = ("auto", "lax", "shift")

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


def resolve_impl(impl: str) -> str:
  """'auto' -> 'shift' on the CPU backend, 'lax' elsewhere."""
  if impl not in IMPLS:
    raise ValueError(f"convolution impl {impl!r} is unknown; allowed: "
                     f"{', '.join(IMPLS)}")
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


def _centred(k: int, size: int | None) -> range:
  """Offsets of the centred `size` taps of a k-tap kernel dimension (a
  1-tap dimension, the height of a 1-D kernel, keeps its one tap)."""
  size = min(size, k) if size else k
  return range((k - size) // 2, (k + size) // 2)


def _shift_geometry(h: int, w: int, kh: int, kw: int, stride: int,
                    size: int | None = None):
  """Padding, output size and live taps of a 'SAME' depthwise conv with a
  kh x kw kernel (only the taps of the centred size x size, if given; the
  centre tap is always live)."""
  (ph0, ph1), (pw0, pw1) = (same_padding(h, kh, stride),
                            same_padding(w, kw, stride))
  rows, cols = _centred(kh, size), _centred(kw, size)
  taps = [(i, j) for i in _live_taps(h, kh, stride, ph0)
          for j in _live_taps(w, kw, stride, pw0)
          if i in rows and j in cols]
  return (ph0, ph1, pw0, pw1), (-(-h // stride), -(-w // stride)), taps


def _shift_patches(x: jax.Array, kh: int, kw: int, stride: int,
                   size: int | None = None):
  """Yields ((i, j), strided slice of the padded input read by tap i, j)."""
  _, h, w, c = x.shape
  (ph0, ph1, pw0, pw1), (ho, wo), taps = _shift_geometry(h, w, kh, kw,
                                                         stride, size)
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
  for (i, j), patch in _shift_patches(x, kernel.shape[0], kernel.shape[1],
                                      stride, size):
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
  (stride-dilated, padded) output gradient with the flipped kernel; both
  were faster per layer on XLA:CPU (benchmarks/results/supernet.md). With
  `size`, only the taps of the centred size x size count (the others get
  zero gradient).
  """
  kh, kw = kernel.shape[0], kernel.shape[1]
  _, h, w, c = x.shape
  (ph0, _, pw0, _), (ho, wo), taps = _shift_geometry(h, w, kh, kw, stride,
                                                     size)
  patches = list(_shift_patches(x, kh, kw, stride, size))
  zero = jnp.zeros((), g.dtype)
  sums = jax.lax.reduce(
      tuple(p * g for _, p in patches), (zero,) * len(patches),
      lambda a, b: tuple(u + v for u, v in zip(a, b)), (0, 1, 2))
  by_tap = {tap: s for (tap, _), s in zip(patches, sums)}
  none = jnp.zeros((c,), g.dtype)
  dk = jnp.stack([by_tap.get((i, j), none) for i in range(kh)
                  for j in range(kw)]).reshape(kh, kw, 1, c)
  # dx[y, x] = sum_ij gd[y + ph0 - i, x + pw0 - j] * k[i, j], gd being g
  # with stride - 1 zeros between rows / columns; pad gd by k - 1 in front
  # so every index is non-negative (kh - 1, kw - 1 for a kh x kw kernel).
  hi_h = max(0, ph0 + h - (stride * (ho - 1) + 1))
  hi_w = max(0, pw0 + w - (stride * (wo - 1) + 1))
  gp = jax.lax.pad(g, zero, ((0, 0, 0), (kh - 1, hi_h, stride - 1),
                             (kw - 1, hi_w, stride - 1), (0, 0, 0)))
  dx = None
  for i, j in taps:
    s0, s1 = ph0 + kh - 1 - i, pw0 + kw - 1 - j
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
      `feature_group_count=C`), or [1, k, 1, C] for a 1-D (height 1)
      input.
    stride: spatial stride.
    impl: 'lax' (grouped conv), 'shift' (shift-add) or 'auto' (see the
      module docstring).

  Returns:
    [B, ceil(H / stride), ceil(W / stride), C].
  """
  if kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
    raise ValueError(f"depthwise kernel {kernel.shape} does not match input "
                     f"channels {x.shape[3]}")
  if resolve_impl(impl) == "shift":
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
  if resolve_impl(impl) == "shift":
    sizes = tuple(sorted(sizes))
    index = jnp.sum(jnp.asarray(size) > jnp.asarray(sizes[:-1]))
    return _elastic_shift(x, kernel, index.astype(jnp.int32), sizes, stride)
  return _depthwise_lax(x, kernel * kernel_mask(size, kernel.shape[0],
                                                kernel.shape[1]), stride)


def kernel_mask(k: jax.Array, size: int, width: int | None = None
                ) -> jax.Array:
  """[size, width, 1, 1] float mask of the centred k x k taps (k traced;
  `width` defaults to `size`). A dimension of one tap (the height of a 1-D
  kernel, [1, width]) keeps its tap whatever k."""

  def centred(n):
    if n == 1:
      return jnp.ones((1,), jnp.float32)
    lo = (n - k) // 2
    r = jnp.arange(n)
    return ((r >= lo) & (r < lo + k)).astype(jnp.float32)

  m = centred(size)[:, None] * centred(width or size)[None, :]
  return m[:, :, None, None]


# A dense k x k convolution whose backward pass stays on XLA:CPU's fast
# convolution path inside control flow. At the top level of a computation
# XLA:CPU rewrites the weight-gradient convolution (dimension labels
# `f01b_i01o->01bf`) into transposes around a canonical NHWC / HWIO
# convolution, which runs on its fast library path; inside a `lax.cond`,
# `lax.switch` or `lax.scan` body (a nested HLO computation) it does not, and
# that convolution falls back to a naive loop, many times slower (HLO dumps
# with `XLA_FLAGS=--xla_dump_to`; benchmarks/results/supernet.md). Here the
# backward pass is written with the transposes explicit, so every
# convolution XLA sees is canonical wherever it is.

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

  'auto' / 'shift': a 1x1 kernel is a matrix product (its backward pass
  is two more; XLA:CPU's 1x1 convolution gradients were slower), a larger
  one on the CPU backend the convolution with the canonical backward pass
  above. 'lax': XLA's own convolution whatever the kernel (what TFLite
  maps to CONV_2D). All give the same values.
  """
  if impl == "lax":
    return _conv_forward(x, w, stride)
  if w.shape[0] == 1 and w.shape[1] == 1:
    if stride > 1:
      x = x[:, ::stride, ::stride, :]
    return jnp.einsum("bhwc,cd->bhwd", x, w[0, 0])
  if resolve_impl(impl) == "shift":
    return _conv_canonical(x, w, stride)
  return _conv_forward(x, w, stride)
