"""`animals`: 28x28 animal silhouettes from the `animal-mnist` wheel, offline.

The `animal-mnist` package on PyPI (MIT licence) ships 10,000 grey 28x28
images of 10 animal classes (1,000 each) inside its wheel, as two
gzip-compressed pickles of numpy arrays. Its own loader imports TensorFlow
and Keras datasets, and its metadata asks for the full `tensorflow`
package, so hwnas installs it without dependencies and reads the two data
files directly through `importlib.resources`; none of its code runs:

    pip install --no-deps animal-mnist==0.4

The pickles are read with an unpickler that only accepts numpy's array
reconstruction (anything else is an error), so a tampered file cannot run
code. A logistic regression on the raw pixels scores about 78% here
(about 96% on `digits`), so the networks of a space spread out.

About 3% of the images are exact byte-for-byte copies of another image
(284 of 10,000, all with the same label). They are removed *before*
splitting (the first of each group is kept), so no test or val image is
also a training image. The split is fixed whatever seed or `val_fraction`
a run passes: 20% of the unique images (stratified, seed 0) are `test`, a
quarter of the rest (about 1,940 images, so one image moves val accuracy
by 0.05 points) is `val`, what search ranks on; the others (about 5,830)
are `train`. Images are presented as RGB (the grey channel three times,
like `digits`) in [0, 1]; silhouettes keep their class when mirrored, so
horizontal flips are a training augmentation.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from collections.abc import Iterable
from importlib import resources
from typing import Any

import numpy as np

from hwnas.data import core
from hwnas.data import memory
from hwnas.errors import HwnasError

PACKAGE = "animal_mnist"
INSTALL = "pip install --no-deps animal-mnist==0.4"
IMAGES = "animal_data_version_3.gz"
LABELS = "animal_label_version_3.gz"
# Label order as the package describes its classes (alphabetical).
CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe",
               "horse", "sheep", "zebra")
_TEST_FRACTION = 0.2
_VAL_FRACTION = 0.25      # of what remains after the test split
_SPLIT_SEED = 0


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain numpy arrays and nothing else."""

  def find_class(self, module: str, name: str) -> Any:
    from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
    allowed = {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,  # pylint: disable=protected-access
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,  # pylint: disable=protected-access
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    if (module, name) not in allowed:
      raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy "
                                   "arrays are read")
    return allowed[(module, name)]


def _read_array(path: Any) -> np.ndarray:
  with path.open("rb") as raw, gzip.open(raw) as f:
    out = _ArrayUnpickler(f).load()
  if not isinstance(out, np.ndarray):
    raise pickle.UnpicklingError("not a numpy array")
  return out


def data_dir() -> Any:
  """The folder holding the two data files inside the installed package."""
  try:
    return resources.files(PACKAGE) / "data" / "Animal_MNIST"
  except ModuleNotFoundError:
    raise HwnasError(f"--dataset animals needs the animal-mnist package: "
                     f"{INSTALL}") from None


def read_arrays(folder: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28], labels int32 [N]) from `folder` (default:
  the installed package's data folder; tests pass one of the same format)."""
  folder = data_dir() if folder is None else folder
  try:
    images, labels = (_read_array(folder / IMAGES),
                      _read_array(folder / LABELS))
  except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
    raise HwnasError(f"{folder}: cannot read the animal-mnist data files "
                     f"({e}); reinstall with: {INSTALL}") from None
  if (images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1
      or len(labels) != len(images)):
    raise HwnasError(f"{folder}: expected uint8 images [N, H, W] and N "
                     f"labels, got {images.dtype}{list(images.shape)} and "
                     f"{labels.dtype}{list(labels.shape)}")
  return images, labels.astype(np.int32)


def unique_indices(images: np.ndarray) -> np.ndarray:
  """Sorted indices of the first occurrence of each distinct image (by a
  hash of its bytes)."""
  seen, keep = set(), []
  for i, row in enumerate(images.reshape(len(images), -1)):
    h = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
    if h not in seen:
      seen.add(h)
      keep.append(i)
  return np.asarray(keep, np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
  """The fixed stratified train / val / test indices into `labels`."""
  pool, test = memory.stratified_split(labels, _TEST_FRACTION, _SPLIT_SEED)
  kept, val = memory.stratified_split(labels[pool], _VAL_FRACTION,
                                      _SPLIT_SEED)
  return {"train": pool[kept], "val": pool[val], "test": test}


def load(folder: Any = None,
         class_names: Iterable[str] = CLASS_NAMES) -> core.Dataset:
  """Loads `animals` as a `Dataset` (deduplicated, fixed split)."""
  raw, labels = read_arrays(folder)
  keep = unique_indices(raw)
  raw, labels = raw[keep], labels[keep]
  images = np.repeat(raw.astype(np.float32)[..., None] / 255.0, 3, -1)
  idx = split_indices(labels)
  splits = {k: core.ArraySplit(images[i], labels[i]) for k, i in idx.items()}
  grey = images[idx["train"], :, :, 0]
  mean, std = float(grey.mean()), float(grey.std())
  names = tuple(class_names)
  info = core.DatasetInfo(
      name="animals", num_classes=len(names),
      image_shape=(raw.shape[1], raw.shape[2], 3), class_names=names,
      split_sizes={k: len(v) for k, v in splits.items()},
      mean=(mean,) * 3, std=(std,) * 3, hflip=True, pixel_max=255.0)
  return core.Dataset(info=info, splits={k: splits[k] for k in core.SPLITS})
