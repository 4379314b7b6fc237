"""The shipped supernet configs' default recipes: progressive shrinking + 2
random subnets (`ps_n2`, the best measured ranking recipe) at full scale;
the sandwich at the quickstart's tiny scale, where the progressive phases
leave small subnets undertrained in 450 steps; each recipe is a named
variant of each scale."""

import pytest

from hwnas import errors
from hwnas.configs import loader
from hwnas.configs import supernet as supernet_config


def test_full_scale_defaults_to_ps_n2():
  c = supernet_config.get_config("")
  assert c.train.progressive_shrinking and c.train.n_random == 2
  assert c.train.sort_channels
  assert supernet_config.get_config(",ps_n2").to_dict() == c.to_dict()


def test_tiny_defaults_to_the_sandwich():
  c = supernet_config.get_config("tiny")
  assert not c.train.progressive_shrinking and c.train.n_random == 1
  assert c.train.steps == 600
  assert supernet_config.get_config("tiny,sandwich").to_dict() == c.to_dict()


@pytest.mark.parametrize("scale", ["", "tiny"])
def test_each_recipe_is_named_at_each_scale(scale):
  ps = supernet_config.get_config(f"{scale},ps_n2")
  sw = supernet_config.get_config(f"{scale},sandwich")
  assert ps.train.progressive_shrinking and ps.train.n_random == 2
  assert not sw.train.progressive_shrinking and sw.train.n_random == 1


def test_tiny_ps_n2_matches_the_sandwich_compute():
  best = supernet_config.get_config("tiny,ps_n2")
  old = supernet_config.get_config("tiny,sandwich")
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
  assert loader.load("tiny,ps_n2").train.n_random == 2
  assert not loader.load(None, space="tiny").train.progressive_shrinking
