"""Config sections that several run configs share."""

import ml_collections


def optimizer(*, warmup_steps: int) -> ml_collections.ConfigDict:
  """The optimiser section read by `hwnas.optim.make_optimizer`: SGD with
  Nesterov momentum (or AdamW), warmup then cosine decay."""
  c = ml_collections.ConfigDict()
  c.name = "sgd"         # sgd (Nesterov) | adamw
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = True
  c.b1 = 0.9             # adamw
  c.b2 = 0.999           # adamw
  c.weight_decay = 4e-5
  c.warmup_steps = warmup_steps
  c.final_lr_ratio = 0.0
  c.grad_clip = 0.0      # 0: off
  return c
