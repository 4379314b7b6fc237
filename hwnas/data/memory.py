"""In-memory data: scikit-learn's handwritten digits and numpy batching.

`digits` is the offline default dataset: 1797 grey 8x8 images (pixel values
0..16) that ship inside the scikit-learn wheel. They are presented as RGB
(the grey channel replicated three times), scaled to [0, 1], at their native
8x8 size; `batches` resizes them to the requested resolution.

Splits are fixed and stratified: 20% of the data is the test split, drawn
with a fixed seed (0) whatever `seed` the caller passes, so no seed ever moves
a test image into training or search. `val_fraction` of the remaining
training data is held out as the validation split, drawn with `seed`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hwnas.data import core

_TEST_FRACTION = 0.2
_TEST_SEED = 0


def stratified_split(labels: np.ndarray, fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns (kept, held_out) index arrays; held_out is ~fraction per class."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  idx = np.arange(labels.shape[0])
  if fraction <= 0:
    return idx, idx[:0]
  kept, held = model_selection.train_test_split(
      idx, test_size=fraction, stratify=labels, random_state=seed)
  return np.sort(kept), np.sort(held)


def load_digits(*, val_fraction: float, seed: int) -> core.Dataset:
  """Loads scikit-learn's digits as a `Dataset` (offline, in memory)."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  raw = datasets.load_digits()
  images = np.repeat(raw.images.astype(np.float32)[..., None] / 16.0, 3, -1)
  labels = raw.target.astype(np.int32)
  train_pool, test = stratified_split(labels, _TEST_FRACTION, _TEST_SEED)
  kept, val = stratified_split(labels[train_pool], val_fraction, seed)
  train, val = train_pool[kept], train_pool[val]
  grey = images[train, :, :, 0]
  mean, std = float(grey.mean()), float(grey.std())
  splits = {name: core.ArraySplit(images[i], labels[i])
            for name, i in (("train", train), ("val", val), ("test", test))}
  info = core.DatasetInfo(
      name="digits", num_classes=10, image_shape=(8, 8, 3),
      class_names=tuple(str(c) for c in range(10)),
      split_sizes={k: len(v) for k, v in splits.items()},
      mean=(mean,) * 3, std=(std,) * 3, hflip=False, pixel_max=16.0)
  return core.Dataset(info=info, splits=splits)


def load_digits_few(per_class: int) -> core.Dataset:
  """`digits-N`: the digits with only N training images per class.

  The test split is digits' own (the same 20%, fixed seed). From the rest,
  N images of each class (a fixed draw, seed 0, whatever the run's seed)
  are the training split and all the others the validation split, so every
  run and seed sees the same small training set and a large, low-noise
  validation set. With N = 10-30 the networks of a small space reach
  accuracies that differ by several points after a short recipe, which is
  what measuring a supernet's ranking offline needs (on full digits they
  all reach 97-99%, within the noise of the 144-image val split).
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  raw = datasets.load_digits()
  images = np.repeat(raw.images.astype(np.float32)[..., None] / 16.0, 3, -1)
  labels = raw.target.astype(np.int32)
  pool, test = stratified_split(labels, _TEST_FRACTION, _TEST_SEED)
  order = np.random.default_rng(0).permutation(pool)
  train = np.sort(np.concatenate(
      [order[labels[order] == c][:per_class] for c in range(10)]))
  val = np.setdiff1d(pool, train)
  grey = images[train, :, :, 0]
  mean, std = float(grey.mean()), float(grey.std())
  splits = {name: core.ArraySplit(images[i], labels[i])
            for name, i in (("train", train), ("val", val), ("test", test))}
  info = core.DatasetInfo(
      name=f"digits-{per_class}", num_classes=10, image_shape=(8, 8, 3),
      class_names=tuple(str(c) for c in range(10)),
      split_sizes={k: len(v) for k, v in splits.items()},
      mean=(mean,) * 3, std=(std,) * 3, hflip=False, pixel_max=16.0)
  return core.Dataset(info=info, splits=splits)


def resize(images: np.ndarray, resolution: int) -> np.ndarray:
  """Bilinear resize of float images `[N, H, W, C]` to `[N, R, R, C]`."""
  if images.shape[1:3] == (resolution, resolution):
    return images
  import jax  # pylint: disable=g-import-not-at-top
  n, _, _, c = images.shape
  out = jax.image.resize(images, (n, resolution, resolution, c), "bilinear")
  return np.asarray(out, np.float32)


def _pad_crop(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
  """Random crop of `x` [B, R, R, C] zero-padded by R // 8 on every side."""
  b, r = x.shape[0], x.shape[1]
  p = max(1, r // 8)
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  oy = rng.integers(0, 2 * p + 1, size=b)
  ox = rng.integers(0, 2 * p + 1, size=b)
  rows = (oy[:, None] + np.arange(r))[:, :, None]
  cols = (ox[:, None] + np.arange(r))[:, None, :]
  return padded[np.arange(b)[:, None, None], rows, cols]


def _augment(rng: np.random.Generator, x: np.ndarray,
             hflip: bool) -> np.ndarray:
  x = _pad_crop(rng, x)
  if hflip:
    flip = rng.random(x.shape[0]) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
  return x


def batch_indices(n: int, *, batch_size: int, seed: int, shuffle: bool,
                  repeat: bool, drop_remainder: bool, start_step: int
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
  """Yields `(step, idx, mask)` for each global batch of `n` in-memory rows.

  `idx` holds `batch_size` row indices (a short last batch padded by
  repeating its last index) and `mask` is 1.0 for real rows. Epoch `e =
  step // steps_per_epoch` uses the permutation `default_rng([seed, e])`.
  """
  steps = n // batch_size if drop_remainder else -(-n // batch_size)
  step = start_step
  while steps > 0 and (repeat or step < steps):
    epoch, pos = divmod(step, steps)
    order = (np.random.default_rng([seed, epoch]).permutation(n) if shuffle
             else np.arange(n))
    idx = order[pos * batch_size:(pos + 1) * batch_size]
    mask = np.zeros(batch_size, np.float32)
    mask[:idx.shape[0]] = 1.0
    yield step, np.pad(idx, (0, batch_size - idx.shape[0]), mode="edge"), mask
    step += 1


def batches(split: core.ArraySplit, info: core.DatasetInfo, *,
            batch_size: int, resolution: int, seed: int, augment: bool,
            shuffle: bool, repeat: bool, drop_remainder: bool,
            start_step: int, process_index: int,
            process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's part of each global batch; see `hwnas.data.batches`.

  Step `s` is a pure function of (seed, s): epoch `e = s // steps_per_epoch`
  uses the permutation `default_rng([seed, e])` and the batch's augmentation
  draws from `default_rng([seed, s, 1])` for the whole global batch, so the
  stream does not depend on where it was started or on the host count.
  """
  local = batch_size // process_count
  images = resize(split.images, resolution)
  mean = np.asarray(info.mean, np.float32)
  std = np.asarray(info.std, np.float32)
  for step, idx, mask in batch_indices(
      len(split), batch_size=batch_size, seed=seed, shuffle=shuffle,
      repeat=repeat, drop_remainder=drop_remainder, start_step=start_step):
    x = images[idx]
    if augment:
      x = _augment(np.random.default_rng([seed, step, 1]), x, info.hflip)
    mine = slice(process_index * local, (process_index + 1) * local)
    yield {"image": ((x[mine] - mean) / std).astype(np.float32),
           "label": split.labels[idx][mine].astype(np.int32),
           "mask": mask[mine]}
