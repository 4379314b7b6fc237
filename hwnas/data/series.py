"""Time-series windows: cutting, subject splits, training statistics, batches.

Human-activity recognition (HAR) data come as recordings: a `[length, C]`
signal (e.g. a 3-axis accelerometer and a 3-axis gyroscope, C = 6) with one
label and one subject per recording. A model sees fixed windows of `T`
samples, cut from each recording every `step` samples (overlap `T - step`).

The honest protocol, followed here:

- Split *by subject*: every window of one subject, hence of one recording,
  lies in exactly one split. Windows cut from one recording overlap each
  other and share the subject's way of moving; a random split of windows
  puts near-copies of test windows into training and reports accuracies that
  no new user will see (docs/data.md).
- Normalise per channel with the *training* windows' mean and standard
  deviation only (`channel_stats`); validation and test windows are
  normalised with those same numbers, as a deployed model's input would be.

`batches` yields windows cut to `resolution` samples (the 1-D "resolution"):
a random crop with `augment` (a random time shift), else the central crop.
Windows are never resampled: that would change the sampling rate the
sensor model is trained for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from hwnas.data import core
from hwnas.data import memory
from hwnas.errors import HwnasError


def num_windows(length: int, window: int, step: int) -> int:
  """Windows of `window` samples every `step` samples in `length` samples.

  The tail after the last full window is dropped; a recording shorter than
  one window gives none.
  """
  return 0 if length < window else 1 + (length - window) // step


def segment(recording: np.ndarray, window: int, step: int) -> np.ndarray:
  """Cuts a `[length, C]` recording into `[num_windows, window, C]`.

  Window `i` is `recording[i * step : i * step + window]`.
  """
  n = num_windows(recording.shape[0], window, step)
  starts = np.arange(n) * step
  return recording[starts[:, None] + np.arange(window)]


def segment_all(recordings: Sequence[np.ndarray], labels: Sequence[int],
                subjects: Sequence[int], *, window: int,
                step: int) -> core.SeriesSplit:
  """Segments every recording; each window keeps its recording's label and
  subject."""
  xs, ys, ss = [], [], []
  for rec, y, s in zip(recordings, labels, subjects):
    w = segment(np.asarray(rec, np.float32), window, step)
    xs.append(w)
    ys.append(np.full(w.shape[0], y, np.int32))
    ss.append(np.full(w.shape[0], s, np.int32))
  channels = recordings[0].shape[1] if len(recordings) else 0
  return core.SeriesSplit(
      windows=(np.concatenate(xs) if xs
               else np.zeros((0, window, channels), np.float32)),
      labels=np.concatenate(ys) if ys else np.zeros(0, np.int32),
      subjects=np.concatenate(ss) if ss else np.zeros(0, np.int32))


def take(split: core.SeriesSplit, mask: np.ndarray) -> core.SeriesSplit:
  """The windows of `split` where `mask` is true."""
  return core.SeriesSplit(split.windows[mask], split.labels[mask],
                          split.subjects[mask])


def split_by_subject(windows: core.SeriesSplit,
                     assignment: Mapping[str, Sequence[int]]
                     ) -> dict[str, core.SeriesSplit]:
  """Splits windows by subject: `assignment` maps each split to its subjects.

  Raises:
    HwnasError: A subject is assigned to two splits.
  """
  seen: dict[int, str] = {}
  for name, subjects in assignment.items():
    for s in subjects:
      if s in seen:
        raise HwnasError(f"subject {s} is in both {seen[s]!r} and {name!r}; "
                         "fix: give every subject exactly one split")
      seen[s] = name
  return {name: take(windows, np.isin(windows.subjects, list(subjects)))
          for name, subjects in assignment.items()}


def check_disjoint_subjects(splits: Mapping[str, core.SeriesSplit],
                            where: str) -> None:
  """Raises `HwnasError` if a subject (>= 0) has windows in two splits."""
  owner: dict[int, str] = {}
  for name, split in splits.items():
    for s in np.unique(split.subjects):
      s = int(s)
      if s < 0:
        continue
      if s in owner:
        raise HwnasError(f"{where}: subject {s} is in both {owner[s]!r} and "
                         f"{name!r}; fix: give every subject exactly one "
                         "split (windows of one subject on both sides leak)")
      owner[s] = name


def channel_stats(train: core.SeriesSplit
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and standard deviation of the training windows.

  A channel that is constant in training gets std 1.0 (no division by 0).
  """
  x = train.windows.reshape(-1, train.windows.shape[-1]).astype(np.float64)
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 0, std, 1.0)
  return tuple(map(float, mean)), tuple(map(float, std))


def make_dataset(name: str, splits: Mapping[str, core.SeriesSplit], *,
                 class_names: Sequence[str],
                 split_subjects: Mapping[str, tuple[int, ...]] | None = None
                 ) -> core.Dataset:
  """The `Dataset` of time-series splits, normalised by training stats."""
  if len(splits["train"]) == 0:
    raise HwnasError(f"--dataset {name}: no training windows; fix: add "
                     "recordings or shorten the window")
  mean, std = channel_stats(splits["train"])
  _, t, c = splits["train"].windows.shape
  info = core.DatasetInfo(
      name=name, num_classes=len(class_names), image_shape=(t, c),
      class_names=tuple(class_names),
      split_sizes={k: len(splits[k]) for k in core.SPLITS},
      mean=mean, std=std, hflip=False, pixel_max=1.0, kind="timeseries",
      split_subjects=dict(split_subjects or {}))
  return core.Dataset(info=info, splits={k: splits[k] for k in core.SPLITS})


def _crop(rng: np.random.Generator | None, x: np.ndarray,
          length: int) -> np.ndarray:
  """Crops `x` [B, T, C] to `length` samples: random offsets per window when
  `rng` is given, else the central crop."""
  b, t = x.shape[0], x.shape[1]
  if length == t:
    return x
  if rng is None:
    start = np.full(b, (t - length) // 2)
  else:
    start = rng.integers(0, t - length + 1, size=b)
  return x[np.arange(b)[:, None], start[:, None] + np.arange(length)]


def batches(split: core.SeriesSplit, info: core.DatasetInfo, *,
            batch_size: int, resolution: int, seed: int, augment: bool,
            shuffle: bool, repeat: bool, drop_remainder: bool,
            start_step: int, process_index: int,
            process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's part of each global batch; see `hwnas.data.batches`.

  `"image"` holds the normalised windows, float32 `[b, resolution, C]` (the
  key the training loops read). Step `s` is a pure function of (seed, s),
  as in `memory.batches`.
  """
  n, t = len(split), split.windows.shape[1]
  if not 1 <= resolution <= t:
    raise HwnasError(f"{info.name}: window length {resolution} requested but "
                     f"the stored windows have {t} samples; fix: use a "
                     f"length of at most {t}")
  local = batch_size // process_count
  mean = np.asarray(info.mean, np.float32)
  std = np.asarray(info.std, np.float32)
  for step, idx, mask in memory.batch_indices(
      n, batch_size=batch_size, seed=seed, shuffle=shuffle, repeat=repeat,
      drop_remainder=drop_remainder, start_step=start_step):
    rng = np.random.default_rng([seed, step, 1]) if augment else None
    x = _crop(rng, split.windows[idx], resolution)
    mine = slice(process_index * local, (process_index + 1) * local)
    yield {"image": ((x[mine] - mean) / std).astype(np.float32),
           "label": split.labels[idx][mine].astype(np.int32),
           "mask": mask[mine]}
