"""Shift ('ops') blocks: space, arch, netspec, counting, energy, tables."""

import dataclasses
import json

import numpy as np
import pytest

from hwnas import arch, counting, energy, errors, space
from hwnas.latency import space_layers
from hwnas.latency import table as tbl
from hwnas.netspec import Layer, NetSpec

SHIFT = space.load("tiny_shift")
TINY = space.load("tiny")


def test_space_with_ops_loads_and_counts_architectures():
  assert all(st.ops == ("mult", "shift") for st in SHIFT.stages)
  assert all(st.ops == ("mult",) for st in TINY.stages)
  # Same space otherwise: every non-skip block has twice the choices.
  assert SHIFT.num_archs() > TINY.num_archs()
  one = dataclasses.replace(SHIFT, stages=tuple(
      dataclasses.replace(st, ops=("shift",)) for st in SHIFT.stages))
  assert one.num_archs() == TINY.num_archs()
  # `ops` round-trips; a space without it dumps without it.
  assert "ops" not in TINY.to_dict()["stages"][0]
  assert space.from_dict(SHIFT.to_dict(), path="x").stages == SHIFT.stages


@pytest.mark.parametrize("ops, msg", [
    (["mult", "div"], r"stages\[0\]\.ops\[1\]: 'div' is not allowed; "
     "allowed: mult, shift"),
    ([], r"stages\[0\]\.ops: the list of choices is empty"),
    ("shift", r"stages\[0\]\.ops: must be a list of choices"),
    (["shift", "shift"], r"stages\[0\]\.ops: duplicate choices"),
])
def test_bad_ops_are_one_line_errors(ops, msg):
  d = TINY.to_dict()
  d["stages"][0]["ops"] = ops
  with pytest.raises(errors.SpaceError, match="^f.yaml: " + msg) as e:
    space.from_dict(d, path="f.yaml")
  assert "\n" not in str(e.value)


def test_old_architecture_json_loads_and_mult_choices_write_as_before():
  a = arch.largest(TINY)
  d = arch.to_dict(a)
  assert all("op" not in b for bs in d["blocks"] for b in bs)
  assert arch.from_dict(d) == a
  assert all(b.op == "mult" for bs in a.blocks for b in bs)


def test_arch_learns_ops():
  rng = np.random.default_rng(0)
  archs = [arch.sample(rng, SHIFT) for _ in range(30)]
  ops = {b.op for a in archs for _, _, b in a.active_blocks()}
  assert ops == {"mult", "shift"}
  for a in archs:
    assert arch.from_json(arch.to_json(a)) == a
    spec = arch.decode(SHIFT, a)
    assert [l.op for l in spec.blocks] == [b.op for _, _, b in
                                          a.active_blocks()]
  a = archs[0]
  m = [arch.mutate(rng, SHIFT, a, prob=0.5) for _ in range(20)]
  assert any(x.blocks != a.blocks for x in m)
  # The one-hot encoding has an op gene per block slot (2 options each).
  assert arch.encoding_size(SHIFT) == arch.encoding_size(TINY) + 2 * 5
  big = arch.largest(SHIFT)
  assert all(b.op == "mult" for _, _, b in big.active_blocks())
  shifted = _all_shift(big)
  assert "+sh" in arch.to_string(shifted) and "+sh" not in arch.to_string(big)
  arch.validate(SHIFT, shifted)
  with pytest.raises(errors.SpaceError, match=r"blocks\[0\]\[0\]\.op"):
    arch.validate(TINY, dataclasses.replace(shifted, space="tiny"))


def test_sampling_a_space_without_ops_is_unchanged():
  # Same seed, same draws: an ops list of one option draws nothing.
  a = arch.sample(np.random.default_rng(3), TINY)
  b = arch.sample(np.random.default_rng(3), dataclasses.replace(
      TINY, stages=tuple(dataclasses.replace(st, ops=("mult",))
                         for st in TINY.stages)))
  assert a == b


def _all_shift(a):
  return dataclasses.replace(a, blocks=tuple(
      tuple(dataclasses.replace(b, op="shift") if b.type != "skip" else b
            for b in bs) for bs in a.blocks))


def test_counting_reports_shift_adds_separately():
  big = arch.largest(SHIFT)
  mult = counting.count(arch.decode(SHIFT, big))
  shift = counting.count(arch.decode(SHIFT, _all_shift(big)))
  assert mult.shift_adds == 0 and mult.mult_macs == mult.macs
  assert shift.macs == mult.macs and shift.weights == mult.weights
  # Only the stem, the head and SE multiply in an all-shift network.
  spec = arch.decode(SHIFT, _all_shift(big))
  fixed = sum(counting.layer_counts(l).macs for l in spec.layers
              if l.type in ("conv", "fc"))
  se = sum(counting.layer_counts(dataclasses.replace(
      l, se_channels=0)).macs - counting.layer_counts(l).macs
      for l in spec.blocks)
  assert shift.mult_macs == fixed - se
  l = Layer("ibn", 8, 16, 16, mid_channels=32, kernel=3, op="shift")
  c = counting.layer_counts(l)
  assert c.shift_adds == c.macs == 8 * 8 * (16 * 32 + 9 * 32 + 32 * 16)


def test_netspec_layer_op():
  l = Layer("ibn", 8, 16, 16, mid_channels=32, kernel=3, op="shift")
  assert l.key().endswith("-nores-shift")
  assert l.as_mult().key() == l.key()[:-len("-shift")]
  assert Layer.from_dict(l.to_dict()) == l
  assert "op" not in l.as_mult().to_dict()
  with pytest.raises(errors.SpecError, match="fc: op 'shift' applies to"):
    Layer("fc", 1, 8, 8, op="shift")
  with pytest.raises(errors.SpecError, match="op 'add' is unknown"):
    Layer("conv", 8, 3, 8, op="add")


def test_energy_charges_a_shift_add_for_shift_layers():
  acc = energy.load_accelerator("eyeriss-v1")
  assert acc.op_cost("shift") == pytest.approx(0.127)
  l = Layer("ibn", 16, 16, 16, mid_channels=48, kernel=3, se_channels=16,
            residual=True)
  m = energy.layer_energy(l, acc)
  s = energy.layer_energy(dataclasses.replace(l, op="shift"), acc)
  for lv in ("dram", "glb", "noc", "rf"):
    assert s.by_level_uj[lv] == pytest.approx(m.by_level_uj[lv])
  se_macs = 2 * 16 * 48
  conv_macs = m.macs - se_macs
  unit = acc.mac_pj * 1e-6 * acc.costs["mac"]
  assert s.by_level_uj["mac"] == pytest.approx(
      unit * (se_macs + 0.127 * conv_macs))
  # An accelerator file without a shift energy says how to add it.
  no_shift = energy.accelerator.from_dict({"ops": {"mac": 1}}, path="a.yaml")
  with pytest.raises(energy.AcceleratorError, match="add `ops: {shift:"):
    energy.layer_energy(dataclasses.replace(l, op="shift"), no_shift)


def _latency_table(layers):
  from hwnas.latency import table_schema
  header = table_schema.make_header(
      device="test", backend="xla", runtime="xla", runtime_version="0",
      precision="float32", batch_size=1, threads=1, warmup=0, repeats=1,
      spaces=["tiny_shift@1"], units="ms",
      provenance={"kind": "measured", "command": "test"})
  return tbl.new_table(header, [tbl.Entry(l, 1.0 + i)
                                for i, l in enumerate(layers)])


def test_latency_tables_time_a_shift_layer_as_its_multiply_equivalent():
  mult_layers = sorted(space_layers.enumerate_layers(TINY))
  t = _latency_table(mult_layers)
  a = _all_shift(arch.largest(SHIFT))
  spec = arch.decode(SHIFT, a)
  mult_spec = NetSpec(spec.name, spec.resolution, spec.in_channels,
                      tuple(l.as_mult() for l in spec.layers))
  assert t.predict(spec) == t.predict(mult_spec)
  assert not t.missing(spec.layers)
  fn = space_layers.make_cost_fn(t, SHIFT)
  assert fn(a) == pytest.approx(t.predict(spec))
  assert "multiply equivalents" in t.predict_breakdown(spec)["provenance"]
  assert "multiply" not in t.predict_breakdown(mult_spec)["provenance"]


def test_search_provenance_says_a_latency_table_times_shift_as_mult(
    tmp_path):
  from hwnas import pipeline
  t = _latency_table(sorted(space_layers.enumerate_layers(TINY)))
  path = tmp_path / "t.json"
  t.save(path)
  lines = []

  for sp, name, noted in ((SHIFT, "shift", True), (TINY, "mult", False)):

    def evaluate(archs, sp=sp):   # a cheap stand-in: more MACs, better
      return [counting.count(arch.decode(sp, a)).macs / 1e8
              for a in archs], [{} for _ in archs]

    pipeline.search(sp, tmp_path / name, tables=[str(path)], target_ms=1e9,
                    evaluator=evaluate, budget=10, progress=False,
                    echo=lines.append)
    best = json.loads((tmp_path / name / "best.json").read_text())
    assert ("shift_layers" in best["provenance"]) == noted
    if noted:
      assert "multiply equivalents" in best["provenance"]["shift_layers"]
      assert any("multiply equivalents" in l for l in lines)
  # A table that measured a shift layer itself uses that entry, no note.
  shift_layer = dataclasses.replace(
      sorted(space_layers.enumerate_layers(TINY))[0], op="shift")
  own = _latency_table([shift_layer])
  assert own.latency(shift_layer) == 1.0
  assert not own.shift_as_mult([shift_layer])
  assert t.shift_as_mult([shift_layer])


def test_energy_table_has_shift_entries_and_search_cost_prefers_shift():
  from hwnas.latency import energy_table
  small = dataclasses.replace(SHIFT, resolutions=(24,))
  t = energy_table.make_table(small)
  shift_keys = [k for k in t.entries if k.endswith("-shift")]
  assert shift_keys and len(shift_keys) * 2 < len(t.entries)
  fn = space_layers.make_cost_fn(t, small)
  a = arch.largest(small)
  assert fn(_all_shift(a)) < fn(a)
  assert fn(a) == pytest.approx(t.predict(arch.decode(small, a)))


def test_estimated_edgetpu_table_covers_shift_layers_by_their_mult_entries():
  from hwnas.latency import edgetpu_table
  small = dataclasses.replace(SHIFT, resolutions=(24,))
  t = edgetpu_table.make_table(small)
  assert not any(k.endswith("-shift") for k in t.entries)
  a = arch.largest(small)
  fn = space_layers.make_cost_fn(t, small)
  assert fn(_all_shift(a)) == pytest.approx(fn(a))


def test_cli_shows_ops_and_shift_adds(tmp_path, capsys):
  from hwnas.cli import main as cli_main
  assert cli_main(["space", "show", "tiny_shift"]) == 0
  out = capsys.readouterr().out
  assert "ops" in out and "mult,shift" in out
  assert cli_main(["space", "show", "tiny"]) == 0
  assert "mult" not in capsys.readouterr().out
  f = tmp_path / "a.json"
  f.write_text(arch.to_json(_all_shift(arch.largest(SHIFT))))
  assert cli_main(["arch", "stats", str(f)]) == 0
  assert "are shift-adds" in capsys.readouterr().out


def test_feasibility_genes_have_ops_only_where_offered():
  from hwnas.search import feasibility
  old = feasibility.genes(TINY)
  assert not any(g[-1] == "op" for g in old)
  new = feasibility.genes(SHIFT)
  assert len(new) == len(old) + 5
  a = arch.largest(SHIFT)
  b = feasibility.set_gene(SHIFT, a, ("block", 0, 0, "op"), "shift")
  assert b.blocks[0][0].op == "shift"
  assert any(n.blocks[0][0].op == "shift"
             for n in feasibility.neighbours(SHIFT, a))


def _fixed_ops(stem="shift", head="shift"):
  d = SHIFT.to_dict()
  d["stem"]["op"] = stem
  d["head"]["op"] = head
  return space.from_dict(d, path="f.yaml")


def test_stem_and_head_op_flow_into_the_network_counts_and_energy():
  sp = _fixed_ops()
  assert (sp.stem.ops, sp.head.ops) == (("shift",), ("shift",))
  assert space.from_dict(sp.to_dict(), path="x") == dataclasses.replace(
      sp, path="x")
  # Without them the space dumps as before ops existed.
  assert "op" not in SHIFT.to_dict()["stem"]
  assert "op" not in SHIFT.to_dict()["head"]
  a = arch.largest(sp)        # every block multiplies
  # A fixed op is the space's only choice: every architecture carries it.
  assert (a.stem_op, a.head_op) == ("shift", "shift")
  assert sp.num_archs() == SHIFT.num_archs()
  spec = arch.decode(sp, a)
  convs = [l for l in spec.layers if l.type == "conv"]
  assert [l.op for l in convs] == ["shift", "shift"]
  assert all(l.op == "mult" for l in spec.blocks)
  # The plan the cost functions use builds the same layers.
  assert set(spec.layers) <= space_layers.enumerate_layers(sp)
  c = counting.count(spec)
  assert c.shift_adds == sum(counting.layer_counts(l).macs for l in convs)
  plain = arch.decode(SHIFT, arch.canonicalize(
      SHIFT, dataclasses.replace(a, space=SHIFT.name)))
  acc = energy.load_accelerator("eyeriss-v1")
  e = lambda s: sum(l.total_uj for l in energy.network_energy(s, acc))
  assert e(spec) < e(plain)
  # With only the stem shifting, the head conv multiplies.
  sp_stem = _fixed_ops(head="mult")
  only_stem = arch.decode(sp_stem, arch.canonicalize(sp_stem, a))
  assert [l.op for l in only_stem.layers if l.type == "conv"] == [
      "shift", "mult"]


@pytest.mark.parametrize("part, value, msg", [
    ("stem", "div", r"stem\.op: 'div' is not allowed; allowed: mult, shift"),
    ("head", ["shift"], r"head\.op: .*not allowed"),
])
def test_bad_stem_or_head_op_is_one_line_error(part, value, msg):
  d = TINY.to_dict()
  d[part]["op"] = value
  with pytest.raises(errors.SpaceError, match="^f.yaml: " + msg) as e:
    space.from_dict(d, path="f.yaml")
  assert "\n" not in str(e.value)


def test_head_op_needs_a_head_conv():
  d = TINY.to_dict()
  d["head"] = {"expand_channels": 0, "op": "shift"}
  with pytest.raises(errors.SpaceError,
                     match=r"^f.yaml: head\.op: shift applies to the head's "
                     r"1x1 conv and this head has none"):
    space.from_dict(d, path="f.yaml")
