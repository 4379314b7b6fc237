"""Architecture choices: properties of sampling, mutation, crossover, codecs."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hwnas import arch, counting, errors, space

SPACES = {n: space.load(n) for n in ("tiny", "mobilenetv3", "edgetpu")}
seeds = st.integers(0, 2**32 - 1)
space_names = st.sampled_from(sorted(SPACES))
fast = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _valid(s, a):
  arch.validate(s, a)
  assert arch.canonicalize(s, a) == a
  arch.decode(s, a)  # shapes chain


@fast
@given(space_names, seeds)
def test_sampled_archs_are_valid_and_canonical(name, seed):
  s = SPACES[name]
  _valid(s, arch.sample(np.random.default_rng(seed), s))


@fast
@given(space_names, seeds, st.floats(0.0, 1.0))
def test_mutation_is_valid_and_pure(name, seed, prob):
  s = SPACES[name]
  rng = np.random.default_rng(seed)
  a = arch.sample(rng, s)
  before = arch.to_json(a)
  m = arch.mutate(rng, s, a, prob)
  _valid(s, m)
  assert arch.to_json(a) == before
  if prob == 0.0:
    assert m == a


@fast
@given(space_names, seeds)
def test_crossover_is_valid_and_takes_genes_from_parents(name, seed):
  s = SPACES[name]
  rng = np.random.default_rng(seed)
  a, b = arch.sample(rng, s), arch.sample(rng, s)
  c = arch.crossover(rng, s, a, b)
  _valid(s, c)
  assert c.resolution in (a.resolution, b.resolution)
  for i in range(len(s.stages)):
    assert c.depths[i] in (a.depths[i], b.depths[i])
    assert c.widths[i] in (a.widths[i], b.widths[i])
    for j in range(c.depths[i]):
      parents = [p.blocks[i][j] for p in (a, b) if j < p.depths[i]]
      assert c.blocks[i][j] in parents


@fast
@given(space_names, seeds)
def test_json_roundtrip_is_exact(name, seed):
  s = SPACES[name]
  a = arch.sample(np.random.default_rng(seed), s)
  b = arch.from_json(arch.to_json(a))
  assert b == a and hash(b) == hash(a)
  spec = arch.decode(s, a)
  assert type(spec).from_json(spec.to_json()) == spec


@fast
@given(space_names, seeds)
def test_encoding_has_fixed_length_and_is_one_hot(name, seed):
  s = SPACES[name]
  a = arch.sample(np.random.default_rng(seed), s)
  e = arch.encode(s, a)
  assert e.shape == (arch.encoding_size(s),) and e.dtype == np.float32
  assert set(np.unique(e)) <= {0.0, 1.0}


@fast
@given(space_names, seeds)
def test_decode_is_deterministic(name, seed):
  s = SPACES[name]
  a = arch.sample(np.random.default_rng(seed), s)
  assert arch.decode(s, a) == arch.decode(s, arch.from_json(arch.to_json(a)))


def test_sampling_is_reproducible_per_seed():
  s = SPACES["mobilenetv3"]
  one = [arch.sample(np.random.default_rng([3, i]), s) for i in range(5)]
  two = [arch.sample(np.random.default_rng([3, i]), s) for i in range(5)]
  assert one == two and len(set(one)) == 5


def test_equal_networks_have_equal_choices():
  s = SPACES["tiny"]
  a = arch.sample(np.random.default_rng(1), s)
  # Change a gene of an inactive slot: canonicalisation must undo it.
  st0 = s.stages[0]
  d = a.depths[0]
  if d < st0.max_depth:
    blocks = list(a.blocks[0])
    blocks[d] = dataclasses.replace(blocks[d], kernel=st0.kernels[-1])
    b = dataclasses.replace(a, blocks=(tuple(blocks),) + a.blocks[1:])
    assert arch.canonicalize(s, b) == a


def test_largest_and_smallest_bound_sampled_macs():
  for s in SPACES.values():
    lo = counting.macs(arch.decode(s, arch.smallest(s)))
    hi = counting.macs(arch.decode(s, arch.largest(s)))
    rng = np.random.default_rng(0)
    for _ in range(50):
      m = counting.macs(arch.decode(s, arch.sample(rng, s)))
      assert lo <= m <= hi


def test_first_block_of_a_stage_never_skips():
  s = SPACES["tiny"]
  rng = np.random.default_rng(0)
  for _ in range(200):
    a = arch.sample(rng, s)
    assert all(bs[0].type != "skip" for bs in a.blocks)


def test_validate_rejects_foreign_values():
  s = SPACES["tiny"]
  a = arch.sample(np.random.default_rng(0), s)
  with pytest.raises(errors.SpaceError, match="resolution = 999"):
    arch.validate(s, dataclasses.replace(a, resolution=999))
  with pytest.raises(errors.SpaceError, match="belongs to space"):
    arch.validate(s, dataclasses.replace(a, space="mobilenetv3"))
  bad = list(a.blocks[0])
  bad[0] = dataclasses.replace(bad[0], kernel=9)
  with pytest.raises(errors.SpaceError, match=r"blocks\[0\]\[0\].kernel = 9"):
    arch.validate(s, dataclasses.replace(a, blocks=(tuple(bad),) +
                                          a.blocks[1:]))


def test_from_json_rejects_bad_documents():
  with pytest.raises(errors.SpaceError, match="invalid JSON"):
    arch.from_json("{nope")
  with pytest.raises(errors.SpaceError, match="missing key 'depths'"):
    arch.from_json(json.dumps({"space": "tiny", "resolution": 32,
                               "widths": [], "blocks": []}))


def test_to_string_is_short_and_distinct():
  s = SPACES["mobilenetv3"]
  rng = np.random.default_rng(0)
  archs = {arch.sample(rng, s) for _ in range(30)}
  strings = {arch.to_string(a) for a in archs}
  assert len(strings) == len(archs)
  assert all(len(x) < 400 for x in strings)
