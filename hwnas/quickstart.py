"""The whole pipeline in one call: train, search, export (offline, CPU).

`hwnas quickstart [--workdir D] [--space tiny|har]` runs, on offline data
(`PRESETS`: the `tiny` space on the built-in digits, or the 1-D `har`
space on the smartwatch `watch` windows split by subject):

1. `hwnas supernet train --space S --dataset DATA` into `D/supernet`;
2. `hwnas search` with the preset's shipped latency table of the space
   against a latency target, into `D/search`;
3. `hwnas export` of `D/search/best.json` to a standalone Flax model and
   float / full-int8 TFLite, with checks and a report, into `D/export`.

Each stage prints the command a user would type and calls the same
`hwnas.pipeline` function that command calls, so the quickstart is also the
tour. Every stage resumes from its own
workdir: rerunning reuses what is already done (a finished supernet is not
retrained, recorded evaluations are not repeated, an export of the same
architecture is kept).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import shlex
import sys
import time
from typing import Any, Callable

from hwnas import errors, pipeline



@dataclasses.dataclass(frozen=True)
class Preset:
  """What a quickstart runs on: space, data, table and their defaults."""

  space: str
  dataset: str
  table: str
  target_ms: float        # default latency target on `table`
  latency: str            # what the table's milliseconds are, for the summary
  config: str = "tiny"    # supernet config variant (hwnas.configs.supernet)
  eval_samples: int = 500  # export's test accuracy: covers the test split


PRESETS = {
    "tiny": Preset("tiny", "digits", "edgetpu-usb3/tiny", 0.46,
                   "predicted Edge TPU latency (estimated table — measure a "
                   "real one with `hwnas table measure --backend edgetpu`)"),
    "har": Preset("har", "watch", "litert-int8/har", 0.02,
                  "predicted int8 LiteRT latency on one core of the CPU that "
                  "measured the table (calibrate it for yours: `hwnas table "
                  "calibrate`)", eval_samples=1000),   # all 773 windows
}

# `hwnas export`'s defaults of the options the quickstart can change (a
# command line shows only the flags that differ from them).
_EXPORT_DEFAULTS = {"calibration_steps": 100, "eval_samples": 500,
                    "bn_batches": 20}


@dataclasses.dataclass(frozen=True)
class Settings:
  """Quickstart knobs (the defaults are sized to finish in minutes on a
  small CPU; measured times are in benchmarks/RESULTS.md)."""

  space: str = "tiny"           # a key of PRESETS
  target_ms: float | None = None   # None: the preset's (about the median)
  budget: int = 150             # architectures evaluated by the search
  population: int = 24
  seed: int = 0
  train_steps: int | None = None   # None: the tiny supernet config's steps
  # `key=value` supernet config overrides (`--set`; tests shrink batches).
  train_overrides: tuple[str, ...] = ()
  export_formats: str = "flax,tflite,tflite-int8"
  latency_repeats: int = 100
  calibration_steps: int = 100
  eval_samples: int | None = None  # None: the preset's (its whole test split)
  bn_batches: int = 20
  compile_edgetpu: bool = True  # run edgetpu_compiler when it is installed
  allow_int8_drop: bool = False  # accept an int8 model below the int8 gate
  progress: bool = True


@dataclasses.dataclass(frozen=True)
class Stage:
  """One pipeline stage: the command a user would type and the call."""

  title: str
  argv: list[str]
  call: Callable[[], Any]
  done: Callable[[], bool] = lambda: False   # stages resume by themselves


def _export_flags(s: Settings) -> list[str]:
  argv = []
  for name, default in _EXPORT_DEFAULTS.items():
    if getattr(s, name) != default:
      argv += ["--" + name.replace("_", "-"), str(getattr(s, name))]
  return argv + ([] if s.compile_edgetpu else ["--no-compile"]) + (
      ["--allow-int8-drop"] if s.allow_int8_drop else [])


@dataclasses.dataclass(frozen=True)
class _Dirs:
  supernet: pathlib.Path
  search: pathlib.Path
  export: pathlib.Path


def _resolve(s: Settings) -> Settings:
  """`s` with the preset's defaults where it says None."""
  p = PRESETS[s.space]
  return dataclasses.replace(
      s, target_ms=p.target_ms if s.target_ms is None else s.target_ms,
      eval_samples=(p.eval_samples if s.eval_samples is None
                    else s.eval_samples))


def _commands(d: _Dirs, s: Settings) -> tuple[list[str], ...]:
  """The argv of each stage's `hwnas` command."""
  s = _resolve(s)
  no_progress = [] if s.progress else ["--no-progress"]
  steps = ["--steps", str(s.train_steps)] if s.train_steps else []
  overrides = [w for o in s.train_overrides for w in ("--set", o)]
  p = PRESETS[s.space]
  train = ["supernet", "train", "--space", p.space, "--dataset", p.dataset,
           "--workdir", str(d.supernet), "--config", p.config, *steps,
           *overrides, *no_progress]
  search = ["search", "--space", p.space, "--table", p.table,
            "--target-ms", str(s.target_ms), "--supernet", str(d.supernet),
            "--budget", str(s.budget), "--population", str(s.population),
            "--seed", str(s.seed), "--workdir", str(d.search), *no_progress]
  export = ["export", "--arch", str(d.search / "best.json"),
            "--supernet", str(d.supernet), "--out", str(d.export),
            "--formats", s.export_formats, "--table", p.table,
            "--latency-repeats", str(s.latency_repeats), *_export_flags(s)]
  return train, search, export


def _train(d: _Dirs, s: Settings, echo) -> None:
  p = PRESETS[s.space]
  config = pipeline.supernet_config(
      p.config, space=p.space, dataset=p.dataset, steps=s.train_steps,
      overrides=s.train_overrides)
  pipeline.train_supernet(d.supernet, config, echo=echo,
                          progress=s.progress and sys.stderr.isatty())


def _search(d: _Dirs, s: Settings, echo) -> None:
  p = PRESETS[s.space]
  result = pipeline.search(
      p.space, d.search, tables=[p.table], target_ms=s.target_ms,
      supernet=d.supernet, budget=s.budget, population=s.population,
      seed=s.seed, progress=s.progress, echo=echo)
  if result.best is None:
    raise errors.HwnasError(
        f"no evaluated architecture met the {s.target_ms} ms target; the "
        f"front is in {d.search / 'pareto.json'}; rerun with a larger "
        "--target-ms")


def _export(d: _Dirs, s: Settings, echo) -> None:
  report = pipeline.export(
      d.export, arch=d.search / "best.json", supernet=d.supernet,
      table=PRESETS[s.space].table, formats=s.export_formats,
      latency_repeats=s.latency_repeats,
      calibration_steps=s.calibration_steps, eval_samples=s.eval_samples,
      bn_batches=s.bn_batches, compile_edgetpu=s.compile_edgetpu,
      allow_int8_drop=s.allow_int8_drop, echo=echo)
  if not pipeline.export_passed(report):
    raise errors.HwnasError(f"{d.export / 'report.md'}: the export's checks "
                            "failed (float TFLite vs Flax, or the int8 gate);"
                            " see the report")


def _export_done(d: _Dirs) -> bool:
  """An export of the search's current best architecture exists."""
  report, best = d.export / "report.json", d.search / "best.json"
  if not (report.is_file() and best.is_file()):
    return False
  r = json.loads(report.read_text())
  b = json.loads(best.read_text())
  return (r.get("architecture") or {}).get("json") == b.get("arch")


def _stages(workdir: pathlib.Path, s: Settings, echo) -> list[Stage]:
  d = _Dirs(workdir / "supernet", workdir / "search", workdir / "export")
  train, search, export = _commands(d, s)
  return [
      Stage("train the supernet", train, functools.partial(_train, d, s, echo)),
      Stage("search", search, functools.partial(_search, d, s, echo)),
      Stage("export the best architecture", export,
            functools.partial(_export, d, s, echo),
            functools.partial(_export_done, d)),
  ]


def run(workdir: str | pathlib.Path = "runs/quickstart", *,
        settings: Settings = Settings(),
        echo: Callable[[str], None] = print) -> dict:
  """Runs (or resumes) the quickstart pipeline; returns a summary dict."""
  if settings.space not in PRESETS:
    raise errors.HwnasError(f"--space {settings.space}: the quickstart runs "
                            f"on {' or '.join(PRESETS)}; for another space "
                            "run the three commands it prints yourself")
  settings = _resolve(settings)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timings = {}
  stages = _stages(workdir, settings, echo)
  for i, stage in enumerate(stages, 1):
    echo(f"\n[{i}/{len(stages)}] {stage.title}\n"
         f"  $ hwnas {shlex.join(stage.argv)}")
    if stage.done():
      echo("  already done; reusing it")
      continue
    t0 = time.perf_counter()
    try:
      stage.call()
    except errors.HwnasError as e:
      raise errors.HwnasError(
          f"quickstart stage '{stage.title}': {e} (finished work is kept in "
          f"{workdir}; fix it and rerun)") from None
    timings[stage.title] = time.perf_counter() - t0
  return summarize(workdir, settings, timings, echo=echo)


def summarize(workdir: pathlib.Path, settings: Settings, timings: dict, *,
              echo: Callable[[str], None] = print) -> dict:
  """Checks the outputs agree and prints where everything is."""
  best = json.loads((workdir / "search" / "best.json").read_text())
  report = json.loads((workdir / "export" / "report.json").read_text())
  latency = best.get("latency_ms", best.get("costs", {}).get("latency_ms"))
  out = {
      "workdir": str(workdir),
      "best": str(workdir / "search" / "best.json"),
      "pareto_png": str(workdir / "search" / "pareto.png"),
      "export_report": str(workdir / "export" / "report.md"),
      "arch": best.get("arch_string"),
      "accuracy": best.get("accuracy"),
      "latency_ms": latency,
      "target_ms": settings.target_ms,
      "meets_target": latency is not None and latency <= settings.target_ms,
      "exported_arch_matches":
          (report.get("architecture") or {}).get("json") == best.get("arch"),
      "held_out": _held_out(workdir, report),
      "seconds": {k: round(v, 1) for k, v in timings.items()},
  }
  (workdir / "quickstart.json").write_text(json.dumps(out, indent=1) + "\n")
  echo("\nquickstart done")
  echo(f"  best architecture: {out['arch']}")
  acc = out["accuracy"]
  echo(f"    supernet accuracy (val) "
       f"{acc if acc is None else format(acc, '.4f')}, "
       f"{PRESETS[settings.space].latency.split(' (')[0]} "
       f"{latency if latency is None else format(latency, '.3f')} ms"
       f" (target {settings.target_ms} ms; "
       f"{PRESETS[settings.space].latency.partition(' (')[2]}")
  if out["held_out"]:
    echo(f"  {out['held_out']['line']}")
  for key in ("best", "pareto_png", "export_report"):
    echo(f"  {key.replace('_', '.'):14s} {out[key]}")
  echo(f"  exported files: {workdir / 'export'}")
  return out


def _held_out(workdir: pathlib.Path, report: dict) -> dict | None:
  """The exported models' accuracy on the held-out split the export
  checked, with the data set's split sizes (and subjects, for data split
  by subject), or None without a dataset in the export."""
  acc = (report.get("checks") or {}).get("accuracy")
  if not acc:
    return None
  config = workdir / "supernet" / "config.json"
  info = (json.loads(config.read_text()).get("dataset") or {}
          if config.is_file() else {})
  sizes = info.get("split_sizes") or {}
  subjects = info.get("split_subjects") or {}
  split = acc["split"]
  int8 = acc.get("tflite_int8")
  line = (f"{split} accuracy of the export: int8 TFLite "
          f"{'-' if int8 is None else format(int8, '.4f')}, Flax "
          f"{acc['flax']:.4f} on {acc['num_samples']} {split} samples of "
          f"{acc['dataset']}")
  if sizes:
    line += (" (splits train/val/test: " + "/".join(
        str(sizes.get(k, "?")) for k in ("train", "val", "test")))
    if subjects.get(split):
      line += (f"; {split} subjects "
               f"{', '.join(map(str, subjects[split]))}: held out by "
               "subject. A small data set: accuracies differ between "
               "subjects by several points")
    line += ")"
  return {"split": split, "tflite_int8": int8, "flax": acc["flax"],
          "num_samples": acc["num_samples"], "dataset": acc["dataset"],
          "split_sizes": sizes, "split_subjects": subjects, "line": line}
