"""End to end: the quickstart pipeline on the tiny space with tiny steps."""

import json

import pytest

from hwnas import arch, quickstart, space
from hwnas.latency import load_table


@pytest.mark.slow
def test_quickstart_pipeline_end_to_end_and_rerun(tmp_path):
  settings = quickstart.Settings(
      target_ms=0.4, budget=6, population=4, train_steps=2,
      export_formats="flax,tflite-int8", latency_repeats=5,
      train_args=("--set", "train.batch_size=8", "--set",
                  "train.resolutions=[24]", "--set", "eval.bn_batches=1",
                  "--no-progress"),
      search_args=("--no-progress",),
      # 2 training steps and 4 calibration samples: the int8 model need not
      # pass the export's int8 gate (tested in export_test.py).
      export_args=("--calibration-steps", "4", "--eval-samples", "32",
                   "--bn-batches", "1", "--no-compile", "--allow-int8-drop"))
  lines = []
  out = quickstart.run(tmp_path, settings=settings, echo=lines.append)

  best = json.loads((tmp_path / "search" / "best.json").read_text())
  report = json.loads((tmp_path / "export" / "report.json").read_text())
  s = space.load("tiny")
  a = arch.from_dict(best["arch"])
  # The exported model is best.json's architecture ...
  assert report["architecture"]["json"] == best["arch"]
  assert out["exported_arch_matches"]
  # ... and its predicted latency meets the target on the shipped table.
  table = load_table("edgetpu-usb3/tiny")
  assert table.predict(arch.decode(s, a)) <= settings.target_ms + 1e-9
  assert out["meets_target"]
  for f in ("search/pareto.png", "search/history.jsonl", "export/report.md",
            "supernet/metrics.jsonl", "quickstart.json"):
    assert (tmp_path / f).is_file(), f
  assert any(p.suffix == ".tflite" for p in (tmp_path / "export").rglob("*"))

  # Rerunning reuses everything: no new evaluations, export kept.
  history = (tmp_path / "search" / "history.jsonl").read_text()
  lines.clear()
  quickstart.run(tmp_path, settings=settings, echo=lines.append)
  assert (tmp_path / "search" / "history.jsonl").read_text() == history
  assert any("already done" in l for l in lines)
