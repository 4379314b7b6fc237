"""Tests of hwnas.hand_design: MobileNetV2/V3-style templates written in a
space's blocks, scaled by width and resolution under a cost target."""

import pytest

from hwnas import arch as arch_lib
from hwnas import hand_design
from hwnas import space as space_lib
from hwnas.errors import HwnasError
from hwnas.latency import load_table, make_cost_fn


@pytest.fixture(scope="module")
def mini():
  return space_lib.load("edgetpu-mini")


def test_mobilenetv2_is_ibn_k3_e6_relu_at_full_depth(mini):
  a = hand_design.scaled(mini, "mobilenetv2", 1, 24)
  assert a.resolution == 24 and a.depths == tuple(
      st.max_depth for st in mini.stages)
  assert a.widths == tuple(sorted(st.widths)[1] for st in mini.stages)
  blocks = [b for _, _, b in a.active_blocks()]
  assert len(blocks) == sum(a.depths)
  assert {(b.type, b.kernel, b.expansion, b.se, b.activation)
          for b in blocks} == {("ibn", 3, 6.0, False, "relu")}


def test_mobilenetv3_follows_the_published_stage_pattern(mini):
  a = hand_design.scaled(mini, "mobilenetv3", 0, 20)
  first, second, *later = [a.blocks[i][0] for i in range(len(mini.stages))]
  assert (first.kernel, first.se, first.activation) == (3, True, "relu")
  assert first.expansion == 3.0              # 1 -> the nearest offered
  assert (second.kernel, second.se, second.activation) == (3, False, "relu")
  for b in later:
    assert (b.kernel, b.expansion, b.se, b.activation) == (5, 6.0, True,
                                                           "hswish")


def test_missing_choices_become_the_nearest_offered():
  tiny = space_lib.load("tiny")              # expansions {2, 4}, no hswish
  a = hand_design.scaled(tiny, "mobilenetv2", 0, 24)   # in stage 1
  assert {b.expansion for _, _, b in a.active_blocks()} == {4.0}
  arch_lib.validate(tiny, a)
  with pytest.raises(HwnasError, match="template"):
    hand_design.scaled(tiny, "resnet", 0, 24)


def test_largest_under_spends_the_budget_and_none_below_it(mini):
  cost = make_cost_fn(load_table("edgetpu-usb3/edgetpu-mini"), mini)
  fam = hand_design.family(mini, "mobilenetv3")
  assert len(fam) == 4 * 3                   # width choices x resolutions
  costs = sorted(cost(a) for a in fam)
  target = (costs[5] + costs[6]) / 2
  best = hand_design.largest_under(mini, "mobilenetv3", cost, target)
  assert cost(best) == costs[5]
  assert hand_design.largest_under(mini, "mobilenetv3", cost,
                                   costs[0] - 1e-6) is None
  assert "px" in hand_design.describe(best, mini)
