"""`hwnas train`: train one standalone architecture (fine-tune or scratch).

    hwnas train --arch best.json --dataset digits --workdir runs/best \
        [--init supernet:runs/supernet | scratch] [--steps N] [--resolution R]

Hyper-parameters come from `hwnas.train_standalone.TrainConfig` defaults,
then an optional `--config FILE` (JSON or YAML with TrainConfig keys), then
the flags. Rerunning the command resumes the run from its workdir.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import yaml

from hwnas import errors

# flag -> TrainConfig field, for the flags that override the config.
_OVERRIDES = {
    "dataset": str, "data_dir": str, "manual_dir": str, "val_fraction": float,
    "steps": int, "batch_size": int, "resolution": int, "optimizer": str,
    "learning_rate": float, "momentum": float, "b1": float, "b2": float,
    "weight_decay": float, "warmup_steps": int, "final_lr_ratio": float,
    "grad_clip": float, "label_smoothing": float, "seed": int, "init": str,
    "log_every": int, "checkpoint_every": int, "eval_batch_size": int,
}


def register(sub) -> None:
  p = sub.add_parser(
      "train", help="train one architecture (fine-tune from a supernet or "
      "from scratch); resumes from its workdir",
      description="Train one architecture. Defaults: "
      "hwnas.train_standalone.TrainConfig (1000 steps, batch 64, SGD "
      "Nesterov lr 0.1, 50 warm-up steps then cosine, weight decay 4e-5, "
      "label smoothing 0.1, digits); --config FILE, then flags, override.")
  p.add_argument("--arch", help="architecture JSON: a choice (arch sample, "
                 "search best.json) or a network spec")
  p.add_argument("--reference", help="a shipped reference network instead")
  p.add_argument("--space", help="space of the architecture (default: the "
                 "one named in the file)")
  p.add_argument("--workdir", required=True, help="run directory")
  p.add_argument("--config", help="JSON/YAML file of TrainConfig values")
  p.add_argument("--no-augment", action="store_true",
                 help="no training augmentation")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar (metrics.jsonl is always written)")
  for name, kind in _OVERRIDES.items():
    p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                   help=_HELP.get(name, "overrides the config value"))
  p.set_defaults(func=_train)


_HELP = {
    "dataset": "digits (default), tfds:NAME or folder:PATH",
    "init": "scratch (default) or supernet:WORKDIR",
    "resolution": "input resolution (default: the architecture's)",
    "optimizer": "sgd (Nesterov) or adamw",
}


def load_config(path: str | None, overrides: dict[str, object]):
  """TrainConfig from defaults, an optional file, then flag overrides."""
  from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
  values: dict[str, object] = {}
  if path:
    p = pathlib.Path(path)
    if not p.is_file():
      raise errors.HwnasError(f"{p}: no such config file")
    values = yaml.safe_load(errors.read_text(p, what="config file")) or {}
    if not isinstance(values, dict):
      raise errors.HwnasError(f"{p}: expected a mapping of TrainConfig keys")
    known = {f.name for f in dataclasses.fields(train_standalone.TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise errors.HwnasError(f"{p}: unknown key(s) {unknown}; allowed: "
                              f"{sorted(known)}")
  values.update({k: v for k, v in overrides.items() if v is not None})
  return train_standalone.TrainConfig(**values)


def load_arch_and_spec(path: str | None, *, reference: str | None,
                       space: str | None, resolution: int | None):
  """(ArchChoice or None, NetSpec) of an --arch file or --reference."""
  from hwnas.cli import arch as arch_cli  # pylint: disable=g-import-not-at-top
  return arch_cli.load_arch_and_spec(path, reference=reference, space=space,
                                     resolution=resolution)


def _train(args) -> int:
  from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
  overrides = {k: getattr(args, k) for k in _OVERRIDES}
  if args.no_augment:
    overrides["augment"] = False
  config = load_config(args.config, overrides)
  for key in ("steps", "batch_size", "eval_batch_size", "log_every",
              "checkpoint_every"):
    errors.positive(getattr(config, key), "--" + key.replace("_", "-"))
  arch, spec = load_arch_and_spec(args.arch, reference=args.reference,
                                  space=args.space,
                                  resolution=config.resolution)
  print(f"training {spec.name} on {config.dataset} for {config.steps} steps "
        f"(init {config.init}) in {args.workdir}")
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
