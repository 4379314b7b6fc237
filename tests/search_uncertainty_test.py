"""Decisions with uncertainty: --conservative, the band and per-device
panels on pareto.png, a results table that never truncates (fast: toy
evaluator, shipped tables)."""

import io
import json

import pytest
from PIL import Image
from rich.console import Console

from hwnas import arch, errors, pipeline, space
from hwnas.latency import load_table, make_band_fn
from hwnas.search import report


def _toy(archs):
  return ([0.5 + 0.01 * a.resolution + 0.02 * sum(a.depths) for a in archs],
          [{} for _ in archs])


def _search(workdir, **kw):
  return pipeline.search("tiny", workdir, evaluator=_toy, budget=12,
                         population=6, progress=False, echo=lambda _: None,
                         **kw)


def test_conservative_uses_the_band_upper_end_and_says_so(tmp_path):
  s = space.load("tiny")
  table = load_table("edgetpu-usb3/tiny")
  band = make_band_fn(table, s)
  plain = _search(tmp_path / "plain", tables=["edgetpu-usb3/tiny"],
                  target_ms=0.9)
  safe = _search(tmp_path / "safe", tables=["edgetpu-usb3/tiny"],
                 target_ms=0.9, conservative=True)
  for r in safe.records:
    assert r.costs["latency_ms"] == pytest.approx(band(r.arch)[1])
    assert band(r.arch)[1] <= 0.9            # the constraint used it
  assert any(r.costs["latency_ms"] > table.predict(arch.decode(s, r.arch))
             for r in safe.records)
  for r in plain.records:
    assert r.costs["latency_ms"] == pytest.approx(
        table.predict(arch.decode(s, r.arch)))
  best = json.loads((tmp_path / "safe" / "best.json").read_text())
  assert best["conservative"] is True
  assert "upper end" in best["provenance"]["conservative"]
  assert json.loads((tmp_path / "plain" / "best.json").read_text())[
      "conservative"] is False


def test_conservative_needs_a_table_with_a_band(tmp_path):
  with pytest.raises(errors.HwnasError, match="uncertainty band"):
    _search(tmp_path, tables=["xla/tiny"], target_ms=5.0, conservative=True)


def test_two_devices_get_two_panels_and_an_untruncated_table(tmp_path):
  r = _search(tmp_path, tables=["edgetpu-usb3/tiny", "litert-int8/tiny"],
              objective="pareto")
  assert set(r.records[0].costs) == {"latency_ms",
                                     "latency_ms@litert-int8"}
  with Image.open(tmp_path / "pareto.png") as im:
    two_wide = im.size[0]
  one = _search(tmp_path / "one", tables=["edgetpu-usb3/tiny"],
                objective="pareto")
  assert one.records
  with Image.open(tmp_path / "one" / "pareto.png") as im:
    one_wide = im.size[0]
  assert two_wide >= 1.9 * one_wide      # one panel per device
  console = Console(width=60, record=True, file=io.StringIO())
  report.print_summary(r, console=console)
  text = console.export_text()
  assert "…" not in text
  assert "latency_ms@litert-int8" in text.replace(" ", "") or all(
      part in text for part in ("latency_ms@", "litert-int8"))


def test_an_int8_search_labels_its_accuracy_column():
  from hwnas.search.history import Record
  base = dict(index=0, generation=0, arch=None, costs={"latency_ms": 1.0},
              macs=1, params=1)
  r = Record(accuracy=0.8, metrics={"accuracy_int8": 0.8,
                                    "accuracy_float": 0.9}, **base)
  assert report._accuracy_label([r]) == "accuracy (int8)"
  assert report._accuracy_label([Record(accuracy=0.8, **base)]) == "accuracy"
