"""The stem's and head's op as a search choice (`stem: {ops: [mult, shift]}`):
the space, the architecture operators, decode, counting, the cost plan,
the search genes, and the supernet against the standalone network."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch, counting, energy, errors, space
from hwnas.latency import energy_table, space_layers
from hwnas.models import standalone
from hwnas.search import feasibility, history
from hwnas.supernet import extract
from hwnas.supernet import model as model_lib

# A micro space (one stage) with the op searched on the stem and the head
# conv, and on the blocks.
MICRO = """\
format: 1
name: micro_parts
version: 1
input_channels: 3
num_classes: 10
resolutions: [16]
stem: {channels: 8, kernel: 3, stride: 2, activation: relu, ops: [mult, shift]}
stages:
  - widths: [8, 16]
    stride: 2
    depths: [1, 2]
    types: [ibn, fused_ibn]
    kernels: [3]
    expansions: [2]
    ops: [mult, shift]
head: {expand_channels: 16, activation: relu, ops: [mult, shift]}
"""


@pytest.fixture(name="sp")
def _sp(tmp_path):
  p = tmp_path / "micro_parts.yaml"
  p.write_text(MICRO)
  return space.load(p)


def _plain(sp):
  """The same space without the stem / head choice (both multiply)."""
  return dataclasses.replace(
      sp, stem=dataclasses.replace(sp.stem, ops=("mult",)),
      head=dataclasses.replace(sp.head, ops=("mult",)))


def _parts(a, stem, head):
  return dataclasses.replace(a, stem_op=stem, head_op=head)


def test_space_with_stem_and_head_ops_loads_and_dumps(sp):
  assert sp.stem.ops == ("mult", "shift") and sp.head.ops == ("mult", "shift")
  assert sp.num_archs() == 4 * _plain(sp).num_archs()
  d = sp.to_dict()
  assert d["stem"]["ops"] == ["mult", "shift"] and "op" not in d["stem"]
  assert space.from_dict(d, path="x") == dataclasses.replace(sp, path="x")
  # The one-choice forms: `op: shift` (fixed) dumps as `op`, mult as nothing.
  d["stem"]["ops"], d["head"]["ops"] = ["shift"], ["mult"]
  fixed = space.from_dict(d, path="x")
  assert fixed.stem.ops == ("shift",)
  assert fixed.to_dict()["stem"] == {**{k: v for k, v in d["stem"].items()
                                        if k != "ops"}, "op": "shift"}
  assert "op" not in fixed.to_dict()["head"]


def test_arch_operators_search_the_stem_and_head_op(sp):
  rng = np.random.default_rng(0)
  drawn = [arch.sample(rng, sp) for _ in range(40)]
  assert {(a.stem_op, a.head_op) for a in drawn} == {
      ("mult", "mult"), ("mult", "shift"), ("shift", "mult"),
      ("shift", "shift")}
  a = _parts(arch.largest(sp), "mult", "mult")
  flipped = {arch.mutate(rng, sp, a, prob=1.0).stem_op for _ in range(20)}
  assert flipped == {"mult", "shift"}
  b = _parts(a, "shift", "shift")
  kids = {(k.stem_op, k.head_op)
          for k in (arch.crossover(rng, sp, a, b) for _ in range(40))}
  assert ("mult", "shift") in kids and ("shift", "mult") in kids
  # Largest multiplies, smallest shifts (as blocks of equal MACs do).
  assert (arch.largest(sp).stem_op, arch.largest(sp).head_op) == (
      "mult", "mult")
  assert (arch.smallest(sp).stem_op, arch.smallest(sp).head_op) == (
      "shift", "shift")
  # Encoding: two one-hot genes of two options each, after the blocks.
  n = arch.encoding_size(sp)
  assert n == arch.encoding_size(_plain(sp)) + 4
  ea, eb = arch.encode(sp, a), arch.encode(sp, _parts(a, "shift", "mult"))
  assert ea.shape == (n,)
  assert ea[-4:].tolist() == [1, 0, 1, 0] and eb[-4:].tolist() == [0, 1, 1, 0]
  assert ea[:-4].tolist() == eb[:-4].tolist()
  # JSON and the string form.
  for x in (a, b, _parts(a, "mult", "shift")):
    assert arch.from_json(arch.to_json(x)) == x
  assert "stem_op" not in arch.to_dict(a)
  assert arch.to_dict(b)["stem_op"] == "shift"
  assert arch.to_string(b) == (
      "r16 stem:sh " + arch.to_string(a)[len("r16 "):] + " head:sh")
  assert len({arch.to_string(_parts(a, s, h)) for s in ("mult", "shift")
              for h in ("mult", "shift")}) == 4
  # The search's genes, neighbours and network keys see the choice.
  genes = feasibility.genes(sp)
  assert genes[-2:] == [("stem_op",), ("head_op",)]
  assert ("stem_op",) not in feasibility.genes(_plain(sp))
  assert b in set(feasibility.neighbours(sp, _parts(a, "shift", "mult")))
  assert history.network_key(a) != history.network_key(b)


def test_arch_validation_of_the_stem_and_head_op(sp):
  a = arch.largest(sp)
  with pytest.raises(errors.SpaceError, match=r"stem_op = 'div' is not in"):
    arch.validate(sp, _parts(a, "div", "mult"))
  # A space without the choice has only its one op; canonicalize sets it.
  plain = _plain(sp)
  with pytest.raises(errors.SpaceError, match=r"head_op = 'shift' is not in"):
    arch.validate(plain, _parts(a, "mult", "shift"))
  assert arch.canonicalize(plain, b := _parts(a, "shift", "shift")) == (
      _parts(b, "mult", "mult"))
  d = arch.to_dict(a)
  d["stem_op"] = 1
  with pytest.raises(errors.SpaceError,
                     match=r"^<arch>: stem_op = 1 must be an op name"):
    arch.from_dict(d)


def test_decode_counting_and_cost_plan_follow_the_arch_op(sp):
  a = _parts(arch.largest(sp), "mult", "mult")
  b = _parts(a, "shift", "shift")
  sa, sb = arch.decode(sp, a), arch.decode(sp, b)
  convs = lambda s: [l for l in s.layers if l.type == "conv"]
  assert [l.op for l in convs(sa)] == ["mult", "mult"]
  assert [l.op for l in convs(sb)] == ["shift", "shift"]
  assert all(l.op == "mult" for l in sb.blocks)
  ca, cb = counting.count(sa), counting.count(sb)
  assert ca.shift_adds == 0 and ca.macs == cb.macs
  assert cb.shift_adds == sum(counting.layer_counts(l).macs
                              for l in convs(sb))
  # The cost plan builds both ops' layers and charges each architecture
  # its own (energy: a shift-add costs less than a multiply-add).
  layers = space_layers.enumerate_layers(sp)
  assert set(sa.layers) | set(sb.layers) <= layers
  t = energy_table.make_table(sp)
  fn = space_layers.make_cost_fn(t, sp)
  for x, spec in ((a, sa), (b, sb), (_parts(a, "shift", "mult"), None)):
    want = t.predict(spec or arch.decode(sp, x))
    assert fn(x) == pytest.approx(want)
  assert fn(b) < fn(_parts(a, "shift", "mult")) < fn(a)
  acc = energy.load_accelerator("eyeriss-v1")
  e = lambda s: sum(l.total_uj for l in energy.network_energy(s, acc))
  assert e(sb) < e(sa)


@pytest.mark.parametrize("part, entry, msg", [
    ("stem", {"op": "shift", "ops": ["mult", "shift"]},
     r"stem\.ops: give either stem\.op \(fixed\) or stem\.ops"),
    ("stem", {"ops": ["mult", "div"]},
     r"stem\.ops\[1\]: 'div' is not allowed; allowed: mult, shift"),
    ("head", {"ops": ["shift", "shift"]}, r"head\.ops: duplicate choices"),
    ("head", {"ops": "shift"}, r"head\.ops: must be a list of choices"),
    ("head", {"expand_channels": 0, "ops": ["mult", "shift"]},
     r"head\.ops: mult, shift applies to the head's 1x1 conv and this head "
     r"has none; set head\.expand_channels > 0 or drop head\.ops"),
])
def test_bad_stem_or_head_ops_is_one_line_error(tmp_path, part, entry, msg):
  d = space.load("tiny").to_dict()
  d[part].update(entry)
  p = tmp_path / "bad.yaml"
  import yaml  # pylint: disable=g-import-not-at-top
  p.write_text(yaml.safe_dump(d))
  with pytest.raises(errors.SpaceError, match=f"^{p}: {msg}") as e:
    space.load(p)
  assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.usefixtures("fast_compile")
def test_searched_stem_and_head_op_supernet_equals_standalone(sp):
  # All blocks multiply; the traced stem / head flags pick the rounding,
  # and one compile serves both ops.
  a = dataclasses.replace(arch.largest(sp), blocks=tuple(
      tuple(dataclasses.replace(b, op="mult") for b in bs)
      for bs in arch.largest(sp).blocks))
  x = jax.random.normal(jax.random.key(7), (2, 16, 16, 3))
  net = model_lib.Supernet(sp, rngs=nnx.Rngs(1))
  graphdef, state = nnx.split(net)
  traces = []

  @jax.jit
  def f(state, arrays, x):
    traces.append(1)
    n = nnx.merge(graphdef, state)
    return n(x, arrays, train=False), n.observe(x, arrays)[0]

  outs = {}
  for stem, head in (("shift", "shift"), ("mult", "mult"), ("mult", "shift")):
    c = _parts(a, stem, head)
    arrays = model_lib.arch_arrays(sp, c)
    assert (int(arrays["stem_op"]), int(arrays["head_op"])) == (
        stem == "shift", head == "shift")
    want, folded = f(state, arrays, x)
    sub = extract.subnet(net, c)
    assert sub.layers[0].body.shift == (stem == "shift")
    assert sub.layers[-3].body.shift == (head == "shift")
    np.testing.assert_allclose(sub(x, train=False), want, rtol=1e-4,
                               atol=1e-4)
    # The simulated-int8 forward folds the rounded weights too.
    np.testing.assert_allclose(folded, want, rtol=1e-4,
                               atol=1e-5 * float(jnp.abs(want).max()))
    outs[(stem, head)] = (np.asarray(want), sub)
  assert len(traces) == 1
  shifted, sub = outs[("shift", "shift")]
  assert not np.allclose(shifted, outs[("mult", "mult")][0], atol=1e-3)
  assert not np.allclose(outs[("mult", "shift")][0],
                         outs[("mult", "mult")][0], atol=1e-3)
  n = len(sub.spec.layers)
  assert [q for q, _ in standalone.shift_kernels(sub)] == [
      "layers[0].body.conv.kernel", f"layers[{n - 3}].body.conv.kernel"]
  assert not standalone.shift_kernels(outs[("mult", "mult")][1])
  # A batch of architectures stacks the flags to [N].
  batch = model_lib.stack_arch_arrays(sp, [a, _parts(a, "shift", "mult")])
  assert batch["stem_op"].tolist() == [0, 1]
  assert "stem_op" not in model_lib.arch_arrays(_plain(sp), a)


def test_standalone_network_of_the_decoded_arch_shifts_stem_and_head(sp):
  # What `hwnas train` builds and export checks for power-of-two kernels.
  a = _parts(arch.largest(sp), "shift", "mult")
  for x, want in ((a, [0]), (_parts(a, "mult", "shift"), [-3]),
                  (_parts(a, "mult", "mult"), [])):
    spec = arch.decode(sp, x)
    # Shapes only (no weights computed): the structure is what counts here.
    net = nnx.eval_shape(lambda s=spec: standalone.Network(
        s, rngs=nnx.Rngs(0)))
    n = len(spec.layers)
    assert all(l.op == "mult" for l in spec.blocks)   # the largest's
    assert [q for q, _ in standalone.shift_kernels(net)] == [
        f"layers[{i % n}].body.conv.kernel" for i in want]
    assert net.layers[0].body.shift == (x.stem_op == "shift")
    assert net.layers[n - 3].body.shift == (x.head_op == "shift")


def test_a_search_explores_and_records_the_stem_and_head_op(sp, tmp_path):
  from hwnas.search import run  # pylint: disable=g-import-not-at-top
  energy_uj = space_layers.make_cost_fn(energy_table.make_table(sp), sp)

  def accuracy(archs):   # toy: multiplying stem / head convs are better
    return ([0.5 + 0.1 * (a.stem_op == "mult") + 0.05 * (a.head_op == "mult")
             + counting.count(arch.decode(sp, a)).macs / 1e7 for a in archs],
            [{} for _ in archs])
  r = run(sp, accuracy, {"energy_uj": energy_uj}, objective="pareto",
          workdir=tmp_path, budget=24, population=8, progress=False,
          plot=False)
  assert len(r.records) == 24
  assert {x.arch.stem_op for x in r.records} == {"mult", "shift"}
  assert {x.arch.head_op for x in r.records} == {"mult", "shift"}
  for x in r.records:
    assert x.costs["energy_uj"] == pytest.approx(energy_uj(x.arch))
  # The history file keeps the ops (rows reload to the same choices).
  rows = (tmp_path / "history.jsonl").read_text().splitlines()
  assert [history.network_key(arch.from_json(line)) for line in rows] == [
      history.network_key(x.arch) for x in r.records]


@pytest.mark.slow
@pytest.mark.usefixtures("fast_compile")
def test_sandwich_training_steps_serve_both_stem_and_head_ops(sp):
  from hwnas.configs import loader  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import train as train_lib  # pylint: disable=g-import-not-at-top
  net = model_lib.Supernet(sp, rngs=nnx.Rngs(0))
  tx = train_lib.make_optimizer(loader.load("tiny"), 10)
  graphdef, state = train_lib.create_state(net, tx)
  step = train_lib.jit_train_step(graphdef, tx, resolution=16,
                                  label_smoothing=0.0, kd_ratio=0.5)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.standard_normal((2, 16, 16, 3)),
                                jnp.float32),
           "label": jnp.asarray([0, 1], jnp.int32)}
  seen = set()
  for i in range(3):
    archs = train_lib.sandwich(rng, sp, n_random=2, resolution=16)
    seen.update((a.stem_op, a.head_op) for a in archs)
    state, metrics = step(state, batch, jax.random.key(i),
                          model_lib.stack_arch_arrays(sp, archs))
    assert np.isfinite(float(metrics["train/loss"]))
  # The sandwich's largest multiplies and its smallest shifts.
  assert {("mult", "mult"), ("shift", "shift")} <= seen
  assert step._cache_size() == 1             # pylint: disable=protected-access
