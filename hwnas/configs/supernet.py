"""Supernet training config.

  hwnas supernet train --space tiny --dataset digits --workdir /tmp/sn
  hwnas supernet train --workdir W --config hwnas/configs/supernet.py:tiny \
      --config.optimizer.learning_rate=0.01

Variants (`get_config(arg)`, `arg` a comma-separated list): a scale, ''
(Once-for-All-like settings for real spaces and datasets, accelerator
scale) or 'tiny' (the quickstart: the tiny space on digits, a few minutes
on a 2-core CPU; tests run it with 2 steps), then optionally a training
recipe:

- 'ps_n2' (the default of the full scale, ''): progressive shrinking
  with channel sorting and 2 random subnets per step besides the largest
  and smallest. The rank ablation (docs/supernet.md) measured it as the
  best ranking recipe: Kendall tau 0.67 (90% of the seed-vs-seed ceiling)
  against 0.47 for 'sandwich' at the same training compute (16
  architectures: the standard error of each tau is about 0.2).
  `tiny,ps_n2` runs it for 450 steps: steps x subnets per step equal to
  the sandwich's 600 x 3.
- 'sandwich' (the default of 'tiny'): 1 random subnet per step, no
  progressive shrinking (tiny: 600 steps). In the quickstart's 450-600
  steps the progressive phases leave the small subnets undertrained: run
  side by side on one host, `tiny,ps_n2` ended with the smallest subnet at
  83.3% val against 95.8% for `tiny,sandwich` (largest 96.5% / 97.2%), took
  1.03x the wall time, and the quickstart's exported network scored 96.9%
  against 97.8% test (benchmarks/RESULTS.md, "Quickstart").

  hwnas supernet train --workdir W --config hwnas/configs/supernet.py:tiny,ps_n2
"""

import ml_collections

from hwnas.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The supernet config of variant `arg` (scale[,recipe]; module doc)."""
  scale, _, recipe = (arg or "").partition(",")
  if scale not in ("", "tiny") or recipe not in ("", "ps_n2", "sandwich"):
    raise ValueError(f"unknown supernet config variant {arg!r}; use '' or "
                     "'tiny', optionally followed by a recipe, ',ps_n2' "
                     "(the default of '') or ',sandwich' (the default of "
                     "'tiny')")
  recipe = recipe or ("sandwich" if scale == "tiny" else "ps_n2")
  c = ml_collections.ConfigDict()
  c.space = "mobilenetv3"          # shipped space name or YAML path
  c.dataset = "digits"             # digits | tfds:NAME | folder:PATH
  c.data_dir = ""                  # tfds data dir ('' = tfds default)
  c.manual_dir = ""                # tfds manual dir ('' = none)
  c.val_fraction = 0.1             # held out from train, for search
  c.num_classes = 0                # 0 = the dataset's
  c.seed = 0
  c.depthwise = "auto"             # auto | lax | shift (see hwnas.models)
  c.dropout = 0.1
  c.kernel_transform = False       # Once-for-All's learned kernel transform
                                   # for smaller kernels (else centre crop)

  c.train = ml_collections.ConfigDict()
  c.train.steps = 20000
  c.train.batch_size = 128
  c.train.n_random = 2             # random subnets per step (besides the
                                   # largest and smallest)
  c.train.unroll = False           # unroll the sandwich loop (one compiled
                                   # copy of the supernet per architecture)
  c.train.kd_ratio = 1.0           # in-place distillation weight
  c.train.label_smoothing = 0.1
  c.train.resolutions = ()         # () = every resolution of the space
  c.train.progressive_shrinking = True   # recipe ps_n2 (module doc)
  c.train.shrink_schedule = (0.0, 0.25, 0.5, 0.75)  # phase starts
  c.train.sort_channels = True     # with progressive shrinking: sort mid
                                   # channels by importance before the
                                   # expansion phase (hwnas.supernet.channels)
  c.train.augment = True
  c.train.log_every = 50
  c.train.checkpoint_every = 1000

  c.optimizer = common.optimizer(warmup_steps=500)

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.bn_batches = 4            # train batches for BN recalibration
  c.eval.val_batches = 0           # 0 = the whole val split

  if scale == "tiny":
    c.space = "tiny"
    c.dropout = 0.0
    c.train.steps = 450            # ps_n2: x 4 subnets = the compute of the
                                   # sandwich's 600 x 3
    c.train.batch_size = 32
    c.train.unroll = False         # unrolled: 4 copies of the branching
                                   # supernet to compile (docs/supernet.md)
    c.train.kd_ratio = 0.5
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 5e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 10
    c.eval.batch_size = 144
    c.eval.bn_batches = 2
  if recipe == "sandwich":
    c.train.progressive_shrinking = False
    c.train.n_random = 1
    if scale == "tiny":
      c.train.steps = 600
  return c
