"""The energy model on rectangular shapes: 1-D (time-series) layers, and
square 2-D layers exactly as before the generalisation."""

import json
import pathlib

import numpy as np
import pytest

from hwnas import arch, counting, energy, pipeline, space
from hwnas.energy import ConvShape, map_conv
from hwnas.energy.network import layer_convs, layer_energy
from hwnas.latency import load_table, make_cost_fn
from hwnas.netspec import Layer

ACC = energy.DEFAULT
MICRO = "tests/testdata/micro1d.yaml"


def _levels(ce):
  return {lv: {k: round(v, 6) for k, v in d.items()}
          for lv, d in ce.accesses.items()}


def _6g(x):
  return float(f"{x:.6g}")


@pytest.mark.parametrize("name", ["tiny", "mobilenetv3"])
def test_square_layers_give_the_shipped_tables_numbers(name):
  # The shipped tables were made by the square-only model: every level,
  # the cycles and the MACs of every 7th entry come out the same (the
  # tables store 6 significant digits).
  saved = json.loads(
      pathlib.Path(f"latency_tables/energy/{name}.json").read_text())
  entries = sorted(saved["entries"].items())[::7]
  assert len(entries) > 50
  for key, entry in entries:
    layer = Layer.from_dict(entry["layer"])
    assert layer.key() == key and layer.dims == 2
    le = layer_energy(layer, ACC)
    assert _6g(le.total_uj) == entry["energy_uj"], key
    assert le.to_extras() == entry["extras"], key


def test_a_kernel_taller_than_the_array_counts_its_taps_per_cycle():
  # 13 x 13 on 12 PE rows: two row folds of 7 and 6 rows; each PE runs
  # 13 taps over the 14-wide row per fold. (The square-only model counted
  # set rows instead of taps here, a utilisation above 1.)
  ce = map_conv(ConvShape(1, 1, 1, 1, 14, 13), ACC)
  assert (ce.mapping.row_folds, ce.mapping.height) == (2, 7)
  assert ce.cycles == 2 * 13 * 14
  assert 0 < ce.utilisation <= 1


def test_1d_conv_counts_by_hand():
  # 1-D conv 2 -> 4 channels over T = 8 with 3 taps (SAME: padded to 10).
  # A set is one PE (R = E = 1); the cheapest mapping keeps all 4 filters
  # and both channels in that PE (p*q*S = 24 filter words, q*S = 6 ifmap).
  shape = ConvShape(1, 1, 4, 2, 1, 1, w=8, s=3)
  assert (shape.e, shape.f, shape.padded_w) == (1, 8, 10)
  ce = map_conv(shape, ACC)
  m = ce.mapping
  assert (m.height, m.width, m.strips, m.p, m.q, m.rc, m.rm) == (
      1, 1, 1, 4, 2, 1, 1)
  assert ce.macs == 4 * 2 * 8 * 3
  assert _levels(ce) == {
      "dram": {"ifmap": 16, "filter": 24, "psum": 32},      # in, w, out
      "glb": {"ifmap": 2 * 10 + 16, "filter": 0, "psum": 2 * 32},
      "noc": {"ifmap": 2 * 10, "filter": 24, "psum": 32},
      "rf": {"ifmap": 192, "filter": 192, "psum": 384}}
  assert ce.cycles == 4 * 2 * 3 * 8           # p * q * S * F in one PE


def test_1d_depthwise_stride_2_counts_by_hand():
  # 3 groups, 5 taps, stride 2 over T = 8: F = 4, padded row 3*2 + 5 = 11.
  # Each group is its own one-PE set; the three run side by side.
  ce = map_conv(ConvShape(1, 3, 1, 1, 1, 1, 2, w=8, s=5), ACC)
  assert (ce.mapping.rg, ce.mapping.p, ce.mapping.q) == (3, 1, 1)
  per_group = {
      "dram": {"ifmap": 8, "filter": 5, "psum": 4},
      "glb": {"ifmap": 11 + 8, "filter": 0, "psum": 8},
      "noc": {"ifmap": 11, "filter": 5, "psum": 4},
      "rf": {"ifmap": 20, "filter": 20, "psum": 40}}
  assert _levels(ce) == {lv: {k: 3 * v for k, v in d.items()}
                         for lv, d in per_group.items()}
  assert ce.cycles == 5 * 4


def test_1d_macs_equal_counting_for_every_layer():
  for name in ("har", MICRO):
    s = space.load(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
      spec = arch.decode(s, arch.sample(rng, s))
      assert spec.dims == 1
      for le in energy.network_energy(spec, ACC):
        assert le.macs == counting.layer_counts(le.layer).macs, le.layer.key()


def test_1d_element_wise_traffic_uses_t_positions():
  pool = Layer("pool", 24, 16, 16, dims=1)
  assert layer_convs(pool) == ([], 24.0 * 16)
  ibn = Layer("ibn", 12, 16, 16, 32, kernel=3, se_channels=8,
              activation="relu", residual=True, dims=1)
  convs, extra = layer_convs(ibn)
  assert extra == 2 * 32 * 12 + 16 * 12       # SE pool + gate, residual
  dw = dict(convs)["depthwise"]
  assert (dw.g, dw.h, dw.r, dw.w, dw.s, dw.f) == (32, 1, 1, 12, 3, 12)


def test_1d_energy_grows_with_length_and_taps():
  def uj(t, k, typ="conv"):
    mid = dict(mid_channels=32) if typ == "ibn" else {}
    return layer_energy(Layer(typ, t, 16, 16, kernel=k, activation="relu",
                              dims=1, **mid), ACC).total_uj
  for typ in ("conv", "ibn"):
    by_t = [uj(t, 5, typ) for t in (16, 32, 64, 128)]
    by_k = [uj(64, k, typ) for k in (3, 5, 7, 9)]
    assert by_t == sorted(set(by_t)) and by_k == sorted(set(by_k)), typ


def test_shipped_har_table_predicts_like_the_model():
  t = load_table("energy/har")
  assert t.units == "uJ" and t.provenance["command"] == (
      "hwnas table energy --space har")
  s = space.load("har")
  fn = make_cost_fn(t, s)
  rng = np.random.default_rng(1)
  for _ in range(5):
    a = arch.sample(rng, s)
    assert fn(a) == pytest.approx(
        energy.total_uj(arch.decode(s, a), ACC), rel=1e-5)


def _toy(archs):
  return [0.5 + 0.01 * sum(a.widths) for a in archs], [{} for _ in archs]


def test_search_a_1d_space_under_an_energy_target(tmp_path, monkeypatch):
  from hwnas.cli import main  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(pipeline, "_evaluator", lambda *a, **k: _toy)
  monkeypatch.setattr(pipeline, "_evaluator_source",
                      lambda *a, **k: {"toy": "energy_1d_test"})
  table = tmp_path / "e.json"
  assert main(["table", "energy", "--space", MICRO, "--out",
               str(table)]) == 0
  s = space.load(MICRO)
  fn = make_cost_fn(load_table(table), s)
  costs = sorted(fn(arch.sample(np.random.default_rng(i), s))
                 for i in range(40))
  target = costs[len(costs) // 2]
  assert main(["search", "--space", MICRO, "--table", str(table),
               "--target-uj", f"{target}", "--budget", "16",
               "--population", "8", "--workdir", str(tmp_path / "s"),
               "--no-progress"]) == 0
  best = json.loads((tmp_path / "s" / "best.json").read_text())
  assert 0 < best["costs"]["energy_uj"] <= target
