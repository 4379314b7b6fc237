"""Rank-check config: does a trained supernet order architectures the way
training them from scratch does? (`hwnas supernet rank-check`)

  hwnas supernet rank-check --workdir runs/sn --samples 16
  hwnas supernet rank-check --workdir runs/sn --samples 16 \
      --set eval.bn_batches=8 --set standalone.train.steps=500

`standalone` is a standalone training config (`hwnas/configs/train.py`,
variant 'rank': the fixed, short recipe every sampled architecture is
trained with, from scratch); its dataset and val hold-out are always the
supernet's, so both accuracies are measured on the same images.
"""

import ml_collections

from hwnas.configs import train as train_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The rank-check config (`arg`: '' only)."""
  if arg:
    raise ValueError(f"unknown rank-check config variant {arg!r}; use ''")
  c = ml_collections.ConfigDict()
  c.samples = 16                   # architectures (largest + smallest +
                                   # --arch files + stratified random ones)
  c.seeds = (0, 1)                 # standalone seeds (2+: noise ceiling)
  c.stratify = "macs"              # macs | params: spread the sample over it
  c.pool = 2000                    # random architectures to stratify from
  c.seed = 0                       # seeds the sample
  c.top_k = 3                      # is the supernet's best in the top k?

  c.eval = ml_collections.ConfigDict()
  c.eval.bn_batches = 0            # BN recalibration batches (0 = the
                                   # supernet config's eval.bn_batches)
  c.eval.finetune_steps = 0        # fine-tune each architecture from the
                                   # supernet's weights this many steps
                                   # before evaluating (0: inherited
                                   # weights only); cost is reported
  c.eval.finetune_learning_rate = 1e-3

  c.standalone = train_config.get_config("rank")
  return c
