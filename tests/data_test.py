"""Tests for hwnas.data: digits, tfds (mock_data only), image folders."""

import numpy as np
import pytest

from hwnas import data
from hwnas.errors import HwnasError


def _take(it, n):
  return [next(it) for _ in range(n)]


@pytest.fixture(scope="module")
def digits():
  return data.load("digits")


def test_digits_info_and_sizes(digits):
  info = digits.info
  assert info.num_classes == 10 and info.image_shape == (8, 8, 3)
  assert sum(info.split_sizes.values()) == 1797
  assert info.split_sizes["test"] == 360
  assert info.split_sizes["val"] == pytest.approx(0.1 * 1437, abs=1)
  assert not info.hflip and info.pixel_max == 16.0
  for s in data.SPLITS:
    assert len(digits[s]) == info.split_sizes[s]
    assert digits[s].images.shape[1:] == (8, 8, 3)


def _rows(split):
  return {r.tobytes() for r in split.images.reshape(len(split), -1)}


def test_digits_splits_disjoint_and_test_fixed(digits):
  train, val, test = (_rows(digits[s]) for s in data.SPLITS)
  # Digits has a few duplicate images; require near-total disjointness.
  assert len(train & test) <= 3 and len(val & test) <= 3
  other = data.load("digits", val_fraction=0.2, seed=7)
  np.testing.assert_array_equal(other["test"].images, digits["test"].images)
  # val comes out of the original train pool and changes with the seed.
  pool = _rows(digits["train"]) | _rows(digits["val"])
  assert _rows(other["val"]) <= pool
  assert _rows(other["val"]) != _rows(digits["val"])
  assert other.info.split_sizes["val"] > digits.info.split_sizes["val"]


def test_digits_batches_shapes_and_normalisation(digits):
  b = next(data.batches(digits, "train", batch_size=8, resolution=16, seed=0))
  assert b["image"].shape == (8, 16, 16, 3) and b["image"].dtype == np.float32
  assert b["label"].shape == (8,) and b["label"].dtype == np.int32
  np.testing.assert_array_equal(b["mask"], np.ones(8, np.float32))
  full = next(data.batches(digits, "train", batch_size=1293, resolution=8,
                           seed=0, shuffle=False))
  assert abs(full["image"].mean()) < 1e-3
  assert full["image"].std() == pytest.approx(1.0, abs=1e-3)


def test_digits_batches_deterministic_and_resumable(digits):
  kw = dict(batch_size=16, resolution=16, augment=True)
  a = _take(data.batches(digits, "train", seed=3, **kw), 85)
  b = _take(data.batches(digits, "train", seed=3, **kw), 85)
  c = _take(data.batches(digits, "train", seed=3, start_step=80, **kw), 5)
  d = next(data.batches(digits, "train", seed=4, **kw))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  for x, y in zip(a[80:], c):  # crosses the epoch boundary at step 80
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  assert not np.array_equal(a[0]["image"], d["image"])
  assert not np.array_equal(a[0]["image"], a[80]["image"])


def test_digits_augment_no_flip_changes_pixels(digits):
  kw = dict(batch_size=32, resolution=16, seed=0, shuffle=False)
  plain = next(data.batches(digits, "train", **kw))
  aug = next(data.batches(digits, "train", augment=True, **kw))
  np.testing.assert_array_equal(plain["label"], aug["label"])
  assert not np.allclose(plain["image"], aug["image"])


def test_digits_eval_pass_pads_last_batch(digits):
  out = list(data.batches(digits, "test", batch_size=64, resolution=8, seed=0,
                          shuffle=False, repeat=False, drop_remainder=False))
  assert len(out) == 6 and all(b["image"].shape[0] == 64 for b in out)
  assert sum(b["mask"].sum() for b in out) == 360
  labels = np.concatenate([b["label"][b["mask"] > 0] for b in out])
  np.testing.assert_array_equal(labels, digits["test"].labels)


def test_process_shards_make_up_the_global_batch(digits):
  kw = dict(batch_size=8, resolution=8, seed=1, augment=True)
  whole = next(data.batches(digits, "train", **kw))
  parts = [next(data.batches(digits, "train", process_index=i,
                             process_count=2, **kw)) for i in range(2)]
  np.testing.assert_array_equal(
      np.concatenate([p["image"] for p in parts]), whole["image"])


def test_shard_batch_single_host(digits):
  import jax  # pylint: disable=g-import-not-at-top
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  b = next(data.batches(digits, "train", batch_size=4, resolution=8, seed=0))
  g = data.shard_batch(b, mesh)
  np.testing.assert_array_equal(np.asarray(g["label"]), b["label"])


def test_unknown_names_and_splits_are_user_errors(digits):
  with pytest.raises(HwnasError, match="unknown dataset"):
    data.load("mnist")
  with pytest.raises(HwnasError, match="split"):
    data.batches(digits, "validation", batch_size=2, resolution=8, seed=0)
  with pytest.raises(HwnasError, match="val_fraction"):
    data.load("digits", val_fraction=1.5)


# --- tfds: mock_data only; never a real download ---------------------------

def test_tfds_cifar10_under_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load("tfds:cifar10")
    assert ds.info.num_classes == 10 and ds.info.image_shape == (32, 32, 3)
    assert len(ds.info.class_names) == 10 and ds.info.hflip
    assert all(n > 0 for n in ds.info.split_sizes.values())
    kw = dict(batch_size=4, resolution=16, seed=0, augment=True)
    a = _take(data.batches(ds, "train", **kw), 4)
    b = _take(data.batches(ds, "train", **kw), 4)
    c = _take(data.batches(ds, "train", start_step=2, **kw), 2)
    ev = list(data.batches(ds, "test", batch_size=5, resolution=16, seed=0,
                           shuffle=False, repeat=False, drop_remainder=False))
  assert a[0]["image"].shape == (4, 16, 16, 3)
  assert a[0]["image"].dtype == np.float32 and a[0]["label"].dtype == np.int32
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  for x, y in zip(a[2:], c):  # mid-epoch and across the epoch boundary
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  assert not np.array_equal(a[0]["image"], a[3]["image"])
  assert sum(e["mask"].sum() for e in ev) == ds.info.split_sizes["test"]
  assert all(e["image"].shape == (5, 16, 16, 3) for e in ev)


def test_tfds_unprepared_fails_fast(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(HwnasError, match="not prepared"):
    data.load("tfds:cifar10", data_dir=str(tmp_path / "none"))


def test_tfds_unknown_name():
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(HwnasError, match="no tensorflow-datasets set"):
    data.load("tfds:no_such_dataset_xyz")


# --- image folders -----------------------------------------------------------

def _write_pngs(root, split, classes, per_class, size, seed):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for c, cls in enumerate(classes):
    d = root / split / cls
    d.mkdir(parents=True)
    for i in range(per_class):
      img = rng.integers(0, 60, size=(size + i % 3, size, 3), dtype=np.uint8)
      img[..., c % 3] += 150  # class-dependent colour
      Image.fromarray(img).save(d / f"{i}.png")


def test_folder_dataset_with_and_without_test_dir(tmp_path):
  pytest.importorskip("tensorflow")
  _write_pngs(tmp_path / "a", "train", ["cat", "bird"], 10, 12, 0)
  ds = data.load(f"folder:{tmp_path / 'a'}", val_fraction=0.25)
  assert ds.info.class_names == ("bird", "cat") and ds.info.num_classes == 2
  assert sum(ds.info.split_sizes.values()) == 20
  assert ds.info.split_sizes["test"] == 4
  b = next(data.batches(ds, "train", batch_size=4, resolution=8, seed=0,
                        augment=True))
  assert b["image"].shape == (4, 8, 8, 3) and set(b["label"]) <= {0, 1}
  ev = list(data.batches(ds, "test", batch_size=3, resolution=8, seed=0,
                         shuffle=False, repeat=False, drop_remainder=False))
  labels = np.concatenate([e["label"][e["mask"] > 0] for e in ev])
  np.testing.assert_array_equal(np.bincount(labels), [2, 2])  # stratified
  # Classes are sorted (bird=0, cat=1); _write_pngs made cat red, bird green,
  # so without augmentation the dominant channel must match the label.
  for e in ev:
    for img, y, m in zip(e["image"], e["label"], e["mask"]):
      if m:
        channel = 1 if y == 0 else 0
        assert img[..., channel].mean() > img[..., 2].mean()

  _write_pngs(tmp_path / "b", "train", ["x", "y", "z"], 4, 8, 1)
  _write_pngs(tmp_path / "b", "test", ["x", "y", "z"], 2, 8, 2)
  ds2 = data.load(f"folder:{tmp_path / 'b'}", val_fraction=0.25)
  assert ds2.info.split_sizes == {"train": 9, "val": 3, "test": 6}


def test_folder_missing_is_user_error(tmp_path):
  with pytest.raises(HwnasError, match="no folder"):
    data.load(f"folder:{tmp_path / 'missing'}")
  (tmp_path / "empty" / "train" / "cls").mkdir(parents=True)
  with pytest.raises(HwnasError, match="no images"):
    data.load(f"folder:{tmp_path / 'empty'}")


def _tiny_tfds_builder_class():
  """A real tfds builder (no download) to exercise the prepared-data path."""
  tfds = pytest.importorskip("tensorflow_datasets")
  name = "hwnas_tiny_images"
  if name in tfds.list_builders():
    return tfds.builder_cls(name)

  class HwnasTinyImages(tfds.core.GeneratorBasedBuilder):
    """Two colours of 8x8 images; train 40, test 10."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(shape=(8, 8, 3)),
              "label": tfds.features.ClassLabel(names=["red", "green"])}),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(40, 0),
              "test": self._generate_examples(10, 1)}

    def _generate_examples(self, n, seed):
      rng = np.random.default_rng(seed)
      for i in range(n):
        img = rng.integers(0, 50, size=(8, 8, 3), dtype=np.uint8)
        img[..., i % 2] += 200
        yield i, {"image": img, "label": i % 2}

  return HwnasTinyImages


def test_tfds_prepared_dataset_real_path(tmp_path):
  cls = _tiny_tfds_builder_class()
  cls(data_dir=str(tmp_path)).download_and_prepare()
  ds = data.load("tfds:hwnas_tiny_images", data_dir=str(tmp_path))
  assert ds.info.split_sizes == {"train": 36, "val": 4, "test": 10}
  assert ds.info.class_names == ("red", "green")
  ev = list(data.batches(ds, "val", batch_size=4, resolution=8, seed=0,
                         shuffle=False, repeat=False))
  assert len(ev) == 1
  for img, y in zip(ev[0]["image"], ev[0]["label"]):
    assert img[..., y].mean() > img[..., 2].mean()  # label matches colour
  two = [next(data.batches(ds, "train", batch_size=4, resolution=8, seed=0,
                           process_index=i, process_count=2)) for i in range(2)]
  assert all(t["image"].shape == (2, 8, 8, 3) for t in two)


# --- run configs: one place decides the validation hold-out ------------------

def _contents(ds, split):
  """The stored images of a split: pixel bytes (in memory) or the encoded
  file bytes (folders)."""
  s = ds[split]
  if isinstance(s, data.ArraySplit):
    return [r.tobytes() for r in s.images.reshape(len(s), -1)]
  return [bytes(e["image"].numpy()) for e in s.make(0, 1)]


@pytest.mark.parametrize("kind", ["digits", "folder"])
def test_load_for_keeps_train_and_val_apart(kind, tmp_path):
  from hwnas.configs import supernet as supernet_config
  from hwnas.configs import train as train_config
  name = "digits"
  if kind == "folder":
    pytest.importorskip("tensorflow")
    _write_pngs(tmp_path / "f", "train", ["a", "b", "c"], 8, 8, 5)
    name = f"folder:{tmp_path / 'f'}"
  for seed, fraction in ((0, 0.1), (3, 0.25)):
    loaded = []
    for c in (supernet_config.get_config("tiny"), train_config.get_config()):
      c.dataset, c.seed, c.val_fraction = name, seed, fraction
      loaded.append(data.load_for(c))
    train, val = (_contents(loaded[0], s) for s in ("train", "val"))
    assert len(set(train)) == len(train) and val
    assert not set(train) & set(val), (seed, fraction)
    # The supernet and a standalone run of the same settings rank on the
    # same images (the rank check compares the two).
    assert _contents(loaded[1], "val") == val


def test_load_for_names_a_missing_config_key():
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict({"dataset": "digits", "seed": 0})
  with pytest.raises(HwnasError, match="val_fraction"):
    data.load_for(c)
