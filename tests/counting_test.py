"""MAC and parameter counts, pinned to the published figures."""

import pytest

from hwnas import counting, netspec, references
from hwnas.netspec import Layer


@pytest.mark.parametrize("name", sorted(references.PUBLISHED))
def test_reference_counts_match_published_within_2_percent(name):
  macs, params = references.PUBLISHED[name]
  c = counting.count(references.load(name))
  assert c.macs == pytest.approx(macs, rel=0.02)
  assert c.params == pytest.approx(params, rel=0.02)


def test_headline_figures():
  """The three figures the foundation issue names explicitly."""
  mbv3 = counting.count(references.load("mobilenet_v3_large_1.0"))
  assert abs(mbv3.macs / 219e6 - 1) < 0.02
  assert abs(mbv3.params / 5.4e6 - 1) < 0.02
  edge = counting.count(references.load("mobilenet_edgetpu_1.0"))
  assert abs(edge.macs / 990e6 - 1) < 0.02
  assert abs(edge.params / 4.0e6 - 1) < 0.02
  v2 = counting.count(references.load("mobilenet_v2_1.0"))
  assert abs(v2.macs / 300e6 - 1) < 0.02
  assert abs(v2.params / 3.4e6 - 1) < 0.03   # 3.47M published with 2 digits
  assert abs(v2.params / 3.47e6 - 1) < 0.02
  # torchvision prints 3,504,872 (BatchNorm included) for the same network.
  assert v2.trainable_params == 3504872


def test_hand_computed_ibn():
  l = Layer("ibn", 8, 16, 24, mid_channels=48, kernel=3, stride=2,
            se_channels=16, activation="relu")
  c = counting.layer_counts(l)
  expand = 8 * 8 * 16 * 48
  dw = 4 * 4 * 9 * 48
  se = 2 * 48 * 16
  project = 4 * 4 * 48 * 24
  assert c.macs == expand + dw + se + project
  weights = 16 * 48 + 9 * 48 + 2 * 48 * 16 + 48 * 24
  assert c.params == weights + 16 + 48
  assert c.trainable_params == c.params + 2 * (48 + 48 + 24)


def test_expansion_is_omitted_when_mid_equals_in():
  ibn = Layer("ibn", 8, 16, 16, mid_channels=16, kernel=3, residual=True)
  fused = Layer("fused_ibn", 8, 16, 8, mid_channels=16, kernel=3)
  assert counting.layer_counts(ibn).macs == 64 * (9 * 16 + 16 * 16)
  assert counting.layer_counts(fused).macs == 64 * 16 * 8


def test_counts_scale_with_resolution():
  spec = references.load("mobilenet_v2_1.0")
  small = netspec.with_resolution(spec, 112)
  assert counting.params(small) == counting.params(spec)
  assert counting.macs(small) < 0.3 * counting.macs(spec)


def test_int8_bytes_fold_batchnorm_into_int32_bias():
  c = counting.count(references.load("mobilenet_v2_1.0"))
  assert c.int8_bytes == c.weights + 4 * (c.bn_channels + c.biases)
