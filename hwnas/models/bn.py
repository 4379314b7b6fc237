"""BatchNorm recalibration: running statistics from a few batches.

A subnet cut out of a supernet (or a network whose weights changed after
training) has running BatchNorm statistics that do not match its own
activations. Once-for-All's remedy, used everywhere in hwnas: run a few
training batches in train mode, take each batch's own mean and variance,
and set the running statistics to their average over the batches.

`average_batch_statistics` is that average for any model, given a function
that returns one batch's statistics; it is pure and traceable (the supernet
evaluator calls it inside its jitted accuracy function).
`recalibrate_bn` applies it to a standalone NNX network (`nnx.BatchNorm`
layers), e.g. before an export. Neither changes anything of the caller's
besides the statistics `recalibrate_bn` is asked to set.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Stats = Any  # a pytree of BatchNorm statistics (an nnx.State)


def average_batch_statistics(batch_statistics: Callable[[Stats, jax.Array],
                                                        Stats],
                             stats: Stats, images: jax.Array) -> Stats:
  """The mean, over batches, of each batch's own BatchNorm statistics.

  Args:
    batch_statistics: `(stats, x) -> stats` that runs one batch `x` in train
      mode with momentum 0, i.e. returns the batch's own mean and variance
      where it computes them (and `stats` unchanged elsewhere, e.g. for the
      blocks a supernet's architecture does not use).
    stats: the current statistics (their structure and the unused entries).
    images: `[n, B, R, R, C]`, n >= 1 batches of one shape.

  Returns:
    Statistics with the same structure: the average over the n batches.
  """
  def body(total, x):
    return jax.tree.map(jnp.add, total, batch_statistics(stats, x)), None

  zeros = jax.tree.map(jnp.zeros_like, stats)
  total, _ = jax.lax.scan(body, zeros, images)
  return jax.tree.map(lambda t: t / images.shape[0], total)


def recalibrate_bn(model: nnx.Module, batches: Iterable[np.ndarray]) -> int:
  """Sets every `nnx.BatchNorm`'s running statistics of `model` to the
  average of its batch statistics over `batches`.

  Parameters and every other attribute of `model` (the layers' `momentum`
  included) are left as they are; the batch statistics are computed on a
  copy whose BatchNorm layers use momentum 0.

  Args:
    model: an NNX module with `nnx.BatchNorm` layers, called as
      `model(x, train=True)`.
    batches: float32 image batches `[b, R, R, C]` (normalised), all of one
      shape.

  Returns:
    The number of batches used (0: nothing changed).
  """
  xs = [np.asarray(x, np.float32) for x in batches]
  if not xs:
    return 0
  probe = nnx.clone(model)
  for _, m in probe.iter_modules():
    if isinstance(m, nnx.BatchNorm):
      m.momentum = 0.0  # the copy's: one batch's own statistics
  graphdef, params, stats, rest = nnx.split(probe, nnx.Param, nnx.BatchStat,
                                            ...)

  def batch_statistics(s, x):
    m = nnx.merge(graphdef, params, s, rest, copy=True)
    m(x, train=True)
    return nnx.state(m, nnx.BatchStat)

  new = jax.jit(average_batch_statistics, static_argnums=0)(
      batch_statistics, stats, np.stack(xs))
  nnx.update(model, new)
  return len(xs)
