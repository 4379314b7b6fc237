"""Input data: `load` a dataset by name, then iterate `batches` of it.

>>> from hwnas import data
>>> ds = data.load("digits")                   # offline default
>>> ds.info.split_sizes
{'train': 1293, 'val': 144, 'test': 360}
>>> it = data.batches(ds, "train", batch_size=64, resolution=32, seed=0,
...                   augment=True)
>>> b = next(it)  # image f32 [64,32,32,3], label i32 [64], mask f32 [64]

A run (supernet or standalone training, evaluation, export from a
workdir) loads through `load_for(config)`, which reads the dataset and the
validation hold-out from the run config in one place.

Names: `digits` (scikit-learn, offline, in memory), `digits-N` (the same
with N training images per class and the rest as validation: the offline
setting where networks' accuracies differ enough to rank them), `animals`
(28x28 animal silhouettes from the `animal-mnist` wheel, offline,
deduplicated, fixed split; `hwnas.data.animals`),
`tfds:NAME` (a prepared tensorflow-datasets image set; never downloads),
`watch` (smartwatch IMU time series for activity recognition, shipped in
the seglearn wheel, split by subject; `data.watch`) and `folder:PATH`
(image folders, or time-series windows: `data.series_files`).
Time-series datasets have `info.kind == "timeseries"`, `SeriesSplit`s of
`[N, T, C]` windows, and `batches` yields `"image"` as `[b, R, C]` windows
cut to `resolution` samples (docs/data.md).
Splits are `train`, `val` (held out from the original training data; what
search ranks on) and `test` (never used by search).

Normalisation: pixels are scaled to [0, 1] (divided by `info.pixel_max`:
255, or 16 for digits), then `(x - info.mean) / info.std` per channel. `info.mean`/`info.std` are the digits training-split
statistics, the CIFAR statistics for cifar10/100, ImageNet's otherwise; an
exported model must apply the same.

Multi-host (TPU pods, GPU clusters after `jax.distributed.initialize()`):
call `batches(..., process_index=jax.process_index(),
process_count=jax.process_count())` with the *global* batch size; each host
reads only its shard and yields `batch_size // process_count` rows, and
`shard_batch(batch, mesh)` assembles the global `jax.Array`, sharded over the
mesh's data axis, from every host's rows.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from hwnas.data.core import (SPLITS, ArraySplit, Dataset, DatasetInfo,
                             SeriesSplit, TfSplit)
from hwnas.errors import HwnasError

__all__ = ["SPLITS", "ArraySplit", "Dataset", "DatasetInfo", "SeriesSplit",
           "TfSplit", "batches", "check_input", "load", "load_for",
           "shard_batch"]

# The keys of a run config (`hwnas.configs.supernet`, `hwnas.configs.train`)
# that decide which data a run sees; `load_for` reads exactly these.
CONFIG_KEYS = ("dataset", "val_fraction", "seed", "data_dir", "manual_dir")


def load(name: str, *, val_fraction: float = 0.1, seed: int = 0,
         data_dir: str | None = None,
         manual_dir: str | None = None) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: `digits`, `digits-N`, `animals`, `tfds:NAME` (e.g. `tfds:cifar10`,
      `tfds:imagenette`, `tfds:imagenet2012` with `manual_dir`), `watch` or
      `folder:PATH`.
    val_fraction: Fraction of the original training data held out as `val`
      (`watch` and `animals` have fixed splits and ignore it).
    seed: Chooses the validation hold-out (digits, folders); the test split
      never depends on it.
    data_dir: tensorflow-datasets data directory (default: tfds's own,
      ~/tensorflow_datasets).
    manual_dir: Manual-download directory for sets that need one.

  Returns:
    The `Dataset` (info plus `train`/`val`/`test` splits).

  Raises:
    HwnasError: Unknown name, missing folder, or a tfds set that is not
      prepared (hwnas never downloads).
  """
  if not 0.0 <= val_fraction < 1.0:
    raise HwnasError(f"val_fraction={val_fraction}: must be in [0, 1)")
  if name == "digits":
    from hwnas.data import memory  # pylint: disable=g-import-not-at-top
    return memory.load_digits(val_fraction=val_fraction, seed=seed)
  if name.startswith("digits-"):
    n = name[len("digits-"):]
    if not n.isdigit() or not 1 <= int(n) <= 100:
      raise HwnasError(f"--dataset {name}: use digits-N with N training "
                       "images per class, 1 <= N <= 100 (e.g. digits-20)")
    from hwnas.data import memory  # pylint: disable=g-import-not-at-top
    return memory.load_digits_few(int(n))
  if name == "watch":
    from hwnas.data import watch  # pylint: disable=g-import-not-at-top
    return watch.load_watch()
  if name == "animals":
    from hwnas.data import animals  # pylint: disable=g-import-not-at-top
    return animals.load()
  kind, _, arg = name.partition(":")
  if kind == "tfds" and arg:
    from hwnas.data import tf_input  # pylint: disable=g-import-not-at-top
    return tf_input.load_tfds(arg, val_fraction=val_fraction,
                              data_dir=data_dir, manual_dir=manual_dir)
  if kind == "folder" and arg:
    from hwnas.data import series_files  # pylint: disable=g-import-not-at-top
    if series_files.is_series_folder(pathlib.Path(arg)):
      return series_files.load(pathlib.Path(arg), val_fraction=val_fraction,
                               seed=seed)
    from hwnas.data import tf_input  # pylint: disable=g-import-not-at-top
    return tf_input.load_folder(arg, val_fraction=val_fraction, seed=seed)
  raise HwnasError(f"--dataset {name}: unknown dataset; use digits, "
                   "digits-N, animals, watch, tfds:NAME or folder:PATH")


def check_input(info: DatasetInfo, *, kind: str, channels: int,
                what: str) -> None:
  """One line when a network or space (`what`, e.g. its file) of input
  `kind` ('image' | 'timeseries') and `channels` cannot take `info`'s data.

  Raises:
    HwnasError: the kinds or the channel counts differ.
  """
  def name(k):
    return "time-series windows" if k == "timeseries" else "images"
  if info.kind != kind:
    fix = ("a time-series space (--space har) or network" if
           info.kind == "timeseries" else
           "an image space or network (e.g. --space tiny)")
    raise HwnasError(
        f"--dataset {info.name}: {name(info.kind)} "
        f"{list(info.image_shape)} but {what} takes {name(kind)}; use "
        f"{fix}, or a dataset of {name(kind)}")
  have = info.image_shape[-1]
  if have != channels:
    raise HwnasError(
        f"--dataset {info.name}: {have}-channel {name(kind)} but {what} "
        f"takes {channels}; use a dataset of {channels} channels or a "
        "space whose input has " + str(have))


def load_for(config: Any, *, dataset: str | None = None) -> Dataset:
  """Loads the dataset of a run config, with the run's validation hold-out.

  Every caller that starts from a run config (supernet training, its
  evaluation, export from a supernet workdir, standalone training, the rank
  check) loads through here. The hold-out depends on `(config.seed,
  config.val_fraction)`, so deciding it in one place keeps the images a run
  trained on out of the split search ranks on.

  Args:
    config: A run config (`ConfigDict`, e.g. a workdir's config.json) with
      the keys `CONFIG_KEYS`.
    dataset: Load this dataset instead of `config.dataset`, with the same
      hold-out settings (evaluation or export on another set).

  Returns:
    The `Dataset`.

  Raises:
    HwnasError: The config lacks one of `CONFIG_KEYS`, or `load` fails.
  """
  missing = [k for k in CONFIG_KEYS if k not in config]
  if missing:
    raise HwnasError(f"run config: no {', '.join(missing)}; fix: use a "
                     "config from hwnas.configs (or a workdir's config.json)")
  return load(dataset or config.dataset,
              val_fraction=float(config.val_fraction), seed=int(config.seed),
              data_dir=config.data_dir or None,
              manual_dir=config.manual_dir or None)


def batches(ds: Dataset, split: str, *, batch_size: int, resolution: int,
            seed: int, augment: bool = False, shuffle: bool = True,
            repeat: bool = True, drop_remainder: bool = True,
            start_step: int = 0, process_index: int = 0,
            process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Iterates normalised, resized batches of one split.

  The stream is a pure function of (`seed`, step): batch `s` is the same
  whether the iterator started at 0 or at `start_step=s` (resume).

  Args:
    ds: A loaded `Dataset`.
    split: `train`, `val` or `test`.
    batch_size: Global batch size (all hosts together).
    resolution: Output height and width (bilinear resize); for time series
      the window length (a crop, never a resampling).
    seed: Seeds the per-epoch shuffle and the augmentation.
    augment: Training augmentation: random crop after zero padding by
      resolution // 8 (small images) or random resized crop (large), then a
      horizontal flip when `ds.info.hflip` (never for digits).
    shuffle: Reshuffle every epoch (otherwise the split's fixed order).
    repeat: Loop over epochs forever; otherwise stop after one pass.
    drop_remainder: Drop the last short batch; otherwise pad it to full size
      with `mask` 0 rows (one shape, one compilation).
    start_step: Index of the first batch to yield (resume).
    process_index: This host's index (`jax.process_index()`).
    process_count: Number of hosts (`jax.process_count()`); must divide
      `batch_size`.

  Yields:
    `{"image": float32 [b, R, R, C], "label": int32 [b], "mask": float32 [b]}`
    with `b = batch_size // process_count`; `"image"` is `[b, R, C]` for
    time series.
  """
  if split not in SPLITS:
    raise HwnasError(f"split {split!r}: use one of {', '.join(SPLITS)}")
  if batch_size % process_count:
    raise HwnasError(f"batch_size={batch_size}: must be a multiple of the "
                     f"number of hosts ({process_count})")
  if ds.info.split_sizes[split] == 0:
    raise HwnasError(f"{ds.info.name}: split {split!r} is empty; "
                     "raise val_fraction or add data")
  if drop_remainder and batch_size > ds.info.split_sizes[split]:
    raise HwnasError(f"{ds.info.name}: split {split!r} has "
                     f"{ds.info.split_sizes[split]} images, fewer than one "
                     f"batch of {batch_size}; lower the batch size (--set "
                     "train.batch_size=N) or add data")
  kwargs = dict(batch_size=batch_size, resolution=resolution, seed=seed,
                augment=augment, shuffle=shuffle, repeat=repeat,
                drop_remainder=drop_remainder, start_step=start_step,
                process_index=process_index, process_count=process_count)
  source = ds.splits[split]
  if isinstance(source, SeriesSplit):
    from hwnas.data import series  # pylint: disable=g-import-not-at-top
    return series.batches(source, ds.info, **kwargs)
  if isinstance(source, ArraySplit):
    from hwnas.data import memory  # pylint: disable=g-import-not-at-top
    return memory.batches(source, ds.info, **kwargs)
  from hwnas.data import tf_input  # pylint: disable=g-import-not-at-top
  return tf_input.batches(source, ds.info, **kwargs)


def shard_batch(batch: dict[str, np.ndarray], mesh: Any,
                axis: str = "data") -> dict[str, Any]:
  """Assembles global `jax.Array`s sharded along `axis` of `mesh`.

  Each host passes its own rows (from `batches(..., process_index=...)`);
  on one host this is a plain `device_put` with a batch sharding.

  Args:
    batch: This host's batch (numpy arrays, leading batch dimension).
    mesh: A `jax.sharding.Mesh` with an axis named `axis`.
    axis: The data-parallel mesh axis.

  Returns:
    The same keys, as global arrays of `process_count` times the rows.
  """
  import jax  # pylint: disable=g-import-not-at-top
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis))
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}
