"""Power-of-two weights for multiplication-free ('shift') layers.

DeepShift-Q (Elhoushi et al., "DeepShift: Towards Multiplication-Less
Neural Networks", CVPR Workshops 2021): a layer keeps ordinary float
weights `w` for training, and its forward pass uses `power_of_two(w)`,
every weight rounded to a signed power of two, so that on hardware each
multiplication is a bit shift and a sign flip. The backward pass is the
straight-through estimator: the gradient with respect to `w` is the
gradient with respect to the rounded weights, unchanged.

The rounding, for `bits` (default 5: one sign bit, four exponent bits):

* the exponent is rounded in the log domain, `k = round(log2(|w|))` (the
  nearest power of two on a log scale, DeepShift-Q's rule; the threshold
  between 2^k and 2^(k+1) is their geometric mean);
* the exponent range is `[-(2^(bits-1) - 1), 0]` relative to a fixed scale
  of 1.0: magnitudes above 1 become 1 (a layer's BatchNorm rescales its
  output, so no layer needs larger weights);
* zero is allowed: a weight whose exponent rounds below the range (or that
  is exactly zero) becomes 0, which a shift datapath implements by gating.

Every value `power_of_two` returns is therefore exactly 0 or +-2^k with k
in that range, bit for bit in float32 (`is_power_of_two` checks it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_BITS = 5


def exponent_range(bits: int = DEFAULT_BITS) -> tuple[int, int]:
  """(lowest, highest) exponent of a `bits`-bit shift weight."""
  if bits < 2:
    raise ValueError(f"shift weights need at least 2 bits, got {bits}")
  return -(2 ** (bits - 1) - 1), 0


def _round(w: jax.Array, bits: int) -> jax.Array:
  lo, hi = exponent_range(bits)
  mag = jnp.abs(w)
  # log2 of 0 is -inf: it rounds below the range and becomes 0 below.
  k = jnp.round(jnp.log2(jnp.where(mag > 0, mag, 1.0)))
  k = jnp.where(mag > 0, k, lo - 1)
  keep = k >= lo
  k = jnp.clip(k, lo, hi)
  # ldexp, not exp2: XLA:CPU's float32 exp2 is off by an ulp for some
  # integer exponents (2^-15 comes out as 0.50000024 * 2^-14).
  q = jnp.sign(w) * jnp.ldexp(jnp.ones_like(w), k.astype(jnp.int32))
  return jnp.where(keep, q, 0.0).astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def power_of_two(w: jax.Array, bits: int = DEFAULT_BITS) -> jax.Array:
  """`w` rounded to signed powers of two (see the module docstring), with
  a straight-through gradient."""
  return _round(w, bits)


def _pow2_fwd(w, bits):
  return _round(w, bits), None


def _pow2_bwd(bits, res, g):
  del bits, res
  return (g,)


power_of_two.defvjp(_pow2_fwd, _pow2_bwd)


def is_power_of_two(w, bits: int = DEFAULT_BITS) -> bool:
  """Whether every value of `w` is exactly 0 or +-2^k, k in the range."""
  lo, hi = exponent_range(bits)
  a = np.abs(np.asarray(w, np.float64)).ravel()
  a = a[a != 0]
  if not a.size:
    return True
  mant, exp = np.frexp(a)          # a = mant * 2^exp, mant in [0.5, 1)
  return bool(np.all(mant == 0.5) and np.all(exp - 1 >= lo) and
              np.all(exp - 1 <= hi))
