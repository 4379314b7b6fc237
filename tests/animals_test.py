"""Tests of hwnas.data.animals on generated files in the wheel's format
(gzip-compressed pickles of numpy arrays); the real data is only used by
benchmarks, so these tests do not need the animal-mnist package."""

import collections
import gzip
import pickle

import numpy as np
import pytest

from hwnas import data
from hwnas.data import animals
from hwnas.errors import HwnasError


def _write(folder, images, labels):
  folder.mkdir(parents=True, exist_ok=True)
  for name, arr in ((animals.IMAGES, images), (animals.LABELS, labels)):
    with gzip.open(folder / name, "wb") as f:
      pickle.dump(arr, f, protocol=4)
  return folder


@pytest.fixture
def fake(tmp_path):
  """400 distinct random 28x28 images (40 per class) plus 30 exact copies
  of some of them."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (400, 28, 28), dtype=np.uint8)
  labels = np.repeat(np.arange(10), 40).astype(np.int64)
  copies = rng.choice(400, 30, replace=False)
  images = np.concatenate([images, images[copies]])
  labels = np.concatenate([labels, labels[copies]])
  order = rng.permutation(len(labels))
  return _write(tmp_path / "am", images[order], labels[order])


def _rows(split):
  return {r.tobytes() for r in split.images.reshape(len(split), -1)}


def test_duplicates_removed_before_a_fixed_disjoint_split(fake):
  ds = animals.load(fake)
  sizes = ds.info.split_sizes
  assert sum(sizes.values()) == 400            # the 30 copies are gone
  assert sizes["test"] == 80 and sizes["val"] == 80 and sizes["train"] == 240
  train, val, test = (_rows(ds[s]) for s in data.SPLITS)
  assert len(train) + len(val) + len(test) == 400   # no image in two splits
  for s in data.SPLITS:                        # stratified: every class
    assert set(np.bincount(ds[s].labels, minlength=10)) == {sizes[s] // 10}
  again = animals.load(fake)
  for s in data.SPLITS:
    np.testing.assert_array_equal(again[s].images, ds[s].images)


def test_images_scaled_rgb_and_normalised_on_train(fake):
  ds = animals.load(fake)
  info = ds.info
  assert info.image_shape == (28, 28, 3) and info.hflip
  assert info.class_names == animals.CLASS_NAMES and info.num_classes == 10
  x = ds["train"].images
  assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
  np.testing.assert_array_equal(x[..., 0], x[..., 2])
  b = next(data.batches(ds, "train", batch_size=240, resolution=28, seed=0,
                        shuffle=False))
  assert abs(float(b["image"].mean())) < 1e-3


def test_missing_package_names_the_install_command(monkeypatch):
  monkeypatch.setattr(animals, "PACKAGE", "no_such_package_hwnas")
  with pytest.raises(HwnasError, match=r"pip install --no-deps animal-mnist"):
    data.load("animals")


def test_refuses_pickles_that_are_not_plain_arrays(tmp_path):
  folder = _write(tmp_path / "bad", collections.OrderedDict(a=1),
                  np.zeros(3, np.int64))
  with pytest.raises(HwnasError, match="only numpy arrays"):
    animals.load(folder)
  folder = _write(tmp_path / "shape", np.zeros((4, 28, 28), np.float32),
                  np.zeros(4, np.int64))
  with pytest.raises(HwnasError, match="expected uint8 images"):
    animals.load(folder)
