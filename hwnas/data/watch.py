"""`watch`: the offline sensor data set, smartwatch IMU recordings of
shoulder exercises, shipped inside the `seglearn` wheel.

The data (Burns et al., "Shoulder physiotherapy exercise recognition: machine
learning the inertial signals from a smartwatch", 2018; seglearn's
`datasets.load_watch`) are 140 recordings of 6 channels (accelerometer
ax, ay, az and gyroscope wx, wy, wz) at 50 Hz, from 10 subjects, each doing
7 exercises (PEN, ABD, FEL, IR, ER, TRAP, ROW) with each arm: 14 recordings
per subject, 2 per exercise, 947-2618 samples (19-52 s) long.

Protocol (docs/data.md):

- Windows of `WINDOW` = 128 samples (2.56 s) every `STEP` = 64 samples (50%
  overlap), the tail of a recording shorter than a window dropped.
- Split by subject, fixed whatever the run's seed or `val_fraction`:
  subjects 1-6 train, 7-8 validation (what search ranks on), 9-10 test.
- Per-channel mean and std of the training windows normalise every split.

The data file is read directly (found with `importlib.util.find_spec`, which
does not import seglearn): `import seglearn` needs pandas, which seglearn
does not declare and hwnas does not use. The file is a numpy pickle of a
dict; it comes from the installed package, not from the user.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from hwnas.data import core
from hwnas.data import series
from hwnas.errors import HwnasError

WINDOW = 128
STEP = 64
SUBJECTS = {"train": (1, 2, 3, 4, 5, 6), "val": (7, 8), "test": (9, 10)}
INSTALL = "pip install 'seglearn==1.2.5'"


def data_file() -> pathlib.Path:
  """The path of seglearn's shipped `watch_dataset.npy`.

  Raises:
    HwnasError: seglearn is not installed (or ships no data file).
  """
  spec = importlib.util.find_spec("seglearn")
  if spec is None or not spec.submodule_search_locations:
    raise HwnasError(f"--dataset watch: needs the seglearn package, which "
                     f"ships the data; fix: {INSTALL}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0],
                      "data", "watch_dataset.npy")
  if not path.is_file():
    raise HwnasError(f"--dataset watch: {path} is missing from the installed "
                     f"seglearn; fix: {INSTALL}")
  return path


def read_recordings(path: pathlib.Path) -> dict:
  """Reads and checks the recordings dict (`X`, `y`, `subject`, labels).

  Raises:
    HwnasError: A key is missing, or a recording is not `[length, 6]` finite.
  """
  raw = np.load(path, allow_pickle=True).item()
  missing = [k for k in ("X", "y", "subject", "y_labels") if k not in raw]
  if missing:
    raise HwnasError(f"{path}: no {', '.join(missing)}; fix: {INSTALL}")
  if not len(raw["X"]) == len(raw["y"]) == len(raw["subject"]):
    raise HwnasError(f"{path}: {len(raw['X'])} recordings but "
                     f"{len(raw['y'])} labels and {len(raw['subject'])} "
                     f"subjects; fix: {INSTALL}")
  for i, x in enumerate(raw["X"]):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 6:
      raise HwnasError(f"{path}: recording {i} has shape {x.shape}, "
                       f"expected [length, 6]; fix: {INSTALL}")
    if not np.isfinite(x).all():
      raise HwnasError(f"{path}: recording {i} (shape {x.shape}) has "
                       f"non-finite values; fix: {INSTALL}")
  return raw


def load_watch(path: pathlib.Path | None = None) -> core.Dataset:
  """Loads `watch` as a `Dataset` of `[N, 128, 6]` windows, split by subject.

  Args:
    path: The data file (default: the installed seglearn's).
  """
  raw = read_recordings(path or data_file())
  windows = series.segment_all(raw["X"], raw["y"], raw["subject"],
                               window=WINDOW, step=STEP)
  splits = series.split_by_subject(windows, SUBJECTS)
  return series.make_dataset("watch", splits,
                             class_names=[str(n) for n in raw["y_labels"]],
                             split_subjects=SUBJECTS)
