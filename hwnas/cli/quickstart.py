"""`hwnas quickstart`: train, search and export on the built-in defaults."""

from __future__ import annotations

from hwnas import quickstart


def register(sub) -> None:
  p = sub.add_parser(
      "quickstart", help="the whole pipeline offline on digits + the tiny "
      "space (or --space har: smartwatch windows + the 1-D har space): "
      "supernet, latency-targeted search, TFLite int8 export")
  p.add_argument("--workdir", default="runs/quickstart",
                 help="where every stage writes (rerunning resumes)")
  p.add_argument("--space", default="tiny", choices=sorted(
      quickstart.PRESETS), help="tiny (digits, estimated Edge TPU table) "
      "or har (watch windows split by subject, measured int8 LiteRT table)")
  defaults = quickstart.Settings()
  targets = ", ".join(f"{k}: {preset.target_ms}"
                      for k, preset in quickstart.PRESETS.items())
  p.add_argument("--target-ms", type=float, help="latency target on the "
                 f"space's table (default {targets})")
  p.add_argument("--budget", type=int, help="architectures to evaluate "
                 f"(default {defaults.budget})")
  p.add_argument("--train-steps", type=int,
                 help="supernet steps (default: the tiny config's)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bars")
  p.set_defaults(func=_quickstart)


def _quickstart(args) -> int:
  import dataclasses  # pylint: disable=g-import-not-at-top
  s = quickstart.Settings(seed=args.seed, progress=not args.no_progress,
                          space=args.space)
  changes = {k: v for k, v in (("target_ms", args.target_ms),
                               ("budget", args.budget),
                               ("train_steps", args.train_steps))
             if v is not None}
  quickstart.run(args.workdir, settings=dataclasses.replace(s, **changes))
  return 0
