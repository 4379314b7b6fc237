"""A user's time-series windows on disk: `folder:PATH` in two layouts.

- One `.npz` per split: `PATH/train.npz`, `PATH/test.npz` and optionally
  `PATH/val.npz`, each with `x` float `[N, T, C]`, `y` int `[N]` (labels
  0 .. K-1) and optionally `subject` int `[N]`.
- One file per window under class folders: `PATH/train/<class>/*.npy` or
  `*.csv` (each a `[T, C]` window; csv: comma-separated numbers, one row
  per time step, no header) and optionally `PATH/test/<class>/...`. Class
  names are the sorted folder names of `train`.

Every window of a data set must have the same `[T, C]` and finite values;
otherwise loading fails with one line naming the file and its shape.

Held-out splits when not given: without `val.npz`, the validation split is
`val_fraction` of the training *subjects* (drawn with `seed`) when `subject`
is given, else `val_fraction` of the training windows (stratified, drawn
with `seed`). Without a `test` folder, 20% of the training windows (fixed
seed 0) are the test split. Windows without subjects cannot be split by
subject: if they were cut from a few long recordings, give the split files
yourself (docs/data.md says why).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from hwnas.data import core
from hwnas.data import memory
from hwnas.data import series
from hwnas.errors import HwnasError

_WINDOW_SUFFIXES = (".npy", ".csv")
_TEST_FRACTION = 0.2
_TEST_SEED = 0


def is_series_folder(root: pathlib.Path) -> bool:
  """True when `root` holds `train.npz` or window files under `train/`."""
  if (root / "train.npz").is_file():
    return True
  train = root / "train"
  if not train.is_dir():
    return False
  for d in sorted(train.iterdir()):
    if d.is_dir():
      for f in d.iterdir():
        if f.suffix.lower() in _WINDOW_SUFFIXES:
          return True
  return False


def load(root: pathlib.Path, *, val_fraction: float,
         seed: int) -> core.Dataset:
  """Loads a series folder (either layout) as a `Dataset`."""
  name = f"folder:{root}"
  if (root / "train.npz").is_file():
    splits = _npz_splits(root, val_fraction=val_fraction, seed=seed)
    num_classes = 1 + max(int(s.labels.max(initial=-1))
                          for s in splits.values())
    class_names = [str(i) for i in range(num_classes)]
  else:
    splits, class_names = _window_splits(root, val_fraction=val_fraction,
                                         seed=seed)
  _same_shape(splits, root)
  series.check_disjoint_subjects(splits, name)
  subjects = {k: tuple(sorted(int(s) for s in np.unique(v.subjects)
                              if s >= 0)) for k, v in splits.items()}
  return series.make_dataset(
      name, splits, class_names=class_names,
      split_subjects=subjects if any(subjects.values()) else None)


def _check_values(x: np.ndarray, path: pathlib.Path, ndim: int,
                  what: str) -> None:
  if x.ndim != ndim or 0 in x.shape:
    raise HwnasError(f"{path}: {what} has shape {x.shape}, expected "
                     f"{'[N, T, C]' if ndim == 3 else '[T, C]'}; fix: save "
                     "fixed-length windows")
  if not np.issubdtype(x.dtype, np.number):
    raise HwnasError(f"{path}: {what} has dtype {x.dtype} (shape {x.shape}); "
                     "fix: save numbers")
  bad = int(np.size(x) - np.isfinite(x).sum())
  if bad:
    raise HwnasError(f"{path}: {what} (shape {x.shape}) has {bad} non-finite "
                     "values; fix: fill or drop them before saving")


def _read_npz(path: pathlib.Path) -> core.SeriesSplit:
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise HwnasError(f"{path}: not a readable .npz ({e})") from None
  missing = [k for k in ("x", "y") if k not in arrays]
  if missing:
    raise HwnasError(f"{path}: no {', '.join(missing)} (has "
                     f"{', '.join(sorted(arrays)) or 'nothing'}); fix: save "
                     "x [N, T, C] and y [N]")
  x, y = arrays["x"], arrays["y"]
  _check_values(x, path, 3, "x")
  subject = arrays.get("subject", np.full(y.shape, -1))
  for key, v in (("y", y), ("subject", subject)):
    if v.shape != (x.shape[0],) or not np.issubdtype(v.dtype, np.integer):
      raise HwnasError(f"{path}: {key} has shape {v.shape} and dtype "
                       f"{v.dtype} but x has shape {x.shape}; fix: {key} "
                       f"must be integers of shape [{x.shape[0]}]")
  if y.size and y.min() < 0:
    raise HwnasError(f"{path}: y has negative labels (min {y.min()}); fix: "
                     "use labels 0 .. K-1")
  return core.SeriesSplit(x.astype(np.float32), y.astype(np.int32),
                          subject.astype(np.int32))


def _hold_out(split: core.SeriesSplit, fraction: float, seed: int,
              where: pathlib.Path) -> tuple[core.SeriesSplit, core.SeriesSplit]:
  """(kept, held_out): whole subjects when known, else stratified windows."""
  subjects = np.unique(split.subjects)
  if subjects.size and subjects.min() >= 0:
    k = math.ceil(fraction * subjects.size) if fraction > 0 else 0
    held = np.random.default_rng(seed).permutation(subjects)[:k]
    mask = np.isin(split.subjects, held)
  else:
    try:
      _, held_idx = memory.stratified_split(split.labels, fraction, seed)
    except ValueError as e:
      raise HwnasError(f"{where}: cannot hold out {fraction:g} of "
                       f"{len(split)} windows by class ({e}); fix: add "
                       "windows or give the split files") from None
    mask = np.zeros(len(split), bool)
    mask[held_idx] = True
  return series.take(split, ~mask), series.take(split, mask)


def _npz_splits(root: pathlib.Path, *, val_fraction: float,
                seed: int) -> dict[str, core.SeriesSplit]:
  if not (root / "test.npz").is_file():
    raise HwnasError(f"{root}: has train.npz but no test.npz; fix: save the "
                     "test windows (other subjects) as test.npz")
  train = _read_npz(root / "train.npz")
  test = _read_npz(root / "test.npz")
  if (root / "val.npz").is_file():
    val = _read_npz(root / "val.npz")
  else:
    train, val = _hold_out(train, val_fraction, seed, root / "train.npz")
  return {"train": train, "val": val, "test": test}


def _read_window(path: pathlib.Path) -> np.ndarray:
  try:
    if path.suffix.lower() == ".npy":
      x = np.load(path, allow_pickle=False)
    else:
      x = np.loadtxt(path, delimiter=",", ndmin=2)
  except (OSError, ValueError) as e:
    raise HwnasError(f"{path}: not a readable window ({e}); fix: a [T, C] "
                     ".npy, or a csv of numbers without a header") from None
  _check_values(x, path, 2, "the window")
  return x.astype(np.float32)


def _read_class_folders(top: pathlib.Path, classes: list[str]
                        ) -> core.SeriesSplit:
  xs, ys, first = [], [], None
  for d in sorted(p for p in top.iterdir() if p.is_dir()):
    if d.name not in classes:
      raise HwnasError(f"{d}: class {d.name!r} is not a class folder of "
                       f"{top.parent / 'train'}; fix: use the training "
                       "classes")
    for f in sorted(d.iterdir()):
      if f.suffix.lower() not in _WINDOW_SUFFIXES:
        continue
      x = _read_window(f)
      if first is None:
        first = (f, x.shape)
      elif x.shape != first[1]:
        raise HwnasError(f"{f}: window of shape {x.shape} but {first[0]} has "
                         f"{first[1]}; fix: cut every window to the same "
                         "[T, C]")
      xs.append(x)
      ys.append(classes.index(d.name))
  if not xs:
    raise HwnasError(f"{top}: no .npy or .csv windows under its class "
                     "folders")
  return core.SeriesSplit(np.stack(xs), np.asarray(ys, np.int32),
                          np.full(len(ys), -1, np.int32))


def _window_splits(root: pathlib.Path, *, val_fraction: float, seed: int
                   ) -> tuple[dict[str, core.SeriesSplit], list[str]]:
  classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
  pool = _read_class_folders(root / "train", classes)
  if (root / "test").is_dir():
    test = _read_class_folders(root / "test", classes)
  else:
    pool, test = _hold_out(pool, _TEST_FRACTION, _TEST_SEED, root / "train")
  train, val = _hold_out(pool, val_fraction, seed, root / "train")
  return {"train": train, "val": val, "test": test}, classes


def _same_shape(splits: dict[str, core.SeriesSplit],
                root: pathlib.Path) -> None:
  shape = splits["train"].windows.shape[1:]
  for name, s in splits.items():
    if len(s) and s.windows.shape[1:] != shape:
      raise HwnasError(f"{root}: {name} windows have shape "
                       f"{s.windows.shape[1:]} but train windows "
                       f"{shape}; fix: the same [T, C] in every split")
