"""The shipped supernet configs train with the best measured ranking recipe
(progressive shrinking + 2 random subnets, `ps_n2`) by default; the earlier
sandwich recipe stays a named variant."""

import pytest

from hwnas import errors
from hwnas.configs import loader
from hwnas.configs import supernet as supernet_config


@pytest.mark.parametrize("scale", ["", "tiny"])
def test_every_scale_defaults_to_ps_n2(scale):
  c = supernet_config.get_config(scale)
  assert c.train.progressive_shrinking and c.train.n_random == 2
  assert c.train.sort_channels
  named = supernet_config.get_config(f"{scale},ps_n2")
  assert named.to_dict() == c.to_dict()


def test_tiny_ps_n2_matches_the_sandwich_compute():
  best = supernet_config.get_config("tiny")
  old = supernet_config.get_config("tiny,sandwich")
  assert not old.train.progressive_shrinking and old.train.n_random == 1
  # steps x subnets per step (largest + smallest + n_random) is the same.
  assert (best.train.steps * (2 + best.train.n_random)
          == old.train.steps * (2 + old.train.n_random))
  rest = lambda c: {k: v for k, v in c.to_dict()["train"].items()
                    if k not in ("steps", "n_random",
                                 "progressive_shrinking")}
  assert rest(best) == rest(old)


def test_unknown_variant_is_a_one_line_error():
  with pytest.raises(errors.HwnasError, match="sandwich"):
    loader.load("tiny,fast")
  assert loader.load("tiny,sandwich").train.n_random == 1
  assert loader.load(None, space="tiny").train.progressive_shrinking
