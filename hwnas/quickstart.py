"""The whole pipeline in one call: train, search, export (offline, CPU).

`hwnas quickstart [--workdir D]` runs, on the built-in digits data and the
`tiny` space:

1. `hwnas supernet train --space tiny --dataset digits` into `D/supernet`;
2. `hwnas search` with the shipped estimated Edge TPU (USB 3) table of the
   tiny space against a latency target, into `D/search`;
3. `hwnas export` of `D/search/best.json` to a standalone Flax model and
   float / full-int8 TFLite, with checks and a report, into `D/export`.

Each stage is the same command a user would type (the quickstart prints
them), so the quickstart is also the tour. Every stage resumes from its own
workdir: rerunning reuses what is already done (a finished supernet is not
retrained, recorded evaluations are not repeated, an export of the same
architecture is kept).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
import time
from typing import Callable, Sequence

from hwnas import errors

SPACE = "tiny"
DATASET = "digits"
TABLE = "edgetpu-usb3/tiny"


@dataclasses.dataclass(frozen=True)
class Settings:
  """Quickstart knobs (defaults finish in well under 15 min on 2 cores)."""

  target_ms: float = 0.46       # about the median of the tiny space's archs
  budget: int = 150             # architectures evaluated by the search
  population: int = 24
  seed: int = 0
  train_steps: int | None = None   # None: the tiny supernet config's steps
  export_formats: str = "flax,tflite,tflite-int8"
  latency_repeats: int = 100
  # Extra command-line words per stage (tests shrink batch sizes with them).
  train_args: tuple[str, ...] = ()
  search_args: tuple[str, ...] = ()
  export_args: tuple[str, ...] = ()


def _stages(workdir: pathlib.Path, s: Settings
            ) -> list[tuple[str, list[str], Callable[[], bool]]]:
  """(title, argv, is_done) per stage."""
  sn, search, export = (workdir / "supernet", workdir / "search",
                        workdir / "export")
  train = ["supernet", "train", "--space", SPACE, "--dataset", DATASET,
           "--workdir", str(sn), "--config", "tiny"]
  if s.train_steps:
    train += ["--steps", str(s.train_steps)]
  train += list(s.train_args)
  search_argv = ["search", "--space", SPACE, "--table", TABLE,
                 "--target-ms", str(s.target_ms), "--supernet", str(sn),
                 "--budget", str(s.budget), "--population",
                 str(s.population), "--seed", str(s.seed),
                 "--workdir", str(search), *s.search_args]
  export_argv = ["export", "--arch", str(search / "best.json"),
                 "--supernet", str(sn), "--out", str(export),
                 "--formats", s.export_formats, "--table", TABLE,
                 "--latency-repeats", str(s.latency_repeats), *s.export_args]

  def export_done() -> bool:
    report, best = export / "report.json", search / "best.json"
    if not (report.is_file() and best.is_file()):
      return False
    r = json.loads(report.read_text())
    b = json.loads(best.read_text())
    return (r.get("architecture") or {}).get("json") == b.get("arch")

  return [
      ("train the supernet", train, lambda: False),   # resumes by itself
      ("search", search_argv, lambda: False),         # resumes by itself
      ("export the best architecture", export_argv, export_done),
  ]


def run(workdir: str | pathlib.Path = "runs/quickstart", *,
        settings: Settings = Settings(),
        cli: Callable[[Sequence[str]], int] | None = None,
        echo: Callable[[str], None] = print) -> dict:
  """Runs (or resumes) the quickstart pipeline; returns a summary dict."""
  if cli is None:
    from hwnas.cli import main as cli
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timings = {}
  stages = _stages(workdir, settings)
  for i, (title, argv, done) in enumerate(stages, 1):
    echo(f"\n[{i}/{len(stages)}] {title}\n  $ hwnas {shlex.join(argv)}")
    if done():
      echo("  already done; reusing it")
      continue
    t0 = time.perf_counter()
    code = cli(list(argv))
    timings[title] = time.perf_counter() - t0
    if code != 0:
      raise errors.HwnasError(
          f"quickstart stage '{title}' failed (exit {code}); finished work "
          f"is kept in {workdir}; fix the error above and rerun")
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
      "seconds": {k: round(v, 1) for k, v in timings.items()},
  }
  (workdir / "quickstart.json").write_text(json.dumps(out, indent=1) + "\n")
  echo("\nquickstart done")
  echo(f"  best architecture: {out['arch']}")
  acc = out["accuracy"]
  echo(f"    supernet accuracy "
       f"{acc if acc is None else format(acc, '.4f')}, predicted Edge TPU "
       f"latency {latency if latency is None else format(latency, '.3f')} ms"
       f" (target {settings.target_ms} ms; estimated table — "
       "measure a real one with `hwnas table measure --backend edgetpu`)")
  for key in ("best", "pareto_png", "export_report"):
    echo(f"  {key.replace('_', '.'):14s} {out[key]}")
  echo(f"  exported files: {workdir / 'export'}")
  return out
