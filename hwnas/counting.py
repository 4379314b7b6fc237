"""MACs and parameter counts computed from a NetSpec (no model is traced).

Conventions (those of the MobileNet papers and torchvision's model cards):

* MACs count multiply-accumulates of convolutions and dense layers,
  including squeeze-excite's two 1x1 convs. Pooling, BatchNorm,
  activations, residual adds and SE gating multiplies are not counted.
* `params` counts conv/dense weights and the biases of layers without
  BatchNorm (SE convs, `fc`), but not BatchNorm, as the MobileNet papers do
  (MobileNetV2's 3.47M is exactly weights + classifier bias).
  `trainable_params` adds BatchNorm's scale and offset (2 per channel), the
  figure torchvision and Keras print (3.50M for MobileNetV2).

* `shift_adds` is the part of `macs` that a `shift` layer (op 'shift',
  power-of-two weights) runs as shift-and-accumulate instead of
  multiply-accumulate: all of its convolutions' MACs except
  squeeze-excite's. `macs` stays the count of every accumulate, whatever
  the op, so MAC budgets mean the same for every op; `mult_macs` is what
  is left to multiply.

With these rules the reference networks match their published figures
within 2% (tests/counting_test.py pins them).
"""

from __future__ import annotations

import dataclasses

from hwnas.netspec import Layer, NetSpec


@dataclasses.dataclass(frozen=True)
class Counts:
  """MACs and parameters, split into weights, BN channels and biases."""

  macs: int
  weights: int = 0
  bn_channels: int = 0   # each carries a BN scale and offset
  biases: int = 0        # biases of layers without BN (SE convs, fc)
  shift_adds: int = 0    # of `macs`, those done as shift-adds

  @property
  def mult_macs(self) -> int:
    """MACs that multiply (all but the shift-adds)."""
    return self.macs - self.shift_adds

  @property
  def params(self) -> int:
    """Weights and non-BN biases (the papers' convention)."""
    return self.weights + self.biases

  @property
  def trainable_params(self) -> int:
    """All trainable values, BatchNorm scale and offset included."""
    return self.weights + 2 * self.bn_channels + self.biases

  @property
  def int8_bytes(self) -> int:
    """Bytes after full-int8 conversion: int8 weights, int32 biases.

    BatchNorm folds into the preceding conv as one int32 bias per channel.
    This is what an Edge TPU has to hold in its parameter cache.
    """
    return self.weights + 4 * (self.bn_channels + self.biases)

  def __add__(self, other: "Counts") -> "Counts":
    return Counts(self.macs + other.macs, self.weights + other.weights,
                  self.bn_channels + other.bn_channels,
                  self.biases + other.biases,
                  self.shift_adds + other.shift_adds)


_ZERO = Counts(0)


def _conv(positions: int, taps: int, cin: int, cout: int,
          groups: int = 1) -> Counts:
  """A conv of `taps` kernel taps (k * k, or k in 1-D) computed at
  `positions` output positions (H' * W', or T')."""
  weights = taps * (cin // groups) * cout
  return Counts(positions * weights, weights, bn_channels=cout)


def _dense(cin: int, cout: int) -> Counts:
  return Counts(cin * cout, cin * cout, biases=cout)


def _se(mid: int, se: int) -> Counts:
  return _dense(mid, se) + _dense(se, mid) if se else _ZERO


def layer_counts(layer: Layer) -> Counts:
  """MACs, shift-adds and parameters of one layer."""
  c = _layer_counts(layer)
  if layer.op == "shift":
    se = _se(layer.mid_channels, layer.se_channels)
    c = dataclasses.replace(c, shift_adds=c.macs - se.macs)
  return c


def _layer_counts(layer: Layer) -> Counts:
  t, k = layer.type, layer.kernel
  cin, cout, mid = layer.in_channels, layer.out_channels, layer.mid_channels
  # Positions in and out (H * W; T in 1-D) and taps of a k-kernel.
  h_in, h_out = layer.input_positions, layer.output_positions
  k = k if layer.dims == 1 else k * k
  if t == "conv":
    return _conv(h_out, k, cin, cout)
  if t == "pool":
    return _ZERO
  if t == "fc":
    return _dense(cin, cout)
  if t == "dsc":
    return _conv(h_out, k, cin, cin, groups=cin) + _conv(h_out, 1, cin, cout)
  if t == "ibn":
    c = _conv(h_in, 1, cin, mid) if layer.has_expand else _ZERO
    c += _conv(h_out, k, mid, mid, groups=mid)
  elif t == "fused_ibn":
    c = _conv(h_out, k, cin, mid) if layer.has_expand else _ZERO
  else:
    raise ValueError(f"unknown layer type {t!r}")
  return c + _se(mid, layer.se_channels) + _conv(h_out, 1, mid, cout)


def count(spec: NetSpec) -> Counts:
  """Total MACs and parameters of a network."""
  total = _ZERO
  for layer in spec.layers:
    total += layer_counts(layer)
  return total


def macs(spec: NetSpec) -> int:
  return count(spec).macs


def params(spec: NetSpec) -> int:
  return count(spec).params
