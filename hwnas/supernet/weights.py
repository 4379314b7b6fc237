"""The supernet's shared weights: parameter holders at maximum size.

Each holder keeps one layer's weights at the largest size any architecture
of the space uses; the forward pass (`hwnas.supernet.model`) slices the
leading channels and the centred kernel taps an architecture picks, and
subnet extraction (`hwnas.supernet.extract`) copies the same slices into a
standalone network. `MaskedBatchNorm` is the BatchNorm whose running
statistics update only for the channels and blocks an architecture uses.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hwnas.models import ops


def _param(rngs: nnx.Rngs, shape) -> nnx.Param:
  """LeCun-normal (truncated at 2 sigma) weights, drawn on the host.

  Host-side numpy draws (seeded from the `rngs` key) avoid one XLA
  compilation per parameter shape, which made eager construction of a
  supernet take tens of seconds on this CPU.
  """
  seed = np.asarray(jax.random.key_data(rngs.params())).ravel().tolist()
  rng = np.random.default_rng(seed)
  fan_in = int(np.prod(shape[:-1]))
  w = rng.standard_normal(shape)
  while np.any(np.abs(w) > 2):
    bad = np.abs(w) > 2
    w[bad] = rng.standard_normal(int(bad.sum()))
  std = np.sqrt(1.0 / fan_in) / .87962566103423978
  return nnx.Param(jnp.asarray(w * std, jnp.float32))


def _const(value: float, n: int) -> jax.Array:
  return jnp.asarray(np.full(n, value, np.float32))


class MaskedBatchNorm(nnx.Module):
  """BatchNorm whose running statistics update only where `active`."""

  def __init__(self, channels: int):
    self.scale = nnx.Param(_const(1.0, channels))
    self.bias = nnx.Param(_const(0.0, channels))
    self.mean = nnx.BatchStat(_const(0.0, channels))
    self.var = nnx.BatchStat(_const(1.0, channels))

  def leading(self, n: int) -> tuple[jax.Array, ...]:
    """(scale, bias, mean, var) of the leading `n` channels."""
    return (self.scale[...][:n], self.bias[...][:n], self.mean[...][:n],
            self.var[...][:n])

  def apply(self, x: jax.Array, *, train: bool
            ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Normalises x [..., n] (n <= channels: the leading channels) without
    touching the running statistics; returns (y, (batch mean, batch var)
    zero-padded to all channels) in training, (y, None) in eval."""
    n, size = x.shape[-1], self.scale.value.shape[0]
    scale, bias, mean, var = self.leading(n)
    stats = None
    if train:
      mean, var = _batch_moments(x)
      stats = (jnp.pad(mean, (0, size - n)), jnp.pad(var, (0, size - n)))
    mul = jax.lax.rsqrt(var + ops.BN_EPSILON) * scale
    return (x - mean) * mul + bias, stats

  def update(self, stats: tuple[jax.Array, jax.Array], momentum: Any,
             active: jax.Array) -> None:
    """Running-average update with batch `stats` where `active` ([C])."""
    mean, var = stats
    self.mean[...] = jnp.where(
        active, momentum * self.mean[...] + (1 - momentum) * mean,
        self.mean[...])
    self.var[...] = jnp.where(
        active, momentum * self.var[...] + (1 - momentum) * var,
        self.var[...])

  def __call__(self, x: jax.Array, active: jax.Array, *, train: bool,
               momentum: Any) -> jax.Array:
    """Normalises x [..., channels]; in training also updates the running
    statistics where `active` (bool scalar or [C] mask)."""
    if train:
      mean, var = _batch_moments(x)
      self.update((mean, var), momentum, active)
    else:
      mean, var = self.mean[...], self.var[...]
    mul = jax.lax.rsqrt(var + ops.BN_EPSILON) * self.scale[...]
    return (x - mean) * mul + self.bias[...]


def _batch_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-channel batch mean and variance of x [B, H, W, C].

  Var = E[x^2] - E[x]^2 in one pass (one XLA fusion), clipped at 0: what
  nnx.BatchNorm (use_fast_variance) and so the standalone Network compute
  in training.
  """
  mean = jnp.mean(x, axis=(0, 1, 2))
  var = jnp.maximum(jnp.mean(jnp.square(x), axis=(0, 1, 2)) -
                    jnp.square(mean), 0.0)
  return mean, var


def centre_taps(w, k: int):
  """The centred k x k taps of an HWIO kernel (numpy or jax); of a 1-D
  kernel [1, K, ...] the centred 1 x k."""
  kh, kw = min(k, w.shape[0]), min(k, w.shape[1])
  lo_h, lo_w = (w.shape[0] - kh) // 2, (w.shape[1] - kw) // 2
  return w[lo_h:lo_h + kh, lo_w:lo_w + kw]


def _transform(w: jax.Array, t: jax.Array) -> jax.Array:
  """Mixes the kh*kw taps of HWIO kernel `w` with (I + t), t [taps, taps]."""
  flat = w.reshape(w.shape[0] * w.shape[1], -1)
  return (flat + t @ flat).reshape(w.shape)


class ConvBNWeights(nnx.Module):
  """A conv kernel [k, k, cin, cout] (no bias) and its BatchNorm; with
  `dims=1` a time-series kernel [1, k, cin, cout].

  With `transforms` (smaller kernel sizes, descending), the kernel is
  elastic as in Once-for-All's "kernel transformation": the size-s kernel
  is the centre s x s of the next larger (already transformed) kernel, its
  s*s taps mixed by a learned matrix shared by all channels. The matrix is
  held as a residual on the identity (zeros at initialisation), so training
  starts from the plain centre crop and weight decay pulls towards it.
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, rngs: nnx.Rngs,
               depthwise: bool = False, transforms: tuple[int, ...] = (),
               dims: int = 2):
    shape = (kernel if dims == 2 else 1, kernel, 1 if depthwise else cin,
             cout)
    self.kernel = _param(rngs, shape)
    self.bn = MaskedBatchNorm(cout)
    self.transform_sizes = tuple(transforms)
    taps = lambda k: k * k if dims == 2 else k
    self.transforms = nnx.data(
        nnx.List([nnx.Param(jnp.zeros((taps(k), taps(k)), jnp.float32))
                  for k in transforms]) if transforms else None)

  def kernel_at(self, k: int) -> jax.Array:
    """The exact k x k kernel of choice `k` (a Python int)."""
    w = self.kernel[...]
    for size, t in zip(self.transform_sizes, self.transforms or ()):
      if size < k:
        break
      w = _transform(centre_taps(w, size), t[...])
    return centre_taps(w, k)

  def elastic_kernel(self, k: jax.Array) -> jax.Array:
    """The kernel of traced choice `k`, zero-padded to the largest size."""
    w = self.kernel[...]
    out = w * ops.kernel_mask(k, w.shape[0], w.shape[1])
    cur = w
    for s, t in zip(self.transform_sizes, self.transforms or ()):
      cur = _transform(centre_taps(cur, s), t[...])
      pad = [((w.shape[d] - cur.shape[d]) // 2,) * 2 for d in (0, 1)] + [
          (0, 0)] * 2
      out = jnp.where(k == s, jnp.pad(cur, pad), out)
    return out


class DenseWeights(nnx.Module):
  """Dense layer [cin, cout] with bias (inputs beyond a width are zero)."""

  def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
    self.kernel = _param(rngs, (cin, cout))
    self.bias = nnx.Param(_const(0.0, cout))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ self.kernel[...] + self.bias[...]


class SEWeights(nnx.Module):
  """Squeeze-excite weights: 1x1 reduce [mid, se] and expand [se, mid]
  convolutions with biases (the forward pass is the block's)."""

  def __init__(self, mid: int, se: int, *, rngs: nnx.Rngs):
    self.reduce_kernel = _param(rngs, (1, 1, mid, se))
    self.reduce_bias = nnx.Param(_const(0.0, se))
    self.expand_kernel = _param(rngs, (1, 1, se, mid))
    self.expand_bias = nnx.Param(_const(0.0, mid))
