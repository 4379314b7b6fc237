"""`hwnas supernet`: train a weight-sharing supernet, evaluate subnets.

    hwnas supernet train --space tiny --dataset digits --workdir runs/sn \
        [--steps N] [--config VARIANT | FILE.py[:VARIANT]] [--set K=V ...]
    hwnas supernet eval --workdir runs/sn (--arch A.json ... | --largest |
        --smallest)
    hwnas supernet rank-check --workdir runs/sn [--samples 16] [--arch A.json]
        [--set eval.bn_batches=8 ...]

The config is an ml_collections `ConfigDict` from `hwnas/configs/supernet.py`
(`get_config(variant)`; default: the `tiny` variant for the tiny space,
otherwise the default variant) or from a user's file with `get_config(arg)`;
`--space`, `--dataset`, `--steps` and then every `--set key.sub=value`
(YAML scalars) override it. Training resumes from the workdir; rerunning a
finished run reuses it.
"""

from __future__ import annotations

import json
import pathlib
import sys

from hwnas import errors, pipeline
from hwnas.configs import loader


def register(sub) -> None:
  p = sub.add_parser("supernet", help="train a weight-sharing supernet; "
                     "evaluate architectures with its shared weights")
  ss = p.add_subparsers(dest="supernet_command", metavar="ACTION")
  ss.required = True

  t = ss.add_parser(
      "train", help="train (or resume) a supernet in a workdir",
      description="Train a supernet with the sandwich rule and in-place "
      "distillation. Resumes from --workdir automatically.")
  t.add_argument("--space", help="search space name or YAML path (default: "
                 "the config's)")
  t.add_argument("--dataset", help="digits, tfds:NAME or folder:PATH "
                 "(default: the config's, digits)")
  t.add_argument("--workdir", required=True, help="run directory")
  t.add_argument("--steps", type=int, help="training steps")
  t.add_argument("--config", help="config variant (tiny, ...) or "
                 "FILE.py[:VARIANT] with get_config(arg)")
  t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. "
                 "--set optimizer.learning_rate=0.05 (repeatable)")
  t.add_argument("--no-progress", action="store_true",
                 help="no progress bar (metrics.jsonl is always written)")
  d = t.add_argument_group(
      "several processes (jax.distributed; docs/supernet.md)",
      "Run the same command in every process with the same workdir on a "
      "shared file system; each process reads its shard of every batch.")
  d.add_argument("--coordinator", metavar="HOST:PORT",
                 help="process 0's address and a free port")
  d.add_argument("--num-processes", type=int, metavar="N",
                 help="how many processes take part (with --coordinator)")
  d.add_argument("--process-id", type=int, metavar="I", help="0 .. N-1")
  d.add_argument("--distributed", action="store_true",
                 help="join a multi-process run detected from the cluster "
                 "(Slurm, Open MPI, Cloud TPU) without the three flags")
  t.set_defaults(func=_train)

  e = ss.add_parser("eval", help="val accuracy of architectures with a "
                    "trained supernet's weights (BN recalibrated)")
  e.add_argument("--workdir", required=True, help="supernet workdir")
  e.add_argument("--arch", action="append", default=[], metavar="A.json",
                 help="architecture choice file (repeatable)")
  e.add_argument("--largest", action="store_true",
                 help="the space's largest architecture")
  e.add_argument("--smallest", action="store_true",
                 help="the space's smallest architecture")
  e.add_argument("--dataset", help="another dataset with the same classes "
                 "(default: the training dataset's val split)")
  e.add_argument("--json", action="store_true", help="print JSON")
  e.set_defaults(func=_eval)

  r = ss.add_parser(
      "rank-check", help="does the supernet rank architectures like "
      "training them does? (Kendall tau vs standalone, noise ceiling)",
      description="Sample architectures spread over MACs (largest, "
      "smallest and --arch files included), train each from scratch with "
      "a fixed recipe under 2 seeds, evaluate each with the supernet, and "
      "report Kendall tau / Spearman rho, top-k agreement and the noise "
      "ceiling (seed vs seed). Writes rank_check.json and rank_check.png; "
      "resumes (finished architectures are never retrained).")
  r.add_argument("--workdir", required=True, help="supernet workdir")
  r.add_argument("--samples", type=int, help="architectures (default 16)")
  r.add_argument("--arch", action="append", default=[], metavar="A.json",
                 help="architecture that must be in the sample (repeatable)")
  r.add_argument("--out", help="output directory (default: "
                 "WORKDIR/rank_check)")
  r.add_argument("--config", help="FILE.py[:VARIANT] with get_config(arg) "
                 "(default: hwnas/configs/rank_check.py)")
  r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. eval.bn_batches=8 or "
                 "standalone.train.steps=500 (repeatable)")
  r.add_argument("--no-progress", action="store_true", help="no progress bar")
  r.set_defaults(func=_rank_check)


# ---------------------------------------------------------------- config --

def resolve_config(args):
  """The run config from --config, --space, --dataset, --steps, --set."""
  return pipeline.supernet_config(args.config, space=args.space,
                                  dataset=args.dataset, steps=args.steps,
                                  overrides=args.set)


# -------------------------------------------------------------- commands --


def _train(args) -> int:
  config = resolve_config(args)
  first = True
  if args.distributed or any(v is not None for v in (
      args.coordinator, args.num_processes, args.process_id)):
    from hwnas import mesh  # pylint: disable=g-import-not-at-top
    mesh.initialize_distributed(args.coordinator,
                                num_processes=args.num_processes,
                                process_id=args.process_id)
    import jax  # pylint: disable=g-import-not-at-top
    first = jax.process_index() == 0
  pipeline.train_supernet(
      args.workdir, config,
      progress=first and not args.no_progress and sys.stderr.isatty(),
      echo=lambda line: print(line, flush=True))
  return 0


def _eval(args) -> int:
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  if not (args.arch or args.largest or args.smallest):
    raise errors.HwnasError("supernet eval: give --arch A.json, --largest or "
                            "--smallest")
  fn = evaluate.make_evaluator(args.workdir, dataset=args.dataset)
  space = fn.space
  archs, names = [], []
  if args.largest:
    archs.append(arch_lib.largest(space))
    names.append("largest")
  if args.smallest:
    archs.append(arch_lib.smallest(space))
    names.append("smallest")
  for path in args.arch:
    archs.append(_load_arch_of(path, space))
    names.append(path)
  accs, _ = fn(archs)
  rows = [{"arch": n, "arch_string": arch_lib.to_string(a), "accuracy": acc}
          for n, a, acc in zip(names, archs, accs)]
  if args.json:
    print(json.dumps(rows, indent=1))
  else:
    for r in rows:
      print(f"{r['accuracy']:.4f}  {r['arch']}  {r['arch_string']}")
  return 0


def _load_arch_of(path: str, space):
  """The architecture of `--arch path`, which must belong to the supernet's
  space (one error line naming the file otherwise)."""
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  a = arch_lib.load(path)
  try:
    arch_lib.validate(space, a)
  except errors.HwnasError as e:
    raise errors.HwnasError(f"--arch {path}: not an architecture of the "
                            f"supernet's space {space.name} ({e})") from None
  return a


def _rank_check(args) -> int:
  from hwnas import rank_check  # pylint: disable=g-import-not-at-top
  from hwnas.configs import rank_check as rank_check_config  # pylint: disable=g-import-not-at-top
  config = loader.load(args.config, module=rank_check_config)
  if args.samples is not None:
    if args.samples < 2:
      raise errors.HwnasError(f"--samples {args.samples}: must be >= 2")
    config.samples = args.samples
  config = loader.override(config, args.set,
                           source="hwnas/configs/rank_check.py")
  include = []
  if args.arch:
    from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
    from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
    saved = checkpoint.read_config(args.workdir)
    space = space_lib.load(saved.get("space_path") or
                           saved["config"]["space"])
    include = [_load_arch_of(path, space) for path in args.arch]
  result = rank_check.run(args.workdir, config, out=args.out,
                          include=include,
                          progress=not args.no_progress and
                          sys.stderr.isatty())
  print("\n".join(rank_check.summary_lines(result)))
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "rank_check")
  print(f"{out / 'rank_check.json'}, {out / 'rank_check.png'}")
  return 0
