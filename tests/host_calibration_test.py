"""`hwnas table calibrate`: a calibration that cannot hurt (fast: the
analytic Edge TPU model stands in for a host's timings, so nothing is
compiled)."""

import dataclasses
import json

import numpy as np
import pytest

from hwnas import errors, space
from hwnas.cli import main as cli_main
from hwnas.latency import fidelity, host_calibration, load_table
from hwnas.latency import edgetpu_table as et
from hwnas.latency import table as tbl
from hwnas.latency.timing import Timing, cpu_model


def _elsewhere(tmp_path, scale=4.0):
  """A 'measured' table whose entries are `scale` x what this host (the
  model) gives: as if measured on a slower machine."""
  s = space.load("tiny")
  t = et.make_table(s)
  entries = [dataclasses.replace(e, latency_ms=e.latency_ms * scale)
             for e in t.entries.values()]
  header = {**t.header, "provenance": {"kind": "measured",
                                       "backend": "edgetpu-model"},
            "device": "another CPU (2 logical cores)"}
  path = tmp_path / "elsewhere.json"
  tbl.new_table(header, entries, path).save(path)
  return s, load_table(path)


class BurstyHost(et.EdgeTPUModelBackend):
  """This host's timings, 3x slower for the first `n` networks (a load
  burst while the fit networks were timed)."""

  def __init__(self, n):
    super().__init__()
    self.n, self.calls = n, 0

  def time_network(self, spec, **kw):
    t = super().time_network(spec, **kw)
    self.calls += 1
    slow = 3.0 if self.calls <= self.n else 1.0
    return Timing(t.latency_ms * slow, None, None, 0, {})


def test_calibrate_brings_a_table_from_elsewhere_within_10pct(tmp_path):
  s, t = _elsewhere(tmp_path)
  r = host_calibration.calibrate(t, s, networks=20, holdout=30,
                                 rng=np.random.default_rng(0))
  assert r.before["within_10_pct"] == 0       # 4x entries: far off as is
  assert r.after["within_10_pct"] >= 90 and r.accepted
  assert r.calibration["host"] == cpu_model()
  out = tmp_path / "here.json"
  host_calibration.apply(t, r).save(out)
  here = load_table(out)
  assert here.calibration["holdout"]["calibrated"]["within_10_pct"] >= 90
  assert host_calibration.host_warning(here) is None
  dropped = host_calibration.drop(here)
  assert dropped.calibration is None
  spec = next(iter(t.entries.values())).layer
  assert dropped.by_layer[spec] == t.by_layer[spec]


def test_a_calibration_that_worsens_fidelity_is_refused(tmp_path):
  s, t = _elsewhere(tmp_path, scale=1.0)     # right as it is
  r = host_calibration.calibrate(t, s, networks=6, holdout=10,
                                 rng=np.random.default_rng(1),
                                 backend=BurstyHost(6))
  assert r.before["within_10_pct"] == 100
  assert not r.accepted and "worsens held-out fidelity" in r.refused
  with pytest.raises(errors.HwnasError, match="not storing"):
    host_calibration.apply(t, r)


def test_harm_refuses_non_positive_predictions():
  good = {"mape_pct": 5.0, "within_10_pct": 90.0}
  assert fidelity.harm(good, good, [0.1, 2.0]) is None
  assert "non-positive" in fidelity.harm(good, good, [-0.01, 2.0])
  worse = {"mape_pct": 6.0, "within_10_pct": 90.0}
  assert "worsens" in fidelity.harm(good, worse, [1.0])


def test_validate_does_not_store_a_harmful_calibration(tmp_path):
  s, t = _elsewhere(tmp_path, scale=1.0)
  rep = fidelity.validate(t, s, 8, rng=np.random.default_rng(0),
                          fit_calibration=True, backend=BurstyHost(8))
  # Every network was timed 3x slow, so as-is and calibrated are scored on
  # the same inflated timings: make the fit itself harmful instead.
  bad = dataclasses.replace(rep, calibration={**rep.calibration, "b": -1e3},
                            holdout_after={**rep.holdout_after,
                                           "mape_pct": 1e3})
  stored = fidelity.store(t, bad)
  assert stored.calibration is None
  assert "calibration_refused" in stored.header["fidelity"]


def test_cli_calibrate_writes_a_new_file_refuses_and_drops(
    tmp_path, monkeypatch, capsys):
  s, t = _elsewhere(tmp_path)
  monkeypatch.chdir(tmp_path)
  report = tmp_path / "r.json"
  assert cli_main(["table", "calibrate", "--table", t.path, "--space",
                   "tiny", "--networks", "20", "--holdout", "30",
                   "--no-progress", "--report-json", str(report)]) == 0
  written = tmp_path / f"{tmp_path.name}-elsewhere.calibrated.json"
  assert load_table(written).calibration["type"] == "linear"
  assert load_table(t.path).calibration is None       # untouched
  assert json.loads(report.read_text())["accepted"] is True
  assert cli_main(["table", "calibrate", "--table", str(written), "--drop",
                   "--in-place"]) == 0
  assert load_table(written).calibration is None
  capsys.readouterr()
  assert cli_main(["table", "calibrate", "--table", "xla/tiny",
                   "--in-place"]) == 2
  assert "shipped table" in capsys.readouterr().err


def test_host_warning_names_the_command():
  t = load_table("xla/tiny")
  other = t.with_header(device="Some Other CPU (64 logical cores)")
  w = host_calibration.host_warning(other, "tiny")
  assert "hwnas table calibrate --table" in w and "--space tiny" in w
  assert host_calibration.host_warning(
      t.with_header(device=cpu_model())) is None
  assert host_calibration.host_warning(load_table("edgetpu-usb3/tiny")) is None
