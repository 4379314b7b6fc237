"""Simulated full-int8 arithmetic (TFLite's), the supernet forward's hook.

The supernet's one forward pass (`hwnas.supernet.model`) takes a `Points`
object that decides what happens at each place an exported int8 model
quantises a tensor:

* `Points.none()`: nothing (float training and evaluation);
* `Points.observe()`: the float network with BatchNorm folded into the
  convolutions, recording each point's [min, max] (range calibration);
* `Points.int8(ranges)`: the simulated int8 network: folded weights
  quantised per output channel, each point's tensor quantised with its
  calibrated range.

The rules follow the converter's full-int8 output:

* BatchNorm folded into the conv: `w' = w * g / sqrt(v + eps)` per output
  channel, `b' = beta - mean * g / sqrt(v + eps)`;
* weights per output channel, symmetric: `scale = max|w'| / 127` over the
  channel's active taps and input channels, int8 values in [-127, 127];
* biases int32 with scale `input_scale * weight_scale`;
* activations per tensor, asymmetric int8 (zero point in [-128, 127], 0
  exactly representable, the range widened to contain 0), with ranges
  calibrated as the converter's representative dataset does: min and max
  over all calibration images.

Where the points sit (the model's blocks name them) follows the operators
of an exported int8 model: the input; every CONV_2D / DEPTHWISE_CONV_2D
output after its fused ReLU/ReLU6 (or before the activation for hard-swish,
whose HARD_SWISH output is a second tensor); the projection conv output,
except that a projection feeding a residual ADD takes the ADD output's
scale and zero point; each residual ADD output; in squeeze-excite the
AVERAGE_POOL_2D output (same scale and zero point as its input), the reduce
conv + ReLU, the expand conv with the +3 of the hard sigmoid folded into
its bias and ReLU6 fused, the MUL by 1/6 and the gating MUL; the head conv;
the global AVERAGE_POOL_2D (same parameters as its input); the
FULLY_CONNECTED logits (per-channel weights too).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from hwnas.models import ops

Range = jax.Array | None   # [2] (lo, hi) of a quantised tensor, or None
QMIN, QMAX = -128, 127     # int8 activations
WMAX = 127                 # int8 weights: [-127, 127] (symmetric)


def act_params(tensor_range: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(scale, zero point) of int8 range [lo, hi], as TFLite nudges it.

  The range is widened to contain 0; the zero point is rounded to an
  integer in [-128, 127], so real 0 is exact (padding, masked channels).
  """
  lo = jnp.minimum(tensor_range[0], 0.0)
  hi = jnp.maximum(tensor_range[1], 0.0)
  scale = jnp.maximum((hi - lo) / (QMAX - QMIN), 1e-12)
  zero_point = jnp.clip(jnp.round(QMIN - lo / scale), QMIN, QMAX)
  return scale, zero_point


def fake_quant(x: jax.Array, tensor_range: jax.Array) -> jax.Array:
  """x quantised to int8 with range [lo, hi] and dequantised."""
  scale, zero_point = act_params(tensor_range)
  q = jnp.clip(jnp.round(x / scale) + zero_point, QMIN, QMAX)
  return (q - zero_point) * scale


def quant_weights(w: jax.Array, b: jax.Array, input_range: jax.Array,
                  in_mask: jax.Array | None, depthwise: bool = False
                  ) -> tuple[jax.Array, jax.Array]:
  """Per-output-channel symmetric int8 weights and int32 biases.

  Args:
    w: [..., cin, cout] (HWIO conv or [cin, cout] dense) folded weights.
    b: [cout] folded bias.
    input_range: range of the input tensor (its scale sets the bias scale).
    in_mask: [cin] mask of the input channels the layer really has (the
      scale is taken over those only); None: all.
    depthwise: `w` is [k, k, 1, C] (scale per channel C).
  """
  masked = w if (in_mask is None or depthwise) else w * in_mask[:, None]
  axes = tuple(range(w.ndim - 1))
  scale = jnp.max(jnp.abs(masked), axis=axes) / WMAX
  scale = jnp.where(scale > 0, scale, 1.0)
  wq = jnp.clip(jnp.round(masked / scale), -WMAX, WMAX) * scale
  bias_scale = act_params(input_range)[0] * scale
  return wq, jnp.round(b / bias_scale) * bias_scale


def fold_batch_norm(w: jax.Array, scale: jax.Array, bias: jax.Array,
                    mean: jax.Array, var: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
  """(w', b') of a conv [..., cout] followed by an eval-mode BatchNorm."""
  mul = jax.lax.rsqrt(var + ops.BN_EPSILON) * scale
  return w * mul, bias - mean * mul


class Points:
  """The quantisation points of one part of one forward pass.

  Create with `Points.none()`, `Points.observe()` or `Points.int8(ranges)`;
  `scoped(prefix)` gives the points of a part (e.g. one block slot), named
  `prefix.name`, sharing the mode and the ranges. Observing points record
  into their own `seen` dict, so a part traced inside `lax.switch` returns
  its `seen` as an output rather than writing it outside.

  Attributes:
    folds: BatchNorm is folded into the convolutions (observe and int8).
    quantize: weights and tensors are quantised (int8).
    seen: {name: [min, max]} recorded by observing points.
  """

  def __init__(self, *, folds: bool, ranges: Mapping[str, jax.Array] | None,
               prefix: str = ""):
    self.folds = folds
    self.ranges = ranges
    self.prefix = prefix
    self.seen: dict[str, jax.Array] = {}

  @classmethod
  def none(cls) -> "Points":
    return cls(folds=False, ranges=None)

  @classmethod
  def observe(cls) -> "Points":
    return cls(folds=True, ranges=None)

  @classmethod
  def int8(cls, ranges: Mapping[str, jax.Array]) -> "Points":
    return cls(folds=True, ranges=ranges)

  @property
  def quantize(self) -> bool:
    return self.ranges is not None

  @property
  def observing(self) -> bool:
    return self.folds and self.ranges is None

  def scoped(self, prefix: str) -> "Points":
    return Points(folds=self.folds, ranges=self.ranges,
                  prefix=f"{self.prefix}{prefix}.")

  def __call__(self, name: str, x: jax.Array) -> tuple[jax.Array, Range]:
    """Point `name` on tensor `x`: (x, None) in float and observe mode
    (recording its range when observing), else (fake-quantised x, range)."""
    name = self.prefix + name
    if self.observing:
      self.seen[name] = jnp.stack([jnp.min(x), jnp.max(x)])
    if not self.quantize:
      return x, None
    tensor_range = self.ranges[name]
    return fake_quant(x, tensor_range), tensor_range

  def like(self, name: str, x: jax.Array) -> jax.Array:
    """`x` quantised with point `name`'s range (not observed)."""
    if not self.quantize:
      return x
    return fake_quant(x, self.ranges[self.prefix + name])

  def same(self, x: jax.Array, tensor_range: Range) -> jax.Array:
    """`x` re-quantised with its input's own parameters (what
    AVERAGE_POOL_2D does)."""
    return fake_quant(x, tensor_range) if self.quantize else x

  def weights(self, w: jax.Array, b: jax.Array, input_range: Range,
              in_mask: jax.Array | None = None, depthwise: bool = False
              ) -> tuple[jax.Array, jax.Array]:
    """Folded (w, b) quantised as int8 / int32 when quantising."""
    if not self.quantize:
      return w, b
    return quant_weights(w, b, input_range, in_mask, depthwise)


def select(cond: jax.Array, a: tuple[jax.Array, Range],
           b: tuple[jax.Array, Range]) -> tuple[jax.Array, Range]:
  """`a` where `cond`, else `b`: (tensor, range) pairs."""
  x = jnp.where(cond, a[0], b[0])
  if a[1] is None or b[1] is None:
    return x, None
  return x, jnp.where(cond, a[1], b[1])
