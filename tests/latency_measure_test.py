"""Tests of latency measurement (xla, litert-int8), resume, fidelity, CLI."""

import dataclasses
import json
import time

import numpy as np
import pytest

from hwnas import errors, space
from hwnas.cli import main as cli_main
from hwnas.latency import (describe_missing, enumerate_layers, fidelity,
                           load_table, measure)
from hwnas.latency import get_backend


def _small_tiny():
  """The tiny space cut to one resolution and few choices (~10 layers)."""
  s = space.load("tiny")
  s1, s2 = s.stages
  s1 = dataclasses.replace(s1, widths=(16,), depths=(1,), types=("ibn",),
                           kernels=(3,), expansions=(2,))
  s2 = dataclasses.replace(s2, widths=(24,), depths=(1, 2),
                           types=("ibn", "fused_ibn", "skip"), kernels=(3,),
                           expansions=(2,), se=(False,),
                           activations=("relu",))
  return dataclasses.replace(s, resolutions=(24,), stages=(s1, s2))


FAST = dict(warmup=1, repeats=3, rounds=3, progress=False)


@pytest.fixture(scope="module")
def small_xla(tmp_path_factory):
  """(space, path) of an xla table of `_small_tiny()`, measured once per
  module; tests read it and write elsewhere."""
  s = _small_tiny()
  out = tmp_path_factory.mktemp("small_xla") / "xla.json"
  measure.measure_space(s, "xla", out, **FAST)
  return s, out


@pytest.mark.slow
def test_xla_measure_complete_and_resume_remeasures_nothing(tmp_path):
  s = _small_tiny()
  out = tmp_path / "xla.json"
  n = len(enumerate_layers(s))
  first = measure.measure_space(s, "xla", out, max_entries=3, **FAST)
  assert first.table is None and first.measured == 3
  assert first.remaining == n - 3 and not out.exists()
  # A run killed while writing leaves a cut last line: it is ignored.
  with open(measure.journal_path(out), "a") as f:
    f.write('{"key": "conv-i24x24x3-o16')
  second = measure.measure_space(s, "xla", out, **FAST)
  assert second.reused == 3 and second.measured == n - 3
  t = load_table(out)
  assert len(t) == n and describe_missing(t, s)["missing"] == {}
  assert t.header["backend"] == "xla" and t.provenance["kind"] == "measured"
  assert t.header["repeats"] == 3 and t.header["rounds"] == 3
  assert "load average" in t.header["load"]
  assert all(e.count == 3 and e.latency_ms > 0 and
             e.p10_ms <= e.latency_ms <= e.p90_ms
             for e in t.entries.values())
  assert not measure.journal_path(out).exists()
  # Everything measured: a rerun reuses the table and measures nothing.
  third = measure.measure_space(s, "xla", out, **FAST)
  assert third.measured == 0 and third.reused == n


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path):
  s = _small_tiny()
  out = tmp_path / "t.json"
  measure.measure_space(s, "xla", out, max_entries=1, **FAST)
  with pytest.raises(errors.HwnasError, match="repeats"):
    measure.measure_space(s, "xla", out, warmup=1, repeats=5,
                          progress=False)


@pytest.mark.slow
def test_litert_int8_measure_produces_complete_table(tmp_path):
  s = _small_tiny()
  out = tmp_path / "int8.json"
  r = measure.measure_space(s, "litert-int8", out, **FAST)
  t = load_table(out)
  assert r.measured == len(t) == len(enumerate_layers(s))
  assert describe_missing(t, s)["missing"] == {}
  assert t.header["precision"] == "int8"
  assert "ai-edge-litert" in t.header["runtime_version"]


@pytest.mark.slow
def test_validate_reports_and_stores_calibration(tmp_path, small_xla):
  s, path = small_xla
  t = load_table(path)
  out = tmp_path / "calibrated.json"
  rep = fidelity.validate(t, s, 4, rng=np.random.default_rng(0), warmup=1,
                          repeats=3, fit_calibration=True,
                          plot_path=str(tmp_path / "f.png"))
  assert len(rep.measured) == 4 and all(m > 0 for m in rep.measured)
  assert 0 <= rep.metrics["within_10_pct"] <= 100
  assert (tmp_path / "f.png").stat().st_size > 1000
  stored = fidelity.store(t, rep)
  stored.save(out)
  again = load_table(out)
  # Stored only when it does not hurt the held-out half (else said why).
  why = fidelity.calibration_harm(rep)
  assert (again.calibration is None) == (why is not None)
  assert again.header["fidelity"].get("calibration_refused") == why
  assert again.header["fidelity"]["samples"] == 4
  assert "MAPE" in fidelity.format_report(rep)


def test_metrics_match_hand_computation():
  m = fidelity.metrics([1.0, 2.15, 2.9, 4.5], [1.0, 2.0, 3.0, 4.0])
  assert m["mape_pct"] == pytest.approx(100 * (0 + .075 + 1 / 30 + .125) / 4)
  assert m["within_10_pct"] == pytest.approx(75.0)
  assert m["within_5_pct"] == pytest.approx(50.0)
  assert m["kendall_tau"] == pytest.approx(1.0)


def test_calibration_fit_recovers_a_linear_law():
  rng = np.random.default_rng(0)
  sums = rng.uniform(1, 10, 20)
  layers = rng.integers(8, 20, 20)
  measured = 0.8 * sums + 0.5 - 0.02 * layers
  cal = fidelity.fit_linear_calibration(sums, layers, measured)
  assert cal["a"] == pytest.approx(0.8) and cal["b"] == pytest.approx(0.5)
  assert cal["c_per_layer"] == pytest.approx(-0.02)


def test_edgetpu_backend_without_compiler_stops_at_once(monkeypatch):
  monkeypatch.setenv("PATH", "/nonexistent")
  t0 = time.perf_counter()
  with pytest.raises(errors.HwnasError) as e:
    get_backend("edgetpu")
  assert time.perf_counter() - t0 < 5
  assert "edgetpu_compiler" in str(e.value) and "apt" in str(e.value)


def test_unknown_backend_lists_choices():
  with pytest.raises(errors.HwnasError, match="litert-int8"):
    get_backend("tpu-v9")


def test_cli_check_and_import(tmp_path, capsys):
  out = tmp_path / "ofa.json"
  assert cli_main(["table", "import", "--from", "ofa",
                   "tests/testdata/ofa_sample.yaml", "--space",
                   "mobilenetv3", "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "11 entries mapped from 14 keys" in printed
  assert printed.count("not mapped:") == 3
  assert cli_main(["table", "check", "--table", str(out), "--space",
                   "mobilenetv3", "--json"]) == 1
  cov = json.loads(capsys.readouterr().out)
  assert cov["covered"] == 11 and len(cov["missing"]) == cov["total"] - 11
  assert cli_main(["table", "show", str(out)]) == 0
  assert "imported from" in capsys.readouterr().out
  assert cli_main(["table", "check", "--table", str(tmp_path / "none.json"),
                   "--space", "tiny"]) == 2


_FAKE_LOG = """\
Edge TPU Compiler version 16.0.384591198
Model compiled successfully in 35 ms.
Input model: layer.tflite
Input size: 20.00KiB
Output model: layer_edgetpu.tflite
Output size: 60.00KiB
On-chip memory used for caching model parameters: 18.50KiB
On-chip memory remaining for caching model parameters: 7.90MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 5
Operation log: layer_edgetpu.log

Operator                       Count      Status

CONV_2D                        2          Mapped to Edge TPU
HARD_SWISH                     1          Operation is working on an unsupported data type
DEPTHWISE_CONV_2D              1          Mapped to Edge TPU
Compilation succeeded!
"""


def test_edgetpu_compile_step_records_memory_and_mapping(tmp_path,
                                                         monkeypatch):
  from hwnas.latency import backends
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "log.txt").write_text(_FAKE_LOG)
  fake = bin_dir / "edgetpu_compiler"
  # Mimics the compiler's interface: -s -o OUTDIR MODEL; writes
  # OUTDIR/<stem>_edgetpu.tflite and prints its report.
  fake.write_text(
      "#!/bin/sh\nout=$3; model=$4; stem=$(basename \"$model\" .tflite)\n"
      f"cp \"$model\" \"$out/${{stem}}_edgetpu.tflite\"\ncat {bin_dir}/log.txt\n")
  fake.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
  work = tmp_path / "work"
  work.mkdir()
  compiled, extras, version = backends.compile_for_edgetpu(
      b"TFL3-bytes", str(work), "layer")
  assert compiled == b"TFL3-bytes" and version == "16.0.384591198"
  assert extras["on_chip_bytes"] == round(18.5 * 1024)
  assert extras["off_chip_bytes"] == 0
  assert extras["all_ops_mapped"] is False
  assert extras["unmapped_ops"] == ["HARD_SWISH"]


@pytest.mark.slow
def test_retime_switches_clock_of_same_runs(tmp_path, small_xla):
  t = load_table(small_xla[1])
  cpu = measure.retime(t, "cpu")
  cpu.save(tmp_path / "cpu.json")
  back = load_table(tmp_path / "cpu.json")
  assert back.header["timer"] == "cpu" and "retime" in back.header["notes"]
  for k, e in back.entries.items():
    assert e.latency_ms == pytest.approx(t.entries[k].extras["cpu_median_ms"])
    assert e.p10_ms is None
  assert measure.retime(back, "cpu") is back


def test_pinned_to_cores_pins_every_thread_and_restores():
  import os
  import threading
  from hwnas.latency.timing import pinned_to_cores
  before = os.sched_getaffinity(0)
  seen = {}
  stop = threading.Event()
  worker = threading.Thread(target=stop.wait)   # a thread started earlier
  worker.start()
  try:
    with pinned_to_cores(1):
      seen["main"] = os.sched_getaffinity(0)
      seen["worker"] = os.sched_getaffinity(worker.native_id)
    assert len(seen["main"]) == 1 and seen["worker"] == seen["main"]
    assert os.sched_getaffinity(0) == before
    assert os.sched_getaffinity(worker.native_id) == before
    with pinned_to_cores(0):                    # 0: unchanged
      assert os.sched_getaffinity(0) == before
    with pytest.raises(errors.HwnasError, match=r"--threads 999: .*core"):
      with pinned_to_cores(999):
        pass
  finally:
    stop.set()
    worker.join()


def test_xla_threads_one_times_on_one_core():
  """threads=1: the xla backend's models are timed pinned to one core."""
  import os
  from hwnas.latency.timing import Prepared, time_interleaved
  from hwnas.netspec import Layer
  be = get_backend("xla", threads=1)
  layer = Layer(type="conv", input_size=16, in_channels=8, out_channels=16,
                kernel=3, stride=1, activation="relu")
  p = be.prepare_layer(layer, 2)
  assert p.cores == 1 and get_backend("xla", threads=0).cores == 0
  seen = []
  probe = Prepared(lambda: (seen.append(len(os.sched_getaffinity(0))),
                            p.call()), cores=p.cores)
  t = time_interleaved([probe], warmup=1, repeats=4)
  assert t[0].count == 4 and set(seen) == {1}
  assert "pinned to 1 core" in be.header_fields()["notes"]
  with pytest.raises(errors.HwnasError, match="--threads -1"):
    get_backend("xla", threads=-1)
