"""Tests of the row-stationary energy model and its energy tables."""

import dataclasses
import json

import numpy as np
import pytest

from hwnas import arch, energy, errors, pipeline, space
from hwnas.energy import ConvShape, map_conv
from hwnas.latency import energy_table, load_table, make_cost_fn

ACC = energy.DEFAULT
SPACE = space.load("tiny")


def _levels(ce):
  return {lv: {k: round(v, 6) for k, v in d.items()}
          for lv, d in ce.accesses.items()}


def test_pointwise_conv_counts_by_hand():
  # 1x1 conv, 2 -> 4 channels on 4x4: one strip of 4 columns, every
  # filter (p=4) and channel (q=2) in one PE pass; nothing re-read.
  ce = map_conv(ConvShape(1, 1, 4, 2, 4, 1), ACC)
  m = ce.mapping
  assert (m.p, m.q, m.rc, m.rm, m.strips, m.width) == (4, 2, 1, 1, 1, 4)
  assert ce.macs == 4 * 2 * 16
  assert _levels(ce) == {
      "dram": {"ifmap": 32, "filter": 8, "psum": 64},        # in, w, out
      "glb": {"ifmap": 32 + 32, "filter": 0, "psum": 2 * 64},
      "noc": {"ifmap": 2 * 4 * 4, "filter": 8 * 4, "psum": 64},
      "rf": {"ifmap": 128, "filter": 128, "psum": 256}}
  assert ce.cycles == 4 * 2 * 1 * 4      # p * q * R * E per PE


def test_compression_and_zero_gating_by_hand():
  # Half the ifmap values and a quarter of the ofmap values are zero: RLC
  # sends 4/3 words per non-zero (never more than raw), zero gating skips
  # the filter read, psum update and MAC of each zero ifmap value.
  shape = ConvShape(1, 1, 4, 2, 4, 1, zeros_in=0.5, zeros_out=0.25)
  ce = map_conv(shape, ACC.replace(rlc=True, zero_gating=True))
  assert ce.accesses["dram"] == pytest.approx(
      {"ifmap": 32 * 4 / 3 * 0.5, "filter": 8, "psum": 64})
  assert ce.accesses["rf"] == pytest.approx(
      {"ifmap": 128, "filter": 64, "psum": 128})
  assert ce.energy["mac"] == pytest.approx(64)
  plain = map_conv(shape, ACC)   # both off: the zeros change nothing
  assert plain.accesses["dram"]["ifmap"] == 32
  assert plain.energy["mac"] == 128


def test_depthwise_counts_by_hand_and_its_poor_reuse():
  # 3x3 depthwise over 4 channels of 6x6 (SAME, padded to 8x8): each
  # group is its own 3x6 set, no filter or ifmap shared between groups.
  ce = map_conv(ConvShape(1, 4, 1, 1, 6, 3), ACC)
  assert (ce.mapping.p, ce.mapping.q, ce.mapping.height,
          ce.mapping.width) == (1, 1, 3, 6)
  per_group = {
      "dram": {"ifmap": 36, "filter": 9, "psum": 36},
      "glb": {"ifmap": 8 * 8 + 36, "filter": 0, "psum": 72},
      "noc": {"ifmap": 3 * 6 * 8, "filter": 9 * 6,
              "psum": 36 * 2 + 36},
      "rf": {"ifmap": 324, "filter": 324, "psum": 648}}
  assert _levels(ce) == {lv: {k: 4 * v for k, v in d.items()}
                         for lv, d in per_group.items()}
  # Per MAC, a depthwise conv moves far more data than a full conv of the
  # same output: the energy objective's reason to avoid it.
  full = map_conv(ConvShape(1, 1, 32, 32, 6, 3), ACC)
  assert ce.total / ce.macs > 1.5 * full.total / full.macs


def test_conv_folded_onto_two_strips_counts_by_hand():
  # 20 ofmap rows do not fit 14 columns: two strips of 10, run side by
  # side (the filters are then read from DRAM once, not once per strip).
  ce = map_conv(ConvShape(1, 1, 2, 1, 20, 3), ACC)
  m = ce.mapping
  assert (m.strips, m.width, m.rs, m.p, m.rm) == (2, 10, 2, 2, 1)
  rows = (20 - 2) + 2 * 3                   # ifmap rows over both strips
  assert _levels(ce) == {
      "dram": {"ifmap": 400, "filter": 18, "psum": 800},
      "glb": {"ifmap": 22 * rows + 400, "filter": 0, "psum": 1600},
      "noc": {"ifmap": 3 * 20 * 22, "filter": 18 * 20,
              "psum": 800 * 2 + 800},
      "rf": {"ifmap": 7200, "filter": 7200, "psum": 14400}}
  assert ce.cycles == 2 * 3 * 20
  # Forced to one strip at a time (the chip's 'active PEs'), the filters
  # come from DRAM twice.
  seq = map_conv(ConvShape(1, 1, 2, 1, 20, 3), ACC, pes=3 * 10 * 1)
  assert seq.accesses["dram"]["filter"] == 36


def test_network_macs_equal_counting_and_levels_add_up():
  from hwnas import counting, references
  spec = references.load("mobilenet_v2_1.0", resolution=96)
  layers = energy.network_energy(spec, ACC)
  assert sum(le.macs for le in layers) == counting.macs(spec)
  for le in layers:
    assert le.total_uj == pytest.approx(sum(le.by_level_uj.values()))
    assert all(v >= 0 for v in le.by_level_uj.values())


@pytest.mark.parametrize("level", range(5))
def test_energy_is_monotone_in_each_access_cost(level):
  spec = arch.decode(SPACE, arch.largest(SPACE))
  base = energy.total_uj(spec, ACC)
  cost = list(ACC.cost)
  cost[level] *= 1.5
  more = energy.total_uj(spec, ACC.replace(cost=tuple(cost)))
  assert more > base
  cost[level] = 0.0
  assert energy.total_uj(spec, ACC.replace(cost=tuple(cost))) < base


@pytest.mark.parametrize("text, key", [
    ("pe_rows: 12\nbogus: 1\n", "bogus"),
    ("cost: {rf: 1, noc: 2, glb: 6, dram: -5, mac: 1}\n", "cost.dram"),
    ("rf_words: {filter: 224, ifmap: 12}\n", "rf_words.psum"),
    ("glb_kb: big\n", "glb_kb"),
    ("ops: {shift: 0.3}\n", "ops.mac"),
    ("pe_rows: [12\n", "not valid YAML"),
])
def test_bad_accelerator_file_is_one_clear_line(tmp_path, capsys, text, key):
  from hwnas.cli import main
  f = tmp_path / "acc.yaml"
  f.write_text(text)
  with pytest.raises(errors.HwnasError) as e:
    energy.load_accelerator(f)
  msg = str(e.value)
  assert str(f) in msg and key in msg and "\n" not in msg
  assert main(["table", "energy", "--space", "tiny", "--accelerator",
               str(f), "--out", str(tmp_path / "t.json")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
  """A user's accelerator file (a bigger global buffer) -> its table."""
  from hwnas.cli import main
  d = tmp_path_factory.mktemp("energy")
  (d / "mine.yaml").write_text("name: mine\nglb_kb: 216\n")
  assert main(["table", "energy", "--space", "tiny", "--accelerator",
               str(d / "mine.yaml"), "--out", str(d / "e.json")]) == 0
  return d / "e.json"


def test_table_round_trips_and_predicts_like_the_model(table_path):
  t = load_table(table_path)
  assert t.units == "uJ" and t.cost_name == "energy_uj"
  acc = energy_table.accelerator_of(t)
  assert acc.glb_kb == 216 and acc.name == "mine"
  assert t.provenance["accelerator_sha256"] == acc.sha256()
  fn = make_cost_fn(t, SPACE)
  rng = np.random.default_rng(0)
  for _ in range(5):
    a = arch.sample(rng, SPACE)
    spec = arch.decode(SPACE, a)
    assert fn(a) == pytest.approx(energy.total_uj(spec, acc), rel=1e-5)
    b = energy_table.breakdown(t, spec)
    assert sum(b["by_level_uj"].values()) == pytest.approx(b["total_uj"],
                                                           rel=1e-4)
  saved = json.loads(table_path.read_text())
  entry = next(iter(saved["entries"].values()))
  assert "energy_uj" in entry and "latency_ms" not in entry


def _toy(archs):
  return ([0.5 + 0.01 * sum(a.widths) + 0.02 * (a.resolution == 32)
           for a in archs], [{} for _ in archs])


@pytest.fixture
def cheap_evaluator(monkeypatch):
  """The search's evaluator replaced by a toy accuracy (no training)."""
  monkeypatch.setattr(pipeline, "_evaluator", lambda *a, **k: _toy)
  monkeypatch.setattr(pipeline, "_evaluator_source",
                      lambda *a, **k: {"toy": "energy_test"})


def test_search_with_an_energy_target_end_to_end(table_path, tmp_path,
                                                 cheap_evaluator):
  from hwnas.cli import main
  lo = min(make_cost_fn(load_table(table_path), SPACE)(
      arch.sample(np.random.default_rng(i), SPACE)) for i in range(50))
  target = 1.3 * lo
  assert main(["search", "--space", "tiny", "--table", "xla/tiny",
               "--table", str(table_path), "--target-uj", f"{target}",
               "--target-ms", "100", "--budget", "24", "--population", "8",
               "--workdir", str(tmp_path / "s"), "--no-progress"]) == 0
  best = json.loads((tmp_path / "s" / "best.json").read_text())
  assert best["costs"]["energy_uj"] <= target
  assert set(best["costs"]) == {"latency_ms", "energy_uj"}
  rows = [json.loads(l) for l in
          (tmp_path / "s" / "history.jsonl").read_text().splitlines()]
  evaluated = [r for r in rows if "costs" in r]
  assert evaluated and all(r["costs"]["energy_uj"] <= target
                           for r in evaluated)


def test_latency_energy_pareto_front_end_to_end(table_path, tmp_path,
                                                cheap_evaluator):
  from hwnas.cli import main
  assert main(["search", "--space", "tiny", "--table", str(table_path),
               "--table", "xla/tiny", "--objective", "pareto", "--budget",
               "24", "--population", "8", "--workdir", str(tmp_path / "p"),
               "--no-progress"]) == 0
  front = json.loads((tmp_path / "p" / "pareto.json").read_text())
  pts = [(r["accuracy"], r["costs"]["energy_uj"], r["costs"]["latency_ms"])
         for r in front["front"]]
  assert len(pts) >= 2
  for a in pts:   # no point of the front dominates another
    for b in pts:
      assert not (b != a and b[0] >= a[0] and b[1] <= a[1] and b[2] <= a[2]
                  and (b[0] > a[0] or b[1] < a[1] or b[2] < a[2]))
  assert (tmp_path / "p" / "pareto.png").stat().st_size > 0


def test_reward_multiplies_a_term_per_target():
  from hwnas.search import objectives
  obj = objectives.make("reward", ["latency_ms", "energy_uj"],
                        {"latency_ms": 2.0, "energy_uj": 100.0})
  got = objectives.fitness(obj, 0.8, {"latency_ms": 4.0, "energy_uj": 50.0})
  assert got == pytest.approx(0.8 * 2 ** -0.07 * 0.5 ** -0.07)


def test_cli_shows_and_breaks_down_a_shipped_energy_table(tmp_path, capsys):
  from hwnas.cli import main
  assert main(["table", "show"]) == 0
  assert "energy/tiny" in capsys.readouterr().out.split()
  f = tmp_path / "a.json"
  f.write_text(arch.to_json(arch.largest(SPACE), space=SPACE))
  assert main(["arch", "stats", str(f), "--json", "--table",
               "energy/tiny"]) == 0
  out = json.loads(capsys.readouterr().out)
  e = out["energy"]
  assert set(e["by_level_uj"]) == {"dram", "glb", "noc", "rf", "mac"}
  assert len(e["layers"]) == len(out["layers"])
  assert e["total_uj"] == pytest.approx(sum(r["uj"] for r in e["layers"]))
  # Export compares measured latency with a table: an energy table is
  # refused in one line.
  from hwnas.export import writer
  with pytest.raises(errors.HwnasError, match="energy table"):
    writer._load_table("energy/tiny")
