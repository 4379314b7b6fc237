"""End to end: the quickstart pipeline on the tiny space with tiny steps."""

import json
import shlex

import pytest

from hwnas import arch, cli, quickstart, space
from hwnas.latency import load_table


@pytest.mark.slow
def test_quickstart_pipeline_end_to_end_and_rerun(tmp_path, fast_compile):
  settings = quickstart.Settings(
      target_ms=0.5, budget=6, population=4, train_steps=2,
      export_formats="flax,tflite-int8", latency_repeats=5,
      # Small batches, one resolution, and only the largest and smallest
      # subnet per step (random subnets are covered by supernet_test).
      train_overrides=("train.batch_size=8", "train.resolutions=[24]",
                       "train.n_random=0", "eval.bn_batches=1"),
      calibration_steps=4, eval_samples=32, bn_batches=1,
      # 2 training steps: the int8 model need not pass the export's int8
      # gate (tested in export_test.py).
      compile_edgetpu=False, allow_int8_drop=True, progress=False)
  lines = []
  out = quickstart.run(tmp_path, settings=settings, echo=lines.append)

  # Each stage printed the command a user would type for it, with the
  # same settings.
  commands = [shlex.split(l.split("$ hwnas ", 1)[1]) for l in lines
              if "$ hwnas " in l]
  train, search, export = (cli.build_parser().parse_args(c)
                           for c in commands)
  assert (train.steps, train.set, train.workdir) == (
      2, list(settings.train_overrides), str(tmp_path / "supernet"))
  assert (search.budget, search.population, search.target_ms) == (6, 4, 0.5)
  assert (export.calibration_steps, export.eval_samples, export.bn_batches,
          export.latency_repeats, export.no_compile) == (4, 32, 1, 5, True)

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
  # The estimated table's band is carried into best.json around it.
  band = best["latency_band_ms"]
  assert band["low"] < best["latency_ms"] < band["high"]
  assert [band["low"], band["high"]] == list(
      table.predict_band(arch.decode(s, a)))
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


def test_quickstart_presets_name_space_data_and_table(tmp_path):
  """`--space har` runs the 1-D space on the watch windows against its
  shipped int8 LiteRT table (default target: about its median); an unknown
  space is one line before anything runs."""
  from hwnas import errors  # pylint: disable=g-import-not-at-top
  args = cli.build_parser().parse_args(["quickstart", "--space", "har"])
  assert args.space == "har"
  p = quickstart.PRESETS["har"]
  assert (p.space, p.dataset, p.table) == ("har", "watch", "litert-int8/har")
  s = space.load(p.space)
  assert s.kind == "timeseries"
  table = load_table(p.table)
  from hwnas.latency import make_cost_fn  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  cost = make_cost_fn(table, s)
  ms = sorted(cost(arch.sample(rng, s)) for _ in range(200))
  assert ms[40] < p.target_ms < ms[160]   # between the 20% and 80% points
  d = quickstart._Dirs(tmp_path / "a", tmp_path / "b", tmp_path / "c")  # pylint: disable=protected-access
  train, search, _ = quickstart._commands(  # pylint: disable=protected-access
      d, quickstart.Settings(space="har", target_ms=p.target_ms))
  assert train[train.index("--dataset") + 1] == "watch"
  assert search[search.index("--table") + 1] == "litert-int8/har"
  _, _, export = quickstart._commands(d, quickstart.Settings(space="har"))  # pylint: disable=protected-access
  # The export scores the whole test split (773 windows), not a sample.
  assert int(export[export.index("--eval-samples") + 1]) >= 773
  _, _, export = quickstart._commands(d, quickstart.Settings())  # pylint: disable=protected-access
  assert "--eval-samples" not in export   # tiny: export's default covers it
  with pytest.raises(errors.HwnasError, match="--space mobilenetv3: the "
                     "quickstart runs on tiny or har"):
    quickstart.run(tmp_path / "x", settings=quickstart.Settings(
        space="mobilenetv3"))
  assert not (tmp_path / "x").exists()
