"""tf.data input: tensorflow-datasets sets and a user's image folders.

`tfds:NAME` reads a prepared tensorflow-datasets image-classification set.
Nothing here ever downloads: offline, `tfds.load` retries for minutes before
failing, so `load_tfds` checks `builder.is_prepared()` first and fails at
once with instructions (unless under `tfds.testing.mock_data`). Datasets that
need a manual download (imagenet2012) are prepared from `manual_dir`.

Splits: the source's `validation` split is the test split when it has one
(imagenet2012's `test` has no labels; imagenette has no `test`), else its
`test` split. Validation is the last `val_fraction` of `train` (rounded to a
whole percent, tfds split slicing: `train[:90%]` / `train[90%:]`); tfds
slicing is contiguous, so `seed` does not move it.

`folder:PATH` reads `PATH/train/<class>/*.{png,jpg,jpeg,bmp,gif}` and
optionally `PATH/test/<class>/...`; class names are the sorted folder names.
Without a test folder 20% of train (fixed seed 0) is the test split; the
validation split is drawn from the rest with `seed`.

Both yield encoded image bytes in a fixed order; `batches` shuffles the
encoded bytes (small), then decodes, augments, resizes and normalises with
stateless random ops seeded by (seed, host, epoch, index): the stream is a
pure function of the seed and resumes exactly at any step. Images up to 64
px (CIFAR, MNIST) are resized to the resolution and augmented by a random
crop after zero padding; larger ones by a random resized crop (area 25-100%,
aspect 3/4-4/3) and, for evaluation, a central square crop of 87.5% of the
shorter side, before resizing. Flips only where `info.hflip`. Every host reads
only its own shard (tfds `even_splits`, `Dataset.shard` for folders).
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from hwnas.data import core
from hwnas.errors import HwnasError

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# Sets where a horizontal flip changes or garbles the class.
_NO_FLIP = ("mnist", "emnist", "kmnist", "svhn_cropped", "binarized_mnist")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_SMALL = 64  # native size up to which augmentation is pad-and-crop
_SHUFFLE_BUFFER = 20_000


def _under_mock_data() -> bool:
  """True inside `tfds.testing.mock_data` (which patches the builder)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  fn = tfds.core.DatasetBuilder.download_and_prepare
  return getattr(fn, "__module__", "").startswith("tensorflow_datasets.testing")


def _builder(name: str, data_dir: str | None, manual_dir: str | None) -> Any:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = f"--dataset tfds:{name}"
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise HwnasError(f"{where}: no tensorflow-datasets set named {name!r}; "
                     "see `tfds.list_builders()`") from None
  if _under_mock_data() or builder.is_prepared():
    return builder
  if manual_dir and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir))
    return builder
  raise HwnasError(
      f"{where}: not prepared in {builder.data_dir_root} (hwnas never "
      "downloads); on a machine with internet run `python -c \"import "
      f"tensorflow_datasets as t; t.builder('{name}').download_and_prepare()"
      "\"`, then copy ~/tensorflow_datasets here or point to it with "
      "`--set data_dir=DIR` (hwnas supernet train, hwnas train; Python API: "
      "data.load(name, data_dir=DIR))" + (
          "; or prepare it from the manual download with `--set "
          "manual_dir=DIR` (Python API: manual_dir=DIR)"
          if builder.MANUAL_DOWNLOAD_INSTRUCTIONS else ""))


def _count(builder: Any, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError):  # under mock_data `splits` is empty
    ds = builder.as_dataset(split=split)
    n = int(ds.cardinality().numpy())
    return n if n >= 0 else int(ds.reduce(0, lambda c, _: c + 1).numpy())


def load_tfds(name: str, *, val_fraction: float, data_dir: str | None,
              manual_dir: str | None) -> core.Dataset:
  """Loads prepared tensorflow-datasets set `name` (see module docstring)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = _builder(name, data_dir, manual_dir)
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise HwnasError(f"--dataset tfds:{name}: not an image classification "
                     "set (needs 'image' and 'label' features)")
  available = set(builder.info.splits)
  test = "validation" if "validation" in available else "test"
  pct = int(round(100 * val_fraction))
  names = {"train": f"train[:{100 - pct}%]", "val": f"train[{100 - pct}%:]",
           "test": test}
  if pct == 0:
    names.update(train="train", val="train[:0]")

  def make_fn(split: str):
    def make(process_index: int, process_count: int):
      s = (tfds.even_splits(split, process_count, drop_remainder=True)
           [process_index] if process_count > 1 else split)
      ds = builder.as_dataset(
          split=s, shuffle_files=False,
          decoders={"image": tfds.decode.SkipDecoding()})
      return ds.map(lambda ex: {"image": ex["image"], "label": ex["label"]})
    return make

  splits = {k: core.TfSplit(make_fn(s), _count(builder, s))
            for k, s in names.items()}
  h, w, c = features["image"].shape
  mean, std = _STATS.get(name, (_IMAGENET_MEAN, _IMAGENET_STD))
  info = core.DatasetInfo(
      name=f"tfds:{name}", num_classes=features["label"].num_classes,
      image_shape=(h, w, 3), class_names=tuple(features["label"].names),
      split_sizes={k: len(v) for k, v in splits.items()},
      mean=mean, std=std, hflip=name not in _NO_FLIP)
  del c  # grey sets are presented as RGB
  return core.Dataset(info=info, splits=splits)


def _class_files(split_dir: pathlib.Path, classes: list[str], where: str
                 ) -> tuple[list[str], list[int]]:
  """Image paths and labels of one split; an empty class folder warns, a
  zero-byte image fails (naming it)."""
  paths, labels = [], []
  for label, cls in enumerate(classes):
    d = split_dir / cls
    files = sorted(p for p in d.iterdir()
                   if p.suffix.lower() in _IMAGE_SUFFIXES) if d.is_dir() else []
    if not files and d.is_dir():
      print(f"warning: {where}: class folder {d} has no images "
            f"({', '.join(_IMAGE_SUFFIXES)})", file=sys.stderr)
    for f in files:
      if f.stat().st_size == 0:
        raise HwnasError(f"{where}: {f} is an empty (zero-byte) image; "
                         "delete or replace it")
    paths += [str(p) for p in files]
    labels += [label] * len(files)
  return paths, labels


def _class_dirs(split_dir: pathlib.Path) -> list[str]:
  return sorted(p.name for p in split_dir.iterdir() if p.is_dir())


def load_folder(path: str, *, val_fraction: float,
                seed: int) -> core.Dataset:
  """Loads `PATH/train/<class>/*` (+ optional `PATH/test/<class>/*`)."""
  root = pathlib.Path(path).expanduser()
  where = f"--dataset folder:{path}"
  if not (root / "train").is_dir():
    raise HwnasError(f"{where}: no folder {root / 'train'}; expected "
                     "train/<class>/*.png|jpg (and optionally test/<class>/)")
  classes = _class_dirs(root / "train")
  paths, labels = _class_files(root / "train", classes, where)
  if not paths:
    raise HwnasError(f"{where}: no images (.png/.jpg) in {root / 'train'}"
                     "/<class>/; put each class's images in its own folder")
  if len(classes) == 1:
    raise HwnasError(f"{where}: only one class folder "
                     f"({root / 'train' / classes[0]}); a classifier needs "
                     "at least two, one folder per class")
  paths, labels = np.asarray(paths), np.asarray(labels, np.int32)
  if (root / "test").is_dir():
    extra = sorted(set(_class_dirs(root / "test")) - set(classes))
    if extra:
      raise HwnasError(f"{where}: class {root / 'test' / extra[0]} is not in "
                       f"{root / 'train'}; every test class needs training "
                       "images (same folder names)")
    tp, tl = _class_files(root / "test", classes, where)
    test = (np.asarray(tp), np.asarray(tl, np.int32))
    pool = np.arange(len(paths))
  else:
    pool, held = _split(labels, 0.2, 0)
    test = (paths[held], labels[held])
  kept, val = _split(labels[pool], val_fraction, seed)
  arrays = {"train": (paths[pool[kept]], labels[pool[kept]]),
            "val": (paths[pool[val]], labels[pool[val]]), "test": test}
  splits = {k: core.TfSplit(_folder_make(*v), len(v[1]))
            for k, v in arrays.items()}
  info = core.DatasetInfo(
      name=f"folder:{path}", num_classes=len(classes),
      image_shape=(None, None, 3), class_names=tuple(classes),
      split_sizes={k: len(v) for k, v in splits.items()},
      mean=_IMAGENET_MEAN, std=_IMAGENET_STD, hflip=True)
  return core.Dataset(info=info, splits=splits)


def _split(labels: np.ndarray, fraction: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random (kept, held) indices; stratified when every class has >= 2."""
  from hwnas.data import memory  # pylint: disable=g-import-not-at-top
  counts = np.bincount(labels)
  n_held = int(round(fraction * labels.shape[0]))
  if n_held and (counts[counts > 0] >= 2).all() and n_held >= len(counts):
    return memory.stratified_split(labels, fraction, seed)
  perm = np.random.default_rng(seed).permutation(labels.shape[0])
  return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _folder_make(paths: np.ndarray, labels: np.ndarray):
  def make(process_index: int, process_count: int):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    ds = tf.data.Dataset.from_tensor_slices(
        (paths.astype(str), labels.astype(np.int64)))
    if process_count > 1:
      ds = ds.shard(process_count, process_index)
    return ds.map(lambda p, y: {"image": tf.io.read_file(p), "label": y})
  make.paths = paths  # to name an image that cannot be decoded
  return make


def _preprocess(tf: Any, ex: dict[str, Any], key: Any, info: core.DatasetInfo,
                resolution: int, augment: bool) -> tuple[Any, Any]:
  """Decodes, (augments), resizes to `resolution` and normalises one image."""
  img = tf.io.decode_image(ex["image"], channels=3, expand_animations=False)
  img = tf.image.convert_image_dtype(img, tf.float32)  # [H, W, 3] in [0, 1]
  r = resolution
  native = max(d or 10**6 for d in info.image_shape[:2])
  k_crop, k_flip = tf.unstack(tf.random.experimental.stateless_split(key, 2))
  if augment and native > _SMALL:  # random resized crop
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(img), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=k_crop,
        min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.25, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    img = tf.slice(img, begin, size)
  elif native > _SMALL:  # central square crop (87.5% of the shorter side)
    hw = tf.shape(img)[:2]
    side = tf.cast(tf.cast(tf.reduce_min(hw), tf.float32) * 0.875, tf.int32)
    top, left = (hw[0] - side) // 2, (hw[1] - side) // 2
    img = img[top:top + side, left:left + side]
  img = tf.image.resize(img, (r, r), method="bilinear", antialias=True)
  if augment and native <= _SMALL:  # pad and crop
    p = max(1, r // 8)
    img = tf.image.stateless_random_crop(
        tf.pad(img, [[p, p], [p, p], [0, 0]]), (r, r, 3), seed=k_crop)
  if augment and info.hflip:
    img = tf.image.stateless_random_flip_left_right(img, seed=k_flip)
  img = (img - tf.constant(info.mean)) / tf.constant(info.std)
  return img, tf.cast(ex["label"], tf.int32)


def batches(split: core.TfSplit, info: core.DatasetInfo, *, batch_size: int,
            resolution: int, seed: int, augment: bool, shuffle: bool,
            repeat: bool, drop_remainder: bool, start_step: int,
            process_index: int,
            process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's part of each global batch; see `hwnas.data.batches`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  local_b = batch_size // process_count
  local_n = split.num_examples // process_count
  steps = local_n // local_b if drop_remainder else -(-local_n // local_b)
  if steps == 0:
    return
  start_epoch, offset = divmod(start_step, steps)
  base = split.make(process_index, process_count).take(local_n)
  base_key = tf.constant([seed, process_index], tf.int64)

  def epoch_ds(epoch):
    ds = base
    if shuffle:
      ds = ds.shuffle(min(local_n, _SHUFFLE_BUFFER),
                      seed=seed * 100_003 + epoch,
                      reshuffle_each_iteration=False)
    zero = tf.constant(0, tf.int64)
    skip = tf.where(epoch == start_epoch, zero + offset * local_b, zero)
    ds = ds.skip(skip).enumerate(start=skip)

    def prep(i, ex):
      key = tf.random.experimental.stateless_fold_in(
          tf.random.experimental.stateless_fold_in(base_key, epoch), i)
      img, label = _preprocess(tf, ex, key, info, resolution, augment)
      return {"image": img, "label": label, "mask": tf.constant(1.0)}

    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(local_b, drop_remainder=drop_remainder)

  end = np.iinfo(np.int64).max if repeat else 1
  ds = tf.data.Dataset.range(start_epoch, end).flat_map(epoch_ds)
  if not drop_remainder:
    ds = ds.map(lambda b: _pad_batch(tf, b, local_b))
  opts = tf.data.Options()
  opts.deterministic = True
  ds = ds.with_options(opts).prefetch(tf.data.AUTOTUNE)
  from hwnas import chatter  # pylint: disable=g-import-not-at-top
  try:
    with chatter.live():   # libjpeg's lines: the error below names the file
      yield from ds.as_numpy_iterator()
  except tf.errors.InvalidArgumentError as e:
    with chatter.live():
      bad = _undecodable(getattr(split.make, "paths", ()))
    first = (str(e.message).strip().splitlines() or ["?"])[0][:160]
    raise HwnasError(
        f"{info.name}: " + (f"{bad} cannot be decoded as an image; delete "
                            "or replace it" if bad else
                            f"an image cannot be decoded ({first})")
    ) from None


def _undecodable(paths) -> str | None:
  """The first of `paths` that TF cannot decode (searched on error only)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for p in paths:
    try:
      tf.io.decode_image(tf.io.read_file(str(p)), channels=3,
                         expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
      return str(p)
  return None


def _pad_batch(tf: Any, batch: dict[str, Any], size: int) -> dict[str, Any]:
  """Pads a short final batch to `size` rows; padded rows get mask 0."""
  short = size - tf.shape(batch["label"])[0]
  out = {}
  for k, v in batch.items():
    pad = [[0, short]] + [[0, 0]] * (len(v.shape) - 1)
    out[k] = tf.ensure_shape(tf.pad(v, pad), [size] + v.shape[1:].as_list())
  return out
