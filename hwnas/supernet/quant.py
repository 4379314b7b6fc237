"""Simulated int8 accuracy of supernet subnets (TFLite full-int8, faked).

The Edge TPU and phone NPUs run full-int8 networks, and post-training
quantisation does not cost every architecture the same. This module
evaluates any architecture of a trained supernet as the TFLite converter
would quantise its exported network, without exporting it: BatchNorm is
recalibrated for the architecture (as in float evaluation), the
quantisation ranges are calibrated on the same images (the converter's
representative dataset: `Supernet.observe` on each batch, min and max over
all), and the val images run through the simulated int8 network
(`Supernet.__call__(..., int8_ranges=...)`). The int8 arithmetic and where
its quantisation points sit are `hwnas.supernet.int8`; the forward pass is
the supernet's own, one branch per block, as in float evaluation.

The architecture is traced data (`model.arch_arrays`), exactly as in float
evaluation, so evaluating any number of architectures compiles once per
resolution.

>>> from hwnas.supernet import quant
>>> fn = quant.make_evaluator("runs/supernet")     # doctest: +SKIP
>>> fn([arch_a, arch_b])                            # doctest: +SKIP
[0.96, 0.91]
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from hwnas import arch as arch_lib
from hwnas.supernet import evaluate as evaluate_lib
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib

ACCURACY_KINDS = ("float", "int8")


def calibrate(net: model_lib.Supernet, calib: jax.Array,
              arch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Ranges of every quantisation point over calibration images.

  Args:
    net: the supernet (BatchNorm statistics of `arch`).
    calib: [n, B, R, R, C] images (the representative dataset).
    arch: `model.arch_arrays` of one architecture.

  Returns:
    {point name: [min, max]} over all n batches.
  """
  seen = jax.lax.map(lambda x: net.observe(x, arch)[1], calib)
  return {k: jnp.stack([jnp.min(v[:, 0]), jnp.max(v[:, 1])])
          for k, v in seen.items()}


# --------------------------------------------------------- evaluation --


@functools.lru_cache(maxsize=8)
def _accuracy_fn(graphdef, kinds: tuple[str, ...]) -> Callable:
  """jit(params, stats, arch, calib, images, labels, mask) -> [accuracy]
  per kind in `kinds` ('float', 'int8'), sharing one BN recalibration."""

  def fn(params, stats, arch, calib, images, labels, mask):
    state = train_lib.recalibrate({"params": params, "stats": stats}, calib,
                                  arch, graphdef=graphdef)
    ranges = None
    if "int8" in kinds:
      ranges = calibrate(train_lib.merge(graphdef, state), calib, arch)

    def body(carry, xs):
      x, y, m = xs
      net = train_lib.merge(graphdef, state)
      out = []
      for kind in kinds:
        logits = net(x, arch, train=False,
                     int8_ranges=ranges if kind == "int8" else None)
        out.append(jnp.sum((jnp.argmax(logits, -1) == y) * m))
      return carry + jnp.stack(out), None

    correct, _ = jax.lax.scan(body, jnp.zeros(len(kinds)),
                              (images, labels, mask))
    return correct / jnp.maximum(jnp.sum(mask), 1.0)

  return jax.jit(fn)


@functools.lru_cache(maxsize=8)
def _ranges_fn(graphdef) -> Callable:
  def fn(params, stats, arch, calib):
    state = train_lib.recalibrate({"params": params, "stats": stats}, calib,
                                  arch, graphdef=graphdef)
    return calibrate(train_lib.merge(graphdef, state), calib, arch)
  return jax.jit(fn)


class Evaluator(evaluate_lib.Evaluator):
  """`evaluator(archs) -> (accuracies, metrics)` by float or simulated int8
  accuracy.

  Same data and compilation rule as `hwnas.supernet.evaluate.Evaluator`
  (BN recalibrated per architecture on `data`'s calibration images, which
  are also the int8 calibration images; one compilation per resolution).

  Args:
    graphdef, state, space, data: as `evaluate.Evaluator`.
    accuracy: 'int8' (rank by simulated int8 accuracy) or 'float'.
    also: further kinds computed in the same call (e.g. ('float',) with
      accuracy='int8'); every kind is returned in `metrics`, one dict per
      architecture, e.g. `{"accuracy_float": 0.97, "accuracy_int8": 0.96}`.
  """

  def __init__(self, graphdef, state: Mapping[str, Any], space, data, *,
               accuracy: str = "int8", also: Sequence[str] = ()):
    super().__init__(graphdef, state, space, data)
    if accuracy not in ACCURACY_KINDS or set(also) - set(ACCURACY_KINDS):
      raise ValueError(f"accuracy kinds are {ACCURACY_KINDS}; got "
                       f"{accuracy!r}, {tuple(also)!r}")
    self.accuracy = accuracy
    self.kinds = (accuracy,) + tuple(k for k in dict.fromkeys(also)
                                     if k != accuracy)

  def __call__(self, archs: Sequence[arch_lib.ArchChoice]
               ) -> tuple[list[float], list[dict[str, float]]]:
    out = []
    for a in archs:
      d = self.data.at(a.resolution)
      args = (self.params, self.stats, model_lib.arch_arrays(self.space, a),
              d.calib, d.images, d.labels, d.mask)
      out.append(self._executable(
          "supernet_eval_" + "_".join(self.kinds),
          _accuracy_fn(self.graphdef, self.kinds), a.resolution, args,
          kinds=list(self.kinds))(*args))
    rows = jax.device_get(out)
    metrics = [{f"accuracy_{k}": float(v) for k, v in zip(self.kinds, row)}
               for row in rows]
    return [float(row[0]) for row in rows], metrics

  def ranges(self, arch: arch_lib.ArchChoice) -> dict[str, Any]:
    """The calibrated [min, max] of every quantisation point of `arch`."""
    d = self.data.at(arch.resolution)
    return jax.device_get(_ranges_fn(self.graphdef)(
        self.params, self.stats, model_lib.arch_arrays(self.space, arch),
        d.calib))


def make_evaluator(workdir: str | os.PathLike[str], space=None, *,
                   dataset: str | None = None, accuracy: str = "int8",
                   also: Sequence[str] = ()) -> Evaluator:
  """`evaluate.make_evaluator` ranking by `accuracy` ('int8' or 'float').

  Args:
    workdir: a `hwnas supernet train` workdir.
    space: if given, must be the workdir's space.
    dataset: evaluate on another dataset with the same classes.
    accuracy: the accuracy returned (and ranked by in search).
    also: other kinds computed in the same pass (see `Evaluator`).
  """
  base = evaluate_lib.make_evaluator(workdir, space, dataset=dataset)
  return Evaluator(base.graphdef, {"params": base.params,
                                   "stats": base.stats}, base.space,
                   base.data, accuracy=accuracy, also=also)
