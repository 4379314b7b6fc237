"""Tests of the Edge TPU cost model (hwnas/edgetpu/cost_model.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from hwnas import arch, counting, errors, references, space
from hwnas.edgetpu import calibration as cal_lib
from hwnas.edgetpu import cost_model as em
from hwnas.edgetpu import published as pub
from hwnas.latency import edgetpu_table as et
from hwnas.latency import describe_missing, load_table
from hwnas.netspec import Layer, NetSpec


def _chain(act_of_block: str, resolution: int = 32) -> NetSpec:
  """stem, three ibn blocks (the middle one with `act_of_block`), head."""
  layers = [Layer("conv", resolution, 3, 16, kernel=3, stride=2,
                  activation="relu")]
  s = resolution // 2
  for i, act in enumerate(("relu", act_of_block, "relu")):
    layers.append(Layer("ibn", s, 16, 16, mid_channels=64, kernel=3,
                        activation=act, residual=True))
  layers += [Layer("pool", s, 16, 16), Layer("fc", 1, 16, 10)]
  return NetSpec(f"chain-{act_of_block}", resolution, 3, tuple(layers))


def test_op_bytes_and_macs_match_counting():
  for name in references.names() + ["vgg16"]:
    spec = pub.spec(name)
    c = counting.count(spec)
    ops = [o for l in spec.layers for o in em.layer_ops(l)]
    assert sum(o.weight_bytes for o in ops) == c.int8_bytes, name
    assert sum(o.macs for o in ops) == c.macs, name


def test_parts_add_up_and_fitting_network_streams_nothing():
  e = em.estimate(pub.spec("mobilenet_v2_1.0"))
  assert e.total_ms == pytest.approx(sum(e.parts().values()), rel=1e-12)
  assert e.streaming_ms == 0 and e.off_chip_bytes == 0
  assert e.on_chip_bytes == counting.count(pub.spec("mobilenet_v2_1.0")
                                           ).int8_bytes
  assert e.compute_ms == pytest.approx(sum(l.compute_ms for l in e.layers))
  # The fast path calibration uses gives the same total, fallback included.
  for spec in (pub.spec("vgg16"), references.mobilenet_v3_small()):
    for link in em.LINKS:
      assert em.total_ms(spec, link=link, clock="std") == pytest.approx(
          em.estimate(spec, link=link, clock="std").total_ms, rel=1e-12)


@pytest.mark.parametrize("link", em.LINKS)
def test_cache_overflow_adds_streamed_bytes_over_bandwidth(link):
  spec = pub.spec("mobilenet_v1_1.0")
  nbytes = counting.count(spec).int8_bytes
  big = dataclasses.replace(em.DEFAULTS, cache_bytes=10 * nbytes)
  small = dataclasses.replace(em.DEFAULTS, cache_bytes=nbytes // 4)
  fit = em.estimate(spec, link=link, params=big)
  over = em.estimate(spec, link=link, params=small)
  streamed = nbytes - nbytes // 4
  bw = small.bandwidth_bytes_per_ms(link)
  assert over.off_chip_bytes == streamed
  assert over.streaming_ms == pytest.approx(streamed / bw, rel=1e-12)
  assert over.total_ms - fit.total_ms == pytest.approx(streamed / bw,
                                                       rel=1e-9)
  assert over.compute_ms == fit.compute_ms


def test_vgg16_is_streaming_bound_at_default_budget():
  spec = pub.spec("vgg16")
  e = em.estimate(spec)
  nbytes = counting.count(spec).int8_bytes
  p = em.DEFAULTS
  assert e.off_chip_bytes == nbytes - p.cache_bytes
  assert e.streaming_ms == pytest.approx(
      (nbytes - p.cache_bytes) / p.bandwidth_bytes_per_ms("usb3"))
  assert e.streaming_ms > 5 * e.compute_ms


def test_hswish_falls_back_to_cpu_from_its_layer_on():
  relu, hsw = _chain("relu"), _chain("hswish")
  a, b = em.estimate(relu), em.estimate(hsw)
  assert a.unmapped == () and a.cpu_fallback_ms == 0
  assert len(b.unmapped) == 1 and "HARD_SWISH" in b.unmapped[0]
  assert [l.on_tpu for l in b.layers] == ["yes", "yes", "partly", "no", "no",
                                          "no"]
  assert b.cpu_fallback_ms > 0 and b.total_ms > a.total_ms
  # The penalty is, per op after the cut, its host time less its Edge TPU
  # time floored at zero, so compute (the per-layer sum a table stores) is
  # unchanged and the term is never negative.
  assert b.compute_ms == pytest.approx(a.compute_ms)
  ops = em.layer_ops(hsw.layers[2])[1:] + tuple(
      o for l in hsw.layers[3:] for o in em.layer_ops(l))
  p = em.DEFAULTS
  expected = sum(max(0.0, o.macs / p.host_macs_per_ms("usb3")
                     - em.op_ms(o, p, "max")) for o in ops)
  assert b.cpu_fallback_ms == pytest.approx(expected, rel=1e-9)


def test_mobilenet_v3_pays_fallback_and_edgetpu_net_does_not():
  v3 = em.estimate(references.mobilenet_v3_large())
  et = em.estimate(references.mobilenet_edgetpu())
  assert v3.cpu_fallback_ms > 3 * v3.compute_ms
  assert et.cpu_fallback_ms == 0 and et.unmapped == ()
  assert v3.total_ms > et.total_ms  # 4.6x fewer MACs, still slower


def _throughput(layer: Layer) -> float:
  macs = sum(o.macs for o in em.layer_ops(layer))
  return macs / em.layer_compute_ms(layer)


def test_fused_blocks_use_the_array_better_than_depthwise():
  # docs/edgetpu.md: depthwise-heavy nets reach ~6% of peak,
  # full/fused-conv nets ~20-25%; Google's EdgeTPU READMEs: fused blocks
  # pay off early (large maps, few channels), less so late.
  def pair(size, c, e):
    kw = dict(mid_channels=c * e, kernel=3, activation="relu", residual=True)
    return (_throughput(Layer("fused_ibn", size, c, c, **kw)),
            _throughput(Layer("ibn", size, c, c, **kw)))
  early_f, early_d = pair(56, 24, 4)
  late_f, late_d = pair(7, 160, 8)
  assert early_f > 2.5 * early_d
  assert late_f / late_d < early_f / early_d
  peak = em.MACS_PER_CYCLE * em.CLOCKS_MHZ["max"] * 1e3
  assert early_d / peak < 0.1 < early_f / peak


def test_channel_padding_penalty():
  # 17 channels pad to 32 lanes: same time as 32 for a 1x1 conv's output.
  a = Layer("conv", 28, 64, 17)
  b = Layer("conv", 28, 64, 32)
  p = dataclasses.replace(em.DEFAULTS, op_overhead_us=0.0,
                          activation_gbs=1e12)
  assert em.layer_compute_ms(a, params=p) == pytest.approx(
      em.layer_compute_ms(b, params=p), rel=1e-9)


def test_std_clock_doubles_mac_time_only():
  spec = pub.spec("mobilenet_v1_1.0")
  p = dataclasses.replace(em.DEFAULTS, op_overhead_us=0.0,
                          activation_gbs=1e12)
  fast = em.estimate(spec, clock="max", params=p)
  slow = em.estimate(spec, clock="std", params=p)
  assert slow.compute_ms == pytest.approx(2 * fast.compute_ms, rel=1e-9)
  assert (slow.fixed_ms, slow.transfer_ms) == (fast.fixed_ms,
                                               fast.transfer_ms)


def test_bad_link_or_clock_is_a_user_error():
  with pytest.raises(errors.HwnasError, match="usb3, usb2, pcie"):
    em.estimate(pub.spec("vgg16"), link="usb4")
  with pytest.raises(errors.HwnasError, match="clock"):
    em.estimate(pub.spec("vgg16"), clock="turbo")


@pytest.fixture(scope="module")
def loo():
  return cal_lib.default_leave_one_out()


def test_leave_one_network_out_error_and_ranking(loo):
  # Every row predicted by a fit that never saw its network (any link,
  # any source): the error a new network should expect.
  assert set(loo.groups) == set(pub.networks(use="fit"))
  assert {r.network for r in loo.rows} == set(pub.networks(use="fit"))
  s = cal_lib.held_out_summary(loo)
  assert s["median_pct"] <= 20
  assert s["worst_pct"] <= 40
  assert s["spearman_no_vgg"] >= 0.8
  assert s["spearman"] >= s["spearman_no_vgg"]   # VGGs make ranking easy
  # The held-out prediction of a row differs from the full fit's.
  full = em.estimate(pub.spec("mobilenet_v2_1.0")).total_ms
  held = [p for r, p in zip(loo.rows, loo.predicted_ms)
          if r.network == "mobilenet_v2_1.0" and r.link == "usb3"
          and r.harness == "python"]
  assert held and all(abs(p / full - 1) > 0.05 for p in held)


def test_leave_one_source_out_error():
  los = cal_lib.leave_one_source_out()
  fit_sources = {r.source for r in pub.rows()}
  assert set(los.groups) == fit_sources and len(fit_sources) >= 4
  s = cal_lib.held_out_summary(los)
  assert s["median_pct"] <= 20
  assert s["worst_pct"] <= 45     # EfficientNet-M / MobileNet v1 on PCIe
  assert s["spearman_no_vgg"] >= 0.8


def test_every_row_names_its_harness_and_source():
  for r in pub.rows(use=None):
    assert r.harness in em.HARNESSES and r.source in pub.SOURCES
    assert r.use in ("fit", "check")
  # Coral's benchmarks page is C++; pycoral's references are Python.
  assert {r.harness for r in pub.rows() if r.source == pub.CORAL_BENCHMARKS
          } == {"cpp"}
  assert {r.harness for r in pub.rows() if r.source == pub.PYCORAL_REF
          } == {"python"}


@pytest.mark.parametrize("link,host", [("usb3", "x86"), ("pcie", "arm"),
                                       ("usb2", "arm")])
def test_harness_adds_the_hosts_python_overhead_only(link, host):
  spec = pub.spec("mobilenet_v1_1.0")
  py = em.estimate(spec, link=link)            # default: what Python sees
  cpp = em.estimate(spec, link=link, harness="cpp")
  assert py.harness == "python" and cpp.harness_ms == 0
  extra = getattr(em.DEFAULTS, f"python_ms_{host}")
  assert py.harness_ms == extra > 0
  assert py.total_ms - cpp.total_ms == pytest.approx(extra, rel=1e-9)
  assert py.compute_ms == cpp.compute_ms and py.fixed_ms == cpp.fixed_ms
  with pytest.raises(errors.HwnasError, match="harness"):
    em.estimate(spec, harness="java")


def test_band_contains_the_estimate_and_the_held_out_misses(loo):
  band = cal_lib.band_from(loo)
  assert band.ratio_low < 1 < band.ratio_high
  assert len(band.refits) == len(pub.networks(use="fit"))
  ratios = loo.ratios()
  # Per-network geometric means of the ratios lie inside the band's ratios.
  for n in pub.networks(use="fit"):
    q = [math.log(x) for r, x in zip(loo.rows, ratios) if r.network == n]
    assert band.ratio_low - 1e-9 <= math.exp(np.mean(q)) <= (
        band.ratio_high + 1e-9)
  spec = pub.spec("efficientnet_edgetpu_S")
  lo, hi = cal_lib.predict_band(spec, band)
  mid = em.estimate(spec).total_ms
  assert lo < mid < hi
  assert lo <= mid * band.ratio_low and hi >= mid * band.ratio_high


def test_extrapolations_are_labelled():
  inside = em.extrapolations(em.estimate(pub.spec("mobilenet_v1_1.0")))
  assert inside == []
  s = space.load("tiny")
  tiny = em.estimate(arch.decode(s, arch.smallest(s)))
  notes = em.explain(tiny)
  assert any("small-network regime" in l for l in notes)
  assert any("MACs" in l and "calibration range" in l for l in notes)
  v3 = em.explain(em.estimate(references.mobilenet_v3_large()))
  assert any("extrapolated: cpu_fallback" in l for l in v3)


def test_calibration_reproduces_defaults():
  cal = cal_lib.calibrate()
  assert "python_ms_x86" in em.FITTED and "python_ms_arm" in em.FITTED
  for name in em.FITTED + ("host_gmacs_x86", "host_gmacs_arm"):
    assert getattr(cal.params, name) == pytest.approx(
        getattr(em.DEFAULTS, name), rel=0.02), name
  assert cal.params.eff_pointwise == cal.params.eff_full  # tied


@pytest.mark.parametrize("link,clock", [("pcie", "std"), ("usb3", "max")])
def test_table_predict_equals_estimate(tmp_path, link, clock):
  s = space.load("tiny")
  t = et.make_table(s, link=link, clock=clock)
  path = tmp_path / "t.json"
  t.save(path)
  loaded = load_table(path)
  rng = np.random.default_rng(0)
  for _ in range(5):
    spec = arch.decode(s, arch.sample(rng, s))
    e = em.estimate(spec, link=link, clock=clock)
    assert t.predict(spec) == pytest.approx(e.total_ms, rel=1e-12)
    assert loaded.predict(spec) == pytest.approx(e.total_ms, rel=1e-5)
    terms = loaded.predict_breakdown(spec)["network_terms_ms"]
    assert set(terms) == {"fixed_ms", "harness_ms", "transfer_ms",
                          "streaming_ms", "cpu_fallback_ms"}
    lo, hi = loaded.predict_band(spec)
    assert lo < loaded.predict(spec) < hi
    assert terms["streaming_ms"] == pytest.approx(e.streaming_ms, rel=1e-9)


@pytest.mark.parametrize("name", ["edgetpu", "mobilenetv3"])
def test_shipped_tables_are_complete_current_and_say_estimated(name):
  t = load_table(f"edgetpu-usb3/{name}")
  s = space.load(name)
  assert t.provenance["kind"] == "estimated"
  assert "hwnas table measure --backend edgetpu" in t.describe()
  assert not describe_missing(t, s)["missing"]
  # The band and what the calibration covered travel with the table.
  rng = t.provenance["calibration"]["range"]
  assert rng["macs"][0] < rng["macs"][1] and rng["resolution"] == [224, 240]
  assert any("cpu_fallback" in x for x in t.provenance["extrapolated"])
  assert t.network_model["params"]["harness"] == "python"
  params = em.EdgeTPUParams.from_dict(t.network_model["params"])
  assert params == em.DEFAULTS, "shipped table is stale: rerun the benchmark"
  spec = arch.decode(s, arch.largest(s))
  assert t.predict(spec) == pytest.approx(em.estimate(spec).total_ms,
                                          rel=1e-5)
  e = et.estimate_for_table(t, spec)
  assert e.total_ms == pytest.approx(t.predict(spec), rel=1e-5)
  lines = em.explain(e)
  assert "hwnas table measure --backend edgetpu" in lines[-1]
  lo, hi = t.predict_band(spec)
  assert lo < t.predict(spec) < hi
  assert t.predict_breakdown(spec)["band_ms"] == (lo, hi)
  if name == "mobilenetv3":  # hswish stem: the rest runs on the host CPU
    terms = t.predict_breakdown(spec)["network_terms_ms"]
    assert terms["cpu_fallback_ms"] > 0     # its size is not validated:
    assert any("extrapolated: cpu_fallback" in l for l in lines)
    assert any("HARD_SWISH" in l for l in lines)
  else:  # the largest edgetpu net overflows the parameter cache
    assert e.off_chip_bytes > 0 and "streamed" in lines[1]


def test_measure_backend_matches_make_table(tmp_path):
  from hwnas.latency import measure
  s = space.load("tiny")
  r = measure.measure_space(s, "edgetpu-model", tmp_path / "m.json",
                            progress=False,
                            backend_options={"link": "usb2"})
  direct = et.make_table(s, link="usb2")
  assert len(r.table) == len(direct)
  spec = arch.decode(s, arch.smallest(s))
  assert r.table.predict(spec) == pytest.approx(direct.predict(spec),
                                                rel=1e-5)
  assert r.table.network_model["params"]["link"] == "usb2"
  assert math.isclose(r.table.predict(spec),
                      em.estimate(spec, link="usb2").total_ms, rel_tol=1e-5)


def test_validate_published_uses_the_tables_settings(tmp_path):
  t = et.make_table(space.load("tiny"), link="pcie", clock="max")
  r = et.validate_published(t)
  assert r["link"] == "pcie" and r["rows"]
  assert all(r_["network"] in pub.networks() for r_ in r["rows"])
  assert r["spearman"] >= 0.9
  assert "hwnas table measure --backend edgetpu" in r["text"][-1]
  other = et.validate_published(link="usb3")
  assert other["rows"] != r["rows"]


def test_old_header_naming_a_module_still_loads(tmp_path):
  # Tables written before `kind` named the model in `name` and a module to
  # import in `module`; they load and predict the same.
  t = load_table("edgetpu-usb3/tiny")
  d = json.loads(json.dumps(t.to_dict()))
  nm = d["header"]["network_model"]
  nm["name"] = nm.pop("kind")
  nm["module"] = "hwnas.latency.edgetpu_model"
  del nm["band"], nm["params"]["harness"]   # as version 1 wrote them
  for k in ("python_ms_x86", "python_ms_arm"):
    del nm["params"][k]
  (tmp_path / "old.json").write_text(json.dumps(d))
  old = load_table(tmp_path / "old.json")
  s = space.load("tiny")
  spec = arch.decode(s, arch.largest(s))
  # Version 1 had no harness term: the same minus the Python overhead.
  want = t.predict(spec) - em.DEFAULTS.python_ms_x86
  assert old.predict(spec) == pytest.approx(want, rel=1e-12)
  assert et.estimate_for_table(old, spec).total_ms == pytest.approx(
      want, rel=1e-5)
  assert old.predict_band(spec) is None
  d["header"]["network_model"] = {"kind": "no-such-model", "params": {}}
  (tmp_path / "bad.json").write_text(json.dumps(d))
  with pytest.raises(errors.HwnasError, match="NETWORK_MODELS"):
    load_table(tmp_path / "bad.json").predict(spec)


def test_arch_stats_shows_band_and_extrapolations(tmp_path, capsys):
  from hwnas.cli import main as cli_main
  s = space.load("tiny")
  a = arch.smallest(s)
  (tmp_path / "a.json").write_text(arch.to_json(a))
  assert cli_main(["arch", "stats", "--arch", str(tmp_path / "a.json"),
                   "--table",
                   "edgetpu-usb3/tiny", "--json"]) == 0
  d = json.loads(capsys.readouterr().out)["latency"]
  t = load_table("edgetpu-usb3/tiny")
  assert d["band_ms"] == pytest.approx(list(t.predict_band(
      arch.decode(s, a))))
  assert d["calibration_range"]["resolution"] == [224, 240]
  assert any("small-network regime" in x for x in d["extrapolated"])
  assert cli_main(["arch", "stats", "--arch", str(tmp_path / "a.json"),
                   "--table",
                   "edgetpu-usb3/tiny"]) == 0
  out = capsys.readouterr().out
  assert "leave-one-out" in out and "! extrapolated:" in out
