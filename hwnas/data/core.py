"""Dataset values shared by every source: `DatasetInfo`, `Dataset`, splits.

A `Dataset` is a small immutable value: the `DatasetInfo` plus one entry per
split. There are always three splits:

- `train`: what training (supernet or standalone) learns from; the original
  training data minus the validation hold-out.
- `val`: held out *from the original training data* (`val_fraction`); the
  split search uses to rank architectures.
- `test`: the source's own test data (or a fixed hold-out when it has none);
  never used by search, only for final reports.

A split is an `ArraySplit` (small image data held in memory as numpy, e.g.
digits), a `TfSplit` (a function that builds a `tf.data.Dataset` of decoded
examples, for tfds and image folders) or a `SeriesSplit` (fixed-length
time-series windows in memory, `DatasetInfo.kind == "timeseries"`).
`hwnas.data.batches` turns any of them into normalised batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model and a report need to know about a dataset.

  Attributes:
    name: The name as given to `load` (`digits`, `tfds:cifar10`, ...).
    num_classes: Number of labels; labels are `0 .. num_classes - 1`.
    image_shape: Native `(height, width, channels)` of the stored images;
      `(None, None, 3)` when images vary in size (folders, imagenette).
      For time series, `(window_length, channels)` of the stored windows.
    class_names: One name per label, in label order.
    split_sizes: Number of examples per split, `{"train", "val", "test"}`.
    mean: Per-channel mean subtracted after scaling pixels to [0, 1].
    std: Per-channel standard deviation divided by after the mean.
    hflip: Whether horizontal flips are a sensible augmentation (False for
      digits and other handwriting, where a flip changes the class).
    pixel_max: The raw pixel value that maps to 1.0 (255 for 8-bit images,
      16 for digits): a deployed model's input is
      `(raw / pixel_max - mean) / std`. 1.0 for time series (sensor units).
    kind: `image` (splits of `[N, H, W, C]` images) or `timeseries` (splits
      of `[N, T, C]` windows, `SeriesSplit`).
    split_subjects: For time series split by subject: the subject ids of
      each split (disjoint); empty when the source has no subjects.
  """

  name: str
  num_classes: int
  image_shape: tuple[int | None, ...]
  class_names: tuple[str, ...]
  split_sizes: Mapping[str, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  hflip: bool
  pixel_max: float = 255.0
  kind: str = "image"
  split_subjects: Mapping[str, tuple[int, ...]] = dataclasses.field(
      default_factory=dict)

  def to_json(self) -> dict[str, Any]:
    """Returns a JSON-serialisable dict (for config.json and reports)."""
    d = dataclasses.asdict(self)
    d["split_sizes"] = dict(self.split_sizes)
    d["split_subjects"] = {k: list(v) for k, v in self.split_subjects.items()}
    return d


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """A split held in memory.

  Attributes:
    images: float32 `[N, H, W, C]` in [0, 1].
    labels: int32 `[N]`.
  """

  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class SeriesSplit:
  """A split of fixed-length time-series windows held in memory.

  Attributes:
    windows: float32 `[N, T, C]` in the source's units (not normalised;
      `batches` applies `DatasetInfo.mean`/`std`, the training statistics).
    labels: int32 `[N]`.
    subjects: int32 `[N]`, the subject each window was recorded from (-1
      when the source has none).
  """

  windows: np.ndarray
  labels: np.ndarray
  subjects: np.ndarray

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class TfSplit:
  """A split read through tf.data.

  Attributes:
    make: `make(process_index, process_count)` returns a `tf.data.Dataset`
      of `{"image": uint8 [H, W, C], "label": int}` in a fixed order, holding
      this host's shard of the split.
    num_examples: Size of the whole split (all hosts).
  """

  make: Callable[[int, int], Any]
  num_examples: int

  def __len__(self) -> int:
    return self.num_examples


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A loaded dataset: its info and its three splits."""

  info: DatasetInfo
  splits: Mapping[str, ArraySplit | TfSplit | SeriesSplit]

  def __getitem__(self, split: str) -> ArraySplit | TfSplit | SeriesSplit:
    return self.splits[split]

