"""Standalone training config (`hwnas train`, fine-tuning, rank-check).

  hwnas train --arch best.json --workdir runs/ft --init supernet:runs/sn
  hwnas train --arch a.json --workdir W --steps 300 \
      --set optimizer.learning_rate=0.05 --set train.batch_size=32
  hwnas train --arch a.json --workdir W --config my_train.py:VARIANT

The same layout as the supernet's config (`hwnas/configs/supernet.py`): data
keys at the top, `train`, `optimizer` (the same keys, built by
`hwnas.optim`) and `eval` sections. Variants (`get_config(arg)`): '' (the
defaults: 1000 steps, batch 64, SGD-Nesterov lr 0.1, cosine) and 'rank' (the
short fixed recipe `hwnas supernet rank-check` trains every sampled
architecture with).
"""

import ml_collections

from hwnas.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The standalone training config of variant `arg` ('' or 'rank')."""
  c = ml_collections.ConfigDict()
  c.dataset = "digits"             # digits | tfds:NAME | folder:PATH | ...
  c.data_dir = ""                  # tfds data dir ('' = tfds default)
  c.manual_dir = ""                # tfds manual dir ('' = none)
  c.val_fraction = 0.1             # held out from train
  c.seed = 0                       # initial weights, shuffle, augmentation
  c.init = "scratch"               # scratch | supernet:WORKDIR
  c.resolution = 0                 # 0 = the architecture's

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.batch_size = 64          # global (all devices)
  c.train.label_smoothing = 0.1
  c.train.augment = True
  c.train.log_every = 50           # steps between metrics rows
  c.train.checkpoint_every = 250   # steps between checkpoints + val passes

  c.optimizer = common.optimizer(warmup_steps=50)

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128

  if arg == "rank":
    c.train.steps = 200
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 5e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 10
    c.eval.batch_size = 144
  elif arg:
    raise ValueError(f"unknown train config variant {arg!r}; use '' or "
                     "'rank'")
  return c
