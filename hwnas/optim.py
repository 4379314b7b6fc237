"""The one optimiser and learning-rate schedule of every hwnas training run.

Supernet training (`hwnas.supernet`) and standalone training
(`hwnas.train_standalone`, `hwnas train`, rank-check) both build their Optax
optimiser here, from the `optimizer` section of their ConfigDict
(`hwnas/configs/supernet.py`, `hwnas/configs/train.py`):

- SGD with (Nesterov) momentum or AdamW;
- weight decay on conv/dense kernels only (`decay_mask`): for SGD an L2
  term added to the gradient before momentum (coupled, as PyTorch's SGD
  `weight_decay`), for AdamW decoupled from the adaptive step;
- optional global-norm gradient clipping;
- linear warm-up, then cosine decay to `final_lr_ratio * learning_rate`.

This module sits at the lowest layer: it depends on optax and jax only (and
`hwnas.errors` for its one error line).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from hwnas import errors


def warmup_cosine(peak_lr: float, steps: int, warmup_steps: int,
                  final_lr_ratio: float) -> optax.Schedule:
  """Linear warm-up (at most `steps - 1`), then cosine decay to
  `final_lr_ratio * peak_lr` at `steps`."""
  warmup = min(int(warmup_steps), max(steps - 1, 0))
  return optax.schedules.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup,
      decay_steps=max(steps, warmup + 1), end_value=peak_lr * final_lr_ratio)


def decay_mask(params):
  """Weight decay on conv/dense kernels only (not BN, not biases).

  Decided by rank (kernels have >= 2 dims; BN scales/offsets and biases
  have 1): on an nnx.State the last path entry of every leaf is `.value`,
  so matching on the name 'kernel' would select nothing.
  """
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def build_optimizer(name: str, lr: optax.ScalarOrSchedule, *,
                    momentum: float, nesterov: bool, b1: float, b2: float,
                    weight_decay: float, grad_clip: float,
                    key: str = "optimizer") -> optax.GradientTransformation:
  """SGD (momentum, optionally Nesterov) or AdamW with weight decay on
  kernels only (`decay_mask`), optionally clipped by global norm.

  SGD's decay is coupled L2 (`weight_decay * param` joins the gradient
  before momentum and the learning rate); AdamW's is decoupled (scaled by
  the learning rate, outside the adaptive moments).

  `key` names the setting in the error for an unknown `name`.
  """
  if name == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.sgd(lr, momentum=momentum, nesterov=nesterov))
  elif name == "adamw":
    tx = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay,
                     mask=decay_mask)
  else:
    raise errors.HwnasError(f"{key} = {name!r}: use 'sgd' or 'adamw'")
  if grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return tx


def make_schedule(optimizer: Any, steps: int) -> optax.Schedule:
  """`warmup_cosine` from an `optimizer` config section.

  Args:
    optimizer: a config's `optimizer` section (learning_rate, warmup_steps,
      final_lr_ratio).
    steps: total training steps (the length of the cosine).
  """
  o = optimizer
  return warmup_cosine(o.learning_rate, steps, o.warmup_steps,
                       o.final_lr_ratio)


def make_optimizer(optimizer: Any, steps: int, *,
                   key: str = "config.optimizer.name"
                   ) -> optax.GradientTransformation:
  """`build_optimizer` on `make_schedule` from an `optimizer` config section.

  Args:
    optimizer: a config's `optimizer` section (name 'sgd' | 'adamw',
      learning_rate, momentum, nesterov, b1, b2, weight_decay, warmup_steps,
      final_lr_ratio, grad_clip).
    steps: total training steps (the length of the cosine).
    key: how the error for an unknown name refers to the setting.
  """
  o = optimizer
  return build_optimizer(
      o.name, make_schedule(o, steps), momentum=o.momentum,
      nesterov=o.nesterov, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
      grad_clip=o.grad_clip, key=key)
