"""`hwnas train`: train one standalone architecture (fine-tune or scratch).

    hwnas train --arch best.json --dataset digits --workdir runs/best \
        [--init supernet:runs/sn | scratch] [--steps N] [--resolution R] \
        [--config VARIANT | FILE.py[:VARIANT]] [--set KEY=VALUE ...]

The config is an ml_collections `ConfigDict` from `hwnas/configs/train.py`
(`get_config(variant)`, the same layout as the supernet's) or from a user's
file with `get_config(arg)`; `--dataset`, `--init`, `--steps`,
`--resolution`, `--seed` and then every `--set key.sub=value` (YAML scalars,
e.g. `--set optimizer.learning_rate=0.05`) override it. Rerunning the
command resumes the run from its workdir.
"""

from __future__ import annotations

import pathlib
import sys

from hwnas import errors
from hwnas.configs import loader
from hwnas.configs import train as train_config

# The shortcut flags: flag -> config key.
_SHORTCUTS = {"dataset": "dataset", "init": "init", "steps": "train.steps",
              "resolution": "resolution", "seed": "seed"}


def register(sub) -> None:
  p = sub.add_parser(
      "train", help="train one architecture (fine-tune from a supernet or "
      "from scratch); resumes from its workdir",
      description="Train one architecture. Defaults: hwnas/configs/train.py "
      "(1000 steps, batch 64, SGD Nesterov lr 0.1, 50 warm-up steps then "
      "cosine, weight decay 4e-5, label smoothing 0.1, digits); --config, "
      "then the flags, then --set override it.")
  p.add_argument("--arch", help="architecture JSON: a choice (arch sample, "
                 "search best.json) or a network spec")
  p.add_argument("--reference", help="a shipped reference network instead")
  p.add_argument("--space", help="space of the architecture (default: the "
                 "one named in the file)")
  p.add_argument("--workdir", required=True, help="run directory")
  p.add_argument("--config", help="config variant (rank, ...) or "
                 "FILE.py[:VARIANT] with get_config(arg)")
  p.add_argument("--dataset", help="digits (default), digits-N, tfds:NAME "
                 "or folder:PATH")
  p.add_argument("--init", help="scratch (default) or supernet:WORKDIR")
  p.add_argument("--steps", type=int, help="training steps")
  p.add_argument("--resolution", type=int,
                 help="input resolution (default: the architecture's)")
  p.add_argument("--seed", type=int, help="seed of weights, shuffle, "
                 "augmentation")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. "
                 "--set optimizer.learning_rate=0.05 (repeatable)")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar (metrics.jsonl is always written)")
  p.set_defaults(func=_train)


def load_config(spec: str | None, args=None, items=()):
  """The train ConfigDict: `--config`, shortcut flags of `args`, `--set`."""
  config = loader.load(spec, module=train_config)
  for flag, key in _SHORTCUTS.items():
    value = getattr(args, flag, None) if args is not None else None
    if value is not None:
      *parents, leaf = key.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = value
  config = loader.override(config, items, source="hwnas/configs/train.py")
  for section, key in (("train", "steps"), ("train", "batch_size"),
                       ("eval", "batch_size"), ("train", "log_every"),
                       ("train", "checkpoint_every")):
    errors.positive(config[section][key], f"{section}.{key} =")
  return config


def _train(args) -> int:
  from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
  from hwnas.cli import arch as arch_cli  # pylint: disable=g-import-not-at-top
  config = load_config(args.config, args, args.set)
  arch, spec = arch_cli.load_arch_and_spec(
      args.arch, reference=args.reference, space=args.space,
      resolution=config.resolution or None)
  print(f"training {spec.name} on {config.dataset} for "
        f"{config.train.steps} steps (init {config.init}) in {args.workdir}")
  from hwnas import workdir  # pylint: disable=g-import-not-at-top
  with workdir.lock(args.workdir):  # one training run per workdir
    result = train_standalone.train(
        spec, config, args.workdir, arch=arch,
        progress=not args.no_progress and sys.stderr.isatty())
  print(f"step {result['step']}: val accuracy "
        f"{result.get('val/accuracy', float('nan')):.4f}, test accuracy "
        f"{result['test/accuracy']:.4f} ({result['num_params']} params); "
        f"{pathlib.Path(args.workdir) / 'result.json'}")
  return 0
