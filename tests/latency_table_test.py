"""Tests of the latency-table format, prediction, coverage and OFA import."""

import dataclasses
import json
import math

import numpy as np
import pytest

from hwnas import arch, errors, space
from hwnas import latency
from hwnas.latency import (Entry, describe_missing, enumerate_layers,
                           load_table, make_cost_fn, make_header, new_table)
from hwnas.netspec import Layer, NetSpec


def _header(**kw):
  base = dict(device="test-cpu", backend="xla", runtime="jax",
              runtime_version="0", precision="float32", batch_size=1,
              threads=1, warmup=0, repeats=0, spaces=["tiny@1"],
              provenance={"kind": "estimated", "model": "toy"})
  base.update(kw)
  return make_header(**base)


def _toy_spec():
  layers = (Layer("conv", 8, 3, 8, kernel=3, stride=2, activation="relu"),
            Layer("ibn", 4, 8, 8, mid_channels=16, kernel=3,
                  activation="relu", residual=True),
            Layer("pool", 4, 8, 8),
            Layer("fc", 1, 8, 10))
  return NetSpec("toy", 8, 3, layers)


def _toy_table(tmp_path, **header):
  spec = _toy_spec()
  ms = [0.5, 1.25, 0.125, 0.0625]
  t = new_table(_header(**header),
                [Entry(l, m, m * 0.9, m * 1.1, 7) for l, m in
                 zip(spec.layers, ms)], tmp_path / "toy.json")
  t.save()
  return t, spec, ms


def _full_table(s, rng, layers=None):
  layers = enumerate_layers(s) if layers is None else layers
  return new_table(_header(spaces=[s.id]),
                   [Entry(l, float(rng.uniform(0.01, 2.0))) for l in layers])


def test_predict_is_hand_computed_sum(tmp_path):
  t, spec, ms = _toy_table(tmp_path)
  loaded = load_table(tmp_path / "toy.json")
  assert loaded.predict(spec) == pytest.approx(sum(ms))
  assert loaded.entries[spec.layers[1].key()].count == 7


def test_calibration_and_network_model_terms(tmp_path, monkeypatch):
  monkeypatch.setitem(
      latency.NETWORK_MODELS, "test-constant", latency.NetworkModel(
          lambda spec, p: {"io": p["io_ms"],
                           "per_layer": p["k"] * len(spec.layers)}))
  t, spec, ms = _toy_table(
      tmp_path, calibration={"type": "linear", "a": 2.0, "b": 0.5},
      network_model={"kind": "test-constant", "version": "1",
                     "params": {"io_ms": 0.25, "k": 0.01}})
  loaded = load_table(tmp_path / "toy.json")
  want = 2.0 * sum(ms) + 0.5 + 0.25 + 0.01 * 4
  assert loaded.predict(spec) == pytest.approx(want)
  bd = loaded.predict_breakdown(spec)
  assert bd["total_ms"] == pytest.approx(want)
  assert bd["network_terms_ms"] == pytest.approx({"io": 0.25,
                                                  "per_layer": 0.04})


def test_missing_entries_raise_one_error_listing_all(tmp_path):
  t, spec, _ = _toy_table(tmp_path)
  partial = new_table(t.header, [e for e in t.entries.values()
                                 if e.layer.type not in ("ibn", "fc")])
  with pytest.raises(errors.HwnasError) as e:
    partial.predict(spec)
  msg = str(e.value)
  assert spec.layers[1].key() in msg and spec.layers[3].key() in msg
  assert "2 signature(s) missing" in msg and "\n" not in msg


def _write(tmp_path, d):
  p = tmp_path / "bad.json"
  p.write_text(json.dumps(d))
  return p


@pytest.mark.parametrize("mutate,needle", [
    (lambda d, k: d["entries"][k].pop("latency_ms"), "latency_ms: missing"),
    (lambda d, k: d["entries"][k].update(latency_ms=-1.0), "negative"),
    (lambda d, k: d["entries"][k].update(latency_ms="fast"),
     "must be a number"),
    (lambda d, k: d["header"].update(units="us"), "header.units"),
    (lambda d, k: d.update(schema="hwnas/latency-table@9"),
     "unknown schema version"),
    (lambda d, k: d["header"].pop("device"), "header.device"),
    (lambda d, k: d["entries"][k]["layer"].update(kernel=5),
     "does not match its layer"),
    (lambda d, k: d["header"]["provenance"].update(kind="guessed"),
     "provenance.kind"),
])
def test_schema_errors_name_file_and_key(tmp_path, mutate, needle):
  t, spec, _ = _toy_table(tmp_path)
  d = t.to_dict()
  key = spec.layers[1].key()
  mutate(d, key)
  p = _write(tmp_path, d)
  with pytest.raises(errors.HwnasError) as e:
    load_table(p)
  msg = str(e.value)
  assert str(p) in msg and needle in msg and "\n" not in msg
  if "entries" in needle or needle in ("negative", "must be a number"):
    assert key in msg


def test_save_load_round_trip_and_csv(tmp_path):
  t, spec, _ = _toy_table(tmp_path)
  loaded = load_table(tmp_path / "toy.json")
  assert loaded.to_dict() == t.to_dict()
  csv_text = loaded.to_csv()
  rows = [r for r in csv_text.splitlines() if not r.startswith("#")]
  assert rows[0].startswith("key,type,input_size")
  assert len(rows) == 1 + len(spec.layers)


def test_shipped_names_resolve_in_subfolders(tmp_path, monkeypatch):
  t, spec, _ = _toy_table(tmp_path)
  root = tmp_path / "tables"
  t.save(root / "mydevice" / "toy.json")
  monkeypatch.setenv("HWNAS_LATENCY_TABLES", str(root))
  assert load_table("mydevice/toy").predict(spec) == t.predict(spec)
  assert load_table("toy").predict(spec) == t.predict(spec)
  with pytest.raises(errors.HwnasError, match="mydevice/toy"):
    load_table("nonexistent")


def test_describe_names_provenance(tmp_path):
  t, _, _ = _toy_table(tmp_path, provenance={"kind": "estimated",
                                             "model": "edgetpu-model",
                                             "version": "1"})
  assert "estimated by edgetpu-model v1" in t.describe()
  assert "hwnas table measure --backend edgetpu" in t.describe()


@pytest.mark.parametrize("name", ["tiny", "mobilenetv3", "edgetpu"])
def test_enumerated_layers_cover_every_decoded_network(name):
  s = space.load(name)
  layers = enumerate_layers(s)
  rng = np.random.default_rng(1)
  seen = set()
  for _ in range(200):
    seen.update(arch.decode(s, arch.sample(rng, s)).layers)
  for f in (arch.largest, arch.smallest):
    seen.update(arch.decode(s, f(s)).layers)
  assert seen <= layers
  assert len(layers) == len({l.key() for l in layers})


@pytest.mark.parametrize("name", ["tiny", "mobilenetv3", "edgetpu"])
def test_cost_fn_equals_predict_of_decoded_spec(name):
  s = space.load(name)
  rng = np.random.default_rng(2)
  t = _full_table(s, rng)
  t = t.with_header(calibration={"type": "linear", "a": 1.1, "b": 0.3,
                                 "c_per_layer": -0.01})
  cost = make_cost_fn(t, s)
  for _ in range(200):
    a = arch.sample(rng, s)
    assert cost(a) == pytest.approx(t.predict(arch.decode(s, a)), rel=1e-12)


def test_cost_fn_missing_entry_is_clear_error():
  s = space.load("tiny")
  rng = np.random.default_rng(3)
  a = arch.largest(s)
  drop = arch.decode(s, a).layers[2]
  t = _full_table(s, rng, enumerate_layers(s) - {drop})
  with pytest.raises(errors.HwnasError, match=drop.key()):
    make_cost_fn(t, s)(a)


def test_coverage_check_finds_missing_entry():
  s = space.load("tiny")
  rng = np.random.default_rng(4)
  layers = sorted(enumerate_layers(s))
  dropped = [l for l in layers if l.type == "fused_ibn" and l.se_channels][0]
  t = _full_table(s, rng, set(layers) - {dropped})
  cov = describe_missing(t, s)
  assert cov["total"] == len(layers) and cov["covered"] == len(layers) - 1
  assert list(cov["missing"]) == [dropped.key()]
  origins = cov["missing"][dropped.key()]
  assert origins and all("fused_ibn" in o and " se " in o for o in origins)
  assert describe_missing(_full_table(s, rng), s)["missing"] == {}


def test_table_network_model_unknown_is_clear(tmp_path):
  t, spec, _ = _toy_table(tmp_path, network_model={"name": "no-such-model",
                                                   "params": {}})
  with pytest.raises(errors.HwnasError, match="no-such-model"):
    t.predict(spec)
  assert math.isfinite(t.layer_sum(spec))


def test_ofa_import_maps_sample_file():
  from hwnas.latency.ofa_import import import_ofa
  s = space.load("mobilenetv3")
  r = import_ofa("tests/testdata/ofa_sample.yaml", s)
  assert r.total == 14 and len(r.unmapped) == 3 and not r.unreachable
  assert "idskip" in r.unmapped[
      "expanded_conv-input:14x14x80-output:14x14x80-expand:6-kernel:3-"
      "stride:1-idskip:0-se:0-hs:1"]
  t = r.table
  assert t.provenance["kind"] == "imported" and t.header["statistic"] == "mean"
  # ProxylessNAS-style key (no se:/hs:): SE and activation from the stage.
  e = t.entries["ibn-i64x64x16-o24-m64-k5-s2-se0-relu-nores"]
  assert e.latency_ms == 1.7 and e.count == 50
  # se:1 hs:1, and `expand` given as mid channels (960).
  assert t.entries["ibn-i4x4x160-o160-m960-k5-s1-se240-hswish-res"
                   ].latency_ms == 0.7
  assert t.entries["ibn-i32x32x24-o40-m144-k7-s2-se40-relu-nores"
                   ].latency_ms == 1.1
  assert t.entries["fc-i1x1x1280-o1000-none"].latency_ms == 0.28
  # Every mapped signature is one the space really produces.
  assert set(t.entries) <= {l.key() for l in enumerate_layers(s)}


def test_arch_stats_prints_table_prediction(tmp_path, capsys):
  from hwnas.cli import main as cli_main
  s = space.load("tiny")
  t = _full_table(s, np.random.default_rng(5))
  t = t.with_header(calibration={"type": "linear", "a": 1.5, "b": 0.25})
  t.save(tmp_path / "t.json")
  a = arch.smallest(s)
  (tmp_path / "a.json").write_text(arch.to_json(a))
  assert cli_main(["arch", "stats", "--arch", str(tmp_path / "a.json"),
                   "--table",
                   str(tmp_path / "t.json"), "--json"]) == 0
  d = json.loads(capsys.readouterr().out)
  # Saved entries keep 6 significant digits: predict with the saved table.
  want = load_table(tmp_path / "t.json").predict(arch.decode(s, a))
  assert d["latency"]["total_ms"] == pytest.approx(want)
  assert cli_main(["arch", "stats", "--arch", str(tmp_path / "a.json"),
                   "--table",
                   str(tmp_path / "t.json")]) == 0
  out = capsys.readouterr().out
  assert f"{want:.3f} ms" in out and "calibrated" in out


@pytest.mark.parametrize("name", ["tiny", "mobilenetv3", "edgetpu"])
def test_cost_fn_with_network_model_equals_predict(name, monkeypatch):
  monkeypatch.setitem(
      latency.NETWORK_MODELS, "test-spec-terms", latency.NetworkModel(
          lambda spec, p: {
              "per_layer": p["k"] * len(spec.layers),
              "res": 1e-3 * spec.resolution,
              "mid": 1e-5 * sum(l.mid_channels for l in spec.layers)}))
  s = space.load(name)
  rng = np.random.default_rng(6)
  t = _full_table(s, rng).with_header(
      network_model={"kind": "test-spec-terms", "params": {"k": 0.01}})
  cost = make_cost_fn(t, s)
  for _ in range(100):
    a = arch.sample(rng, s)
    assert cost(a) == pytest.approx(t.predict(arch.decode(s, a)), rel=1e-12)
  with pytest.raises(errors.HwnasError):
    cost(dataclasses.replace(a, resolution=999))


def test_cost_fn_rejects_arch_of_other_space():
  s, other = space.load("tiny"), space.load("mobilenetv3")
  t = _full_table(s, np.random.default_rng(7))
  with pytest.raises(errors.HwnasError):
    make_cost_fn(t, s)(arch.smallest(other))
