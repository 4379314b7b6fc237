"""`hwnas predictor train|eval`: the MLP accuracy predictor
(`hwnas.search.predictor`)."""

from __future__ import annotations

import json
import pathlib
import sys

from hwnas import errors


def register(sub) -> None:
  p = sub.add_parser("predictor", help="train and check the MLP accuracy "
                     "predictor (an evaluator for `hwnas search`)")
  s = p.add_subparsers(dest="predictor_command", metavar="SUBCOMMAND")
  s.required = True
  q = s.add_parser("train", help="fit on (arch, accuracy) pairs; reports "
                   "rank correlation on held-out architectures")
  q.add_argument("--space", required=True)
  q.add_argument("--history", action="append", default=[],
                 help="history.jsonl or search workdir (repeatable)")
  q.add_argument("--supernet", help="also evaluate --samples random "
                 "architectures with this supernet")
  q.add_argument("--samples", type=int, default=0)
  q.add_argument("--out", required=True, help="predictor directory")
  q.add_argument("--overwrite", action="store_true",
                 help="replace a predictor already in --out")
  q.add_argument("--ensemble", type=int, default=1)
  q.add_argument("--hidden", default="128,128",
                 help="hidden widths, comma-separated")
  q.add_argument("--steps", type=int, default=1500)
  q.add_argument("--learning-rate", type=float, default=3e-3)
  q.add_argument("--val-fraction", type=float, default=0.2)
  q.add_argument("--seed", type=int, default=0)
  q.set_defaults(func=_train)
  q = s.add_parser("eval", help="rank correlation of a predictor on a "
                   "history")
  q.add_argument("--predictor", required=True)
  q.add_argument("--space", required=True)
  q.add_argument("--history", action="append", required=True)
  q.set_defaults(func=_eval)


def _supernet_pairs(args, space):
  import numpy as np
  from hwnas import arch as arch_lib
  from hwnas.pipeline import make_supernet_evaluator
  rng = np.random.default_rng([args.seed, 11])
  archs = list(dict.fromkeys(arch_lib.sample(rng, space)
                             for _ in range(args.samples)))
  evaluate_fn = make_supernet_evaluator(args.supernet, space)
  return archs, _evaluate_with_progress(evaluate_fn, archs)


def _evaluate_with_progress(evaluate_fn, archs, chunk: int = 16):
  """Supernet accuracies of `archs`, `chunk` at a time under a progress
  bar (BN recalibration per architecture takes seconds each)."""
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  out = []
  with rp.Progress(rp.TextColumn("supernet eval"), rp.BarColumn(),
                   rp.MofNCompleteColumn(), rp.TimeElapsedColumn(),
                   rp.TimeRemainingColumn(),
                   disable=not sys.stderr.isatty()) as bar:
    task = bar.add_task("eval", total=len(archs))
    for i in range(0, len(archs), chunk):
      out += [float(x) for x in evaluate_fn(archs[i:i + chunk])[0]]
      bar.update(task, completed=len(out))
  return out


# Held-out Spearman below this ranks architectures too poorly to steer a
# search (a wrong pick among close candidates is then likely).
LOW_SPEARMAN = 0.8


def _print_metrics(m) -> None:
  print(f"  {m['n']} archs: Spearman {m['spearman']:.3f}, Kendall "
        f"{m['kendall']:.3f}, RMSE {m['rmse']:.4f}")


def _check_train_args(args) -> tuple[int, ...]:
  """The hidden widths; every setting and --out checked before any work."""
  from hwnas import validate
  out = pathlib.Path(args.out)
  if out.exists() and not out.is_dir():
    raise errors.HwnasError(f"--out {out}: is a file; give a directory")
  if out.is_dir() and any(out.iterdir()) and not args.overwrite:
    raise errors.HwnasError(f"--out {out}: exists and is not empty; pass "
                            "--overwrite to replace the predictor in it, or "
                            "choose another directory")
  errors.positive(args.steps, "--steps")
  errors.positive(args.samples, "--samples", zero_ok=True)
  validate.finite(args.learning_rate, "--learning-rate", low=0,
                  low_open=True)
  validate.finite(args.val_fraction, "--val-fraction", low=0, high=1,
                  high_open=True)
  try:
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
  except ValueError:
    hidden = (0,)
  if any(h < 1 or h > 65536 for h in hidden):
    raise errors.HwnasError(f"--hidden {args.hidden!r}: expected "
                            "comma-separated positive integers, e.g. 128,128")
  return hidden


def _train(args) -> int:
  from hwnas import space as space_lib
  from hwnas.search import predictor
  hidden = _check_train_args(args)
  space = space_lib.load(args.space)
  archs, accs = predictor.pairs_from_history(args.history, space)
  if args.supernet and args.samples:
    print(f"evaluating {args.samples} random architectures with the "
          f"supernet {args.supernet} ...", flush=True)
    a, y = _supernet_pairs(args, space)
    archs, accs = archs + a, accs + y
  if not archs:
    raise errors.HwnasError("predictor train: no data; give --history H or "
                            "--supernet W --samples N")
  print(f"training the predictor on {len(archs)} architectures "
        f"({args.steps} steps, ensemble {args.ensemble}) ...", flush=True)
  p = predictor.train(space, archs, accs, seed=args.seed, hidden=hidden,
                      ensemble=args.ensemble, steps=args.steps,
                      learning_rate=args.learning_rate,
                      val_fraction=args.val_fraction)
  predictor.save(p, args.out)
  print(f"predictor ({len(archs)} archs, ensemble {args.ensemble}) -> "
        f"{args.out}")
  print("train:")
  _print_metrics(p.metrics["train"])
  if "heldout" in p.metrics:
    print("held-out:")
    _print_metrics(p.metrics["heldout"])
    rho = p.metrics["heldout"]["spearman"]
    if not rho >= LOW_SPEARMAN:
      print(f"warning: held-out Spearman {rho:.3f} is below "
            f"{LOW_SPEARMAN}: the predictor ranks architectures poorly; add "
            "data (more --samples or --history) or use --evaluator "
            "supernet", file=sys.stderr)
  return 0


def _eval(args) -> int:
  from hwnas import space as space_lib
  from hwnas.search import predictor
  space = space_lib.load(args.space)
  p = predictor.load(args.predictor)
  archs, accs = predictor.pairs_from_history(args.history, space)
  if len(archs) < 3:
    raise errors.HwnasError("predictor eval: need >= 3 evaluated archs")
  m = predictor.rank_metrics(accs, predictor.predict(p, space, archs)[0])
  print(json.dumps(m))
  return 0
