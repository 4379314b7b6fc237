"""Power-of-two ('shift') weights: rounding, range, exactness, STE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hwnas.models import deepshift


def test_rounds_to_nearest_power_of_two_in_log_domain():
  w = jnp.array([0.3, -0.3, 0.7, -0.09, 1.0, 3.0, -5.0, 0.0, 2.0 ** -20,
                 0.36, 0.35], jnp.float32)
  q = deepshift.power_of_two(w)
  # 0.3: log2 = -1.74 -> 2^-2; 0.7: -0.51 -> 2^-1; 0.09: -3.47 -> 2^-3;
  # above 1 clips to 1; 2^-20 is below 2^-15 (5 bits) -> 0; the threshold
  # between 2^-2 and 2^-1 is their geometric mean 0.3536.
  np.testing.assert_array_equal(
      q, [0.25, -0.25, 0.5, -0.125, 1.0, 1.0, -1.0, 0.0, 0.0, 0.5, 0.25])


def test_exponent_range_follows_bits():
  assert deepshift.exponent_range(5) == (-15, 0)
  assert deepshift.exponent_range(3) == (-3, 0)
  q = deepshift.power_of_two(jnp.array([2.0 ** -3, 2.0 ** -4, 2.0 ** -4.4]),
                             3)
  np.testing.assert_array_equal(q, [2.0 ** -3, 0.0, 0.0])
  with pytest.raises(ValueError, match="at least 2 bits"):
    deepshift.exponent_range(1)


def test_every_value_is_exactly_a_signed_power_of_two():
  w = jax.random.normal(jax.random.key(0), (3, 3, 16, 32)) * 0.2
  q = np.asarray(deepshift.power_of_two(w))
  assert q.dtype == np.float32
  assert deepshift.is_power_of_two(q)
  nz = np.abs(q[q != 0])
  assert np.array_equal(nz, 2.0 ** np.round(np.log2(nz)))
  assert not deepshift.is_power_of_two(np.asarray(w))
  assert not deepshift.is_power_of_two([2.0])       # exponent 1 > 0
  assert not deepshift.is_power_of_two([2.0 ** -16])  # below 5 bits


def test_straight_through_gradient_is_identity():
  w = jnp.array([0.3, -0.7, 0.0, 5.0])
  c = jnp.array([1.0, 2.0, 3.0, 4.0])
  g = jax.grad(lambda w: jnp.sum(c * deepshift.power_of_two(w)))(w)
  np.testing.assert_array_equal(g, c)
  # Through jit and a second function of the rounded weights.
  g2 = jax.jit(jax.grad(
      lambda w: jnp.sum(deepshift.power_of_two(w, 4) ** 2)))(w)
  np.testing.assert_allclose(g2, 2 * deepshift.power_of_two(w, 4))
