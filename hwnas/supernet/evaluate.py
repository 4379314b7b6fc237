"""Accuracy of architectures with the supernet's shared weights.

For each architecture: recalibrate BatchNorm statistics on a few training
batches (the running statistics of a supernet mix all architectures, so
this is required for an honest accuracy), then classify the held-out `val`
split (never `test`). Recalibration and the val pass are one jitted call
whose inputs are the architecture's arrays, so evaluating any number of
architectures compiles once per resolution.

>>> from hwnas.supernet import evaluate
>>> fn = evaluate.make_evaluator("runs/supernet")    # doctest: +SKIP
>>> fn([arch_a, arch_b])                              # doctest: +SKIP
([0.97, 0.93], [{}, {}])
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hwnas import aot_cache
from hwnas import arch as arch_lib
from hwnas import data as data_lib
from hwnas import space as space_lib
from hwnas.errors import HwnasError
from hwnas.models.standalone import Network
from hwnas.netspec import NetSpec
from hwnas.space import SearchSpace
from hwnas.supernet import checkpoint, extract
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib


@dataclasses.dataclass(frozen=True)
class Arrays:
  """Fixed evaluation inputs at one resolution (numpy, host memory).

  Attributes:
    calib: [n, B, R, R, C] training images for BN recalibration.
    images: [nb, B, R, R, C] held-out images (last batch padded).
    labels: [nb, B] labels.
    mask: [nb, B] 1 for real rows, 0 for padding.
  """

  calib: np.ndarray
  images: np.ndarray
  labels: np.ndarray
  mask: np.ndarray


def calibration_images(ds: data_lib.Dataset, resolution: int, *,
                       batches: int, batch_size: int, seed: int) -> np.ndarray:
  """[batches, B, R, R, C] training images (not augmented) for BN stats.

  `B` is `batch_size`, clipped to the size of the training split.
  """
  batch_size = max(1, min(int(batch_size), ds.info.split_sizes["train"]))
  it = data_lib.batches(ds, "train", batch_size=batch_size,
                        resolution=resolution, seed=seed + 1, augment=False)
  return np.stack([next(it)["image"] for _ in range(max(int(batches), 1))])


class EvalData:
  """Evaluation inputs of a dataset, built once per resolution (cached).

  Args:
    dataset: the `hwnas.data.Dataset`.
    batch_size: rows per evaluation batch (clipped to the split size; the
      last batch is padded and masked, so one shape, one compilation).
    bn_batches: training batches (not augmented) for BN recalibration.
    val_batches: evaluate on at most this many batches (0: the whole split).
    seed: chooses the recalibration images.
    bn_batch_size: rows per recalibration batch (default
      `min(batch_size, 64)`).
    split: the evaluation split (`val` for search; never `test` there).
  """

  def __init__(self, dataset: data_lib.Dataset, *, batch_size: int = 256,
               bn_batches: int = 4, val_batches: int = 0, seed: int = 0,
               bn_batch_size: int | None = None, split: str = "val"):
    self.dataset = dataset
    self.batch_size = int(batch_size)
    self.bn_batches = max(int(bn_batches), 1)
    self.bn_batch_size = int(bn_batch_size or min(self.batch_size, 64))
    self.val_batches = int(val_batches)
    self.seed = int(seed)
    self.split = split
    self._cache: dict[int, Arrays] = {}

  def at(self, resolution: int) -> Arrays:
    """The arrays at `resolution` (built on first use)."""
    if resolution not in self._cache:
      ds, split = self.dataset, self.split
      bs = max(1, min(self.batch_size, ds.info.split_sizes[split]))
      rows = []
      for r in data_lib.batches(ds, split, batch_size=bs,
                                resolution=resolution, seed=self.seed,
                                shuffle=False, repeat=False,
                                drop_remainder=False):
        rows.append(r)
        if self.val_batches and len(rows) >= self.val_batches:
          break
      self._cache[resolution] = Arrays(
          calib=calibration_images(ds, resolution, batches=self.bn_batches,
                                   batch_size=self.bn_batch_size,
                                   seed=self.seed),
          images=np.stack([r["image"] for r in rows]),
          labels=np.stack([r["label"] for r in rows]).astype(np.int32),
          mask=np.stack([r["mask"] for r in rows]).astype(np.float32))
    return self._cache[resolution]


@functools.lru_cache(maxsize=8)
def _accuracy_fn(graphdef) -> Callable:
  """jit(params, stats, arch, calib, images, labels, mask) -> accuracy."""

  def fn(params, stats, arch, calib, images, labels, mask):
    state = train_lib.recalibrate({"params": params, "stats": stats}, calib,
                                  arch, graphdef=graphdef)

    def body(carry, xs):
      x, y, m = xs
      out = train_lib.eval_step(state, {"image": x, "label": y, "mask": m},
                                arch, graphdef=graphdef)
      return (carry[0] + out["correct"], carry[1] + out["count"]), None

    (correct, count), _ = jax.lax.scan(
        body, (jnp.zeros(()), jnp.zeros(())), (images, labels, mask))
    return correct / jnp.maximum(count, 1.0)

  return jax.jit(fn)


class Evaluator:
  """`evaluator(archs) -> (accuracies, metrics)` for one supernet state.

  Holds the compiled function (one per resolution) and the evaluation data,
  so a search calling it once per generation never recompiles.

  Args:
    graphdef: the supernet's graphdef.
    state: the train state (`{"params", "stats", ...}`).
    space: the supernet's space.
    data: the `EvalData`.
  """

  def __init__(self, graphdef, state: Mapping[str, Any], space: SearchSpace,
               data: EvalData):
    self.graphdef = graphdef
    self.params = state["params"]
    self.stats = state["stats"]
    self.space = space
    self.data = data
    # (function name, resolution) -> executable (`_executable`)
    self._compiled: dict[tuple, Callable] = {}

  def __call__(self, archs: Sequence[arch_lib.ArchChoice]
               ) -> tuple[list[float], list[dict[str, float]]]:
    """(accuracies, metrics) of `archs`, one entry each, in order; the
    float evaluator has no other metrics (empty dicts)."""
    out = []
    for a in archs:
      d = self.data.at(a.resolution)
      args = (self.params, self.stats, model_lib.arch_arrays(self.space, a),
              d.calib, d.images, d.labels, d.mask)
      out.append(self._fn(a.resolution, args)(*args))
    return [float(x) for x in jax.device_get(out)], [{} for _ in archs]

  def _fn(self, resolution: int, args: tuple) -> Callable:
    """The compiled accuracy function at `resolution`."""
    return self._executable("supernet_eval", _accuracy_fn(self.graphdef),
                            resolution, args)

  def _executable(self, name: str, jitted: Callable, resolution: int,
                  args: tuple, **key_parts: Any) -> Callable:
    """`jitted` compiled for `args` (of `resolution`), once per evaluator,
    loaded from the compiled-code cache (`hwnas.aot_cache`) where it is
    on; `key_parts` name what else `jitted` closes over."""
    key = (name, resolution)
    if key not in self._compiled:
      self._compiled[key] = aot_cache.compiled(name, jitted, args, key_parts={
          "space": self.space.to_dict(),
          "graphdef": aot_cache.graph_digest(self.graphdef), **key_parts})
    return self._compiled[key]


def evaluate(state: Mapping[str, Any], archs: Sequence[arch_lib.ArchChoice],
             data: EvalData, *, graphdef, space: SearchSpace) -> list[float]:
  """Held-out accuracy of each architecture (BN recalibrated per arch).

  Args:
    state: a train state (`{"params", "stats", ...}`, see
      `train.create_state`).
    archs: architectures of `space` (each evaluated at its resolution).
    data: the `EvalData` (the `val` split by default).
    graphdef: the supernet's graphdef.
    space: the supernet's space.

  Returns:
    Accuracies in [0, 1], in the order of `archs`.
  """
  return Evaluator(graphdef, state, space, data)(archs)[0]


# ------------------------------------------------------ from a workdir --


def load_workdir(workdir: str | os.PathLike[str], *, step: int | None = None
               ) -> tuple[SearchSpace, Any, dict[str, Any],
                          ml_collections.ConfigDict]:
  """`(space, graphdef, state, config)` restored from a supernet workdir.

  Everything is rebuilt from the workdir alone: config.json (the resolved
  config, the space's path, the number of classes) and the Orbax
  checkpoint (`step`, default the latest).

  Raises:
    HwnasError: no config.json, an incomplete one, no checkpoint or a
      corrupt checkpoint (one line naming the path).
  """
  workdir = pathlib.Path(workdir)
  saved = checkpoint.read_config(workdir)
  try:
    config = ml_collections.ConfigDict(saved["config"])
    space = space_lib.load(saved.get("space_path") or config.space)
    num_classes = int(saved["num_classes"])
  except KeyError as e:
    raise HwnasError(f"{workdir / 'config.json'}: missing key {e}; not a "
                     "complete supernet workdir, retrain into a new "
                     "--workdir") from None
  graphdef, abstract = checkpoint.abstract_state(space, config, num_classes)
  state = checkpoint.restore_checkpoint(workdir, abstract, step=step)
  if state is None:
    raise HwnasError(f"{workdir / 'checkpoints'}: no checkpoint; train the "
                     f"supernet first (`hwnas supernet train --workdir "
                     f"{workdir}`)")
  return space, graphdef, state, config


def _check_space(space: SearchSpace, given: SearchSpace | None,
                 workdir: pathlib.Path) -> None:
  if given is not None and given.to_dict() != space.to_dict():
    raise HwnasError(f"{workdir / 'config.json'}: the supernet was trained "
                     f"on space {space.name}, not {given.name}; use the same "
                     "--space or another supernet workdir")


def eval_data(config: ml_collections.ConfigDict,
              dataset: str | None = None) -> EvalData:
  """The `EvalData` of a run config (`config.eval`, its dataset's val, or
  `dataset`'s with the same hold-out)."""
  e = config.eval
  return EvalData(data_lib.load_for(config, dataset=dataset),
                  batch_size=e.batch_size, bn_batches=e.bn_batches,
                  val_batches=e.get("val_batches", 0), seed=config.seed)


def make_evaluator(workdir: str | os.PathLike[str],
                   space: SearchSpace | None = None, *,
                   dataset: str | None = None
                   ) -> Evaluator:
  """An evaluator rebuilt from a supernet workdir alone.

  Args:
    workdir: a `hwnas supernet train` workdir.
    space: if given, must be the workdir's space (checked).
    dataset: evaluate on another dataset with the same classes (default:
      the training dataset's `val` split).

  Returns:
    An `Evaluator`: `fn(archs) -> ([val accuracy], [metrics])`, BN
    recalibrated per architecture (`config.eval` settings of the run).
  """
  workdir = pathlib.Path(workdir)
  sp, graphdef, state, config = load_workdir(workdir)
  _check_space(sp, space, workdir)
  return Evaluator(graphdef, state, sp, eval_data(config, dataset))


def extract_subnet(workdir: str | os.PathLike[str],
                   arch: arch_lib.ArchChoice, *, spec: NetSpec | None = None,
                   depthwise: str = "auto", recalibrate: bool = True
                   ) -> Network:
  """The standalone `Network` of `arch` with the supernet's weights.

  Args:
    workdir: a `hwnas supernet train` workdir.
    arch: an architecture of the workdir's space.
    spec: the network to fill (default: `arch.decode`); may differ from it
      only in input resolution.
    depthwise: depthwise implementation of the result (`lax` for export).
    recalibrate: recalibrate BatchNorm statistics for `arch` first, on
      `config.eval.bn_batches` training batches at the spec's resolution.

  Returns:
    The network (call with `train=False`).
  """
  workdir = pathlib.Path(workdir)
  space, graphdef, state, config = load_workdir(workdir)
  try:
    arch_lib.validate(space, arch)
  except HwnasError as err:
    raise HwnasError(f"{workdir / 'config.json'}: the architecture is not in "
                     f"the supernet's space ({err})") from None
  if recalibrate:
    res = spec.resolution if spec is not None else arch.resolution
    e = config.eval
    calib = calibration_images(data_lib.load_for(config), res,
                               batches=e.bn_batches,
                               batch_size=min(int(e.batch_size), 64),
                               seed=config.seed)
    state = jax.jit(functools.partial(train_lib.recalibrate,
                                      graphdef=graphdef))(
        state, calib, model_lib.arch_arrays(space, arch))
  net = train_lib.merge(graphdef, state)
  return extract.subnet(net, arch, spec=spec, depthwise=depthwise)

