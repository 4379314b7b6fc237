"""Tests for time-series data: windows, subject splits, training statistics,
the `watch` loader (on a generated file in seglearn's format) and the
`folder:` series layouts with their one-line errors. No JAX."""

import pathlib

import numpy as np
import pytest

from hwnas import data
from hwnas.data import series, series_files, watch
from hwnas.errors import HwnasError


def test_window_count_by_hand():
  # 300 samples, windows of 128 every 64: starts 0, 64, 128 (128 + 128 =
  # 256 <= 300); 192 + 128 = 320 > 300, so 3 windows and a dropped tail.
  rec = np.arange(300 * 2, dtype=np.float32).reshape(300, 2)
  w = series.segment(rec, 128, 64)
  assert series.num_windows(300, 128, 64) == 3
  assert w.shape == (3, 128, 2)
  np.testing.assert_array_equal(w[1], rec[64:192])
  np.testing.assert_array_equal(w[2], rec[128:256])
  assert series.num_windows(127, 128, 64) == 0
  assert series.num_windows(128, 128, 64) == 1
  assert series.num_windows(10, 4, 4) == 2  # no overlap: 0-3, 4-7


def _fake_watch(path: pathlib.Path, *, seed: int = 0, length=None) -> dict:
  """A file in the format seglearn ships: a pickled dict of recordings."""
  rng = np.random.default_rng(seed)
  xs, ys, subjects = [], [], []
  for s in range(1, 11):
    for y in range(7):
      for _ in range(2):
        n = length or int(rng.integers(200, 400))
        xs.append(rng.normal(s + y, 1.0 + y, size=(n, 6)))
        ys.append(y)
        subjects.append(s)
  raw = {"X": xs, "y": np.asarray(ys), "subject": np.asarray(subjects),
         "side": np.zeros(len(ys)), "X_labels": ["ax", "ay", "az", "wx",
                                                  "wy", "wz"],
         "y_labels": ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]}
  np.save(path, np.asarray(raw, dtype=object), allow_pickle=True)
  return raw


def test_watch_split_by_subject_and_window_counts(tmp_path):
  path = tmp_path / "watch.npy"
  raw = _fake_watch(path)
  ds = watch.load_watch(path)
  assert ds.info.kind == "timeseries" and ds.info.image_shape == (128, 6)
  assert ds.info.num_classes == 7 and ds.info.class_names[0] == "PEN"
  subjects = {s: set(np.unique(ds[s].subjects).tolist()) for s in data.SPLITS}
  assert subjects == {k: set(v) for k, v in watch.SUBJECTS.items()}
  assert not (subjects["train"] & subjects["val"])
  assert not (subjects["train"] & subjects["test"])
  assert not (subjects["val"] & subjects["test"])
  for split in data.SPLITS:
    want = sum(series.num_windows(len(x), 128, 64)
               for x, s in zip(raw["X"], raw["subject"])
               if s in watch.SUBJECTS[split])
    assert len(ds[split]) == ds.info.split_sizes[split] == want


def test_normalisation_uses_training_windows_only(tmp_path):
  path = tmp_path / "watch.npy"
  _fake_watch(path)
  ds = watch.load_watch(path)
  train = ds["train"].windows.reshape(-1, 6)
  np.testing.assert_allclose(ds.info.mean, train.mean(0), rtol=1e-5)
  np.testing.assert_allclose(ds.info.std, train.std(0), rtol=1e-5)
  # Subjects 7-10 have larger means than 1-6: with all windows the mean
  # would be higher, so the statistics are provably the training ones.
  everything = np.concatenate([ds[s].windows for s in data.SPLITS])
  assert np.all(everything.reshape(-1, 6).mean(0) > np.asarray(ds.info.mean)
                + 0.5)
  b = next(data.batches(ds, "train", batch_size=len(ds["train"]),
                        resolution=128, seed=0, shuffle=False))
  np.testing.assert_allclose(b["image"].reshape(-1, 6).mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(b["image"].reshape(-1, 6).std(0), 1, atol=1e-4)
  t = next(data.batches(ds, "test", batch_size=8, resolution=128, seed=0,
                        shuffle=False))
  want = (ds["test"].windows[:8] - np.asarray(ds.info.mean, np.float32)) / (
      np.asarray(ds.info.std, np.float32))
  np.testing.assert_allclose(t["image"], want, rtol=1e-5, atol=1e-5)


def test_batches_crop_to_window_length(tmp_path):
  path = tmp_path / "watch.npy"
  _fake_watch(path)
  ds = watch.load_watch(path)
  kw = dict(batch_size=4, seed=1, shuffle=False)
  full = next(data.batches(ds, "val", resolution=128, **kw))["image"]
  centre = next(data.batches(ds, "val", resolution=64, **kw))["image"]
  assert centre.shape == (4, 64, 6)
  np.testing.assert_array_equal(centre, full[:, 32:96])
  a = next(data.batches(ds, "val", resolution=64, augment=True, **kw))
  b = next(data.batches(ds, "val", resolution=64, augment=True, **kw))
  np.testing.assert_array_equal(a["image"], b["image"])  # a pure function
  with pytest.raises(HwnasError, match="at most 128"):
    next(data.batches(ds, "val", resolution=129, **kw))


def test_eval_pass_covers_every_window_once(tmp_path):
  path = tmp_path / "watch.npy"
  _fake_watch(path)
  ds = watch.load_watch(path)
  ev = list(data.batches(ds, "test", batch_size=64, resolution=128, seed=0,
                         shuffle=False, repeat=False, drop_remainder=False))
  n = len(ds["test"])
  assert len(ev) == -(-n // 64) and sum(e["mask"].sum() for e in ev) == n
  labels = np.concatenate([e["label"][e["mask"] > 0] for e in ev])
  np.testing.assert_array_equal(labels, ds["test"].labels)


def test_subject_in_two_splits_is_refused():
  w = series.segment_all([np.zeros((10, 2))] * 3, [0, 1, 0], [1, 2, 3],
                         window=4, step=2)
  with pytest.raises(HwnasError, match="subject 2 is in both"):
    series.split_by_subject(w, {"train": (1, 2), "test": (2, 3)})


def test_watch_file_with_a_bad_recording(tmp_path):
  path = tmp_path / "watch.npy"
  raw = _fake_watch(path)
  raw["X"][5] = raw["X"][5][:, :5]
  np.save(path, np.asarray(raw, dtype=object), allow_pickle=True)
  with pytest.raises(HwnasError) as e:
    watch.load_watch(path)
  msg = str(e.value)
  assert f"{path}: recording 5 has shape ({len(raw['X'][5])}, 5)" in msg
  assert "\n" not in msg


def test_watch_missing_package_says_how_to_install(monkeypatch):
  monkeypatch.setattr(watch.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(HwnasError) as e:
    data.load("watch")
  assert "pip install 'seglearn" in str(e.value)
  assert "\n" not in str(e.value)


# folder:PATH, one .npz per split.


def _npz(path, n=12, t=16, c=3, subjects=None, seed=0, **extra):
  rng = np.random.default_rng(seed)
  arrays = {"x": rng.normal(size=(n, t, c)).astype(np.float32),
            "y": np.arange(n) % 3}
  if subjects is not None:
    arrays["subject"] = np.asarray(subjects)
  arrays.update(extra)
  np.savez(path, **arrays)


def test_npz_folder_with_subjects_holds_out_whole_subjects(tmp_path):
  _npz(tmp_path / "train.npz", n=12, subjects=np.repeat([1, 2, 3, 4], 3))
  _npz(tmp_path / "test.npz", n=6, subjects=np.repeat([5, 6], 3), seed=1)
  ds = data.load(f"folder:{tmp_path}", val_fraction=0.25, seed=3)
  assert ds.info.kind == "timeseries" and ds.info.image_shape == (16, 3)
  sub = ds.info.split_subjects
  assert len(sub["val"]) == 1 and len(sub["train"]) == 3
  assert not set(sub["train"]) & set(sub["val"])
  assert sub["test"] == (5, 6)
  assert ds.info.split_sizes == {"train": 9, "val": 3, "test": 6}


def test_npz_folder_subject_in_two_splits(tmp_path):
  _npz(tmp_path / "train.npz", subjects=np.repeat([1, 2, 3, 4], 3))
  _npz(tmp_path / "test.npz", n=6, subjects=np.repeat([4, 5], 3))
  with pytest.raises(HwnasError) as e:
    data.load(f"folder:{tmp_path}")
  assert "subject 4 is in both 'train' and 'test'" in str(e.value)
  assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad, needle", [
    ({"x": np.zeros((6, 16), np.float32)}, "x has shape (6, 16)"),
    ({"y": np.zeros(5, int)}, "y has shape (5,)"),
    ({"x": np.full((6, 16, 3), np.nan, np.float32)}, "288 non-finite"),
    ({"y": np.zeros(6)}, "dtype float64"),
])
def test_npz_errors_name_file_and_shape(tmp_path, bad, needle):
  _npz(tmp_path / "train.npz", n=12)
  _npz(tmp_path / "test.npz", n=6, **bad)
  with pytest.raises(HwnasError) as e:
    data.load(f"folder:{tmp_path}")
  msg = str(e.value)
  assert needle in msg and "test.npz" in msg and "\n" not in msg


def test_npz_splits_with_different_window_shapes(tmp_path):
  _npz(tmp_path / "train.npz", n=30, t=16)
  _npz(tmp_path / "test.npz", n=6, t=20)
  with pytest.raises(HwnasError, match=r"test windows have shape \(20, 3\)"):
    data.load(f"folder:{tmp_path}")


# folder:PATH, one file per window under class folders.


def _windows(root, split, classes=("walk", "run"), per_class=6, t=16, c=3,
             suffix=".npy"):
  rng = np.random.default_rng(len(split))
  for k, name in enumerate(classes):
    d = root / split / name
    d.mkdir(parents=True)
    for i in range(per_class):
      x = rng.normal(k, 1.0, size=(t, c))
      if suffix == ".npy":
        np.save(d / f"{i}.npy", x)
      else:
        np.savetxt(d / f"{i}.csv", x, delimiter=",")


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_window_folders(tmp_path, suffix):
  _windows(tmp_path, "train", per_class=10, suffix=suffix)
  _windows(tmp_path, "test", per_class=3, suffix=suffix)
  ds = data.load(f"folder:{tmp_path}", val_fraction=0.2, seed=0)
  assert ds.info.class_names == ("run", "walk")
  assert ds.info.split_sizes == {"train": 16, "val": 4, "test": 6}
  assert ds["train"].windows.shape[1:] == (16, 3)
  b = next(data.batches(ds, "train", batch_size=4, resolution=8, seed=0))
  assert b["image"].shape == (4, 8, 3) and b["label"].dtype == np.int32


def test_too_few_windows_to_hold_out(tmp_path):
  _npz(tmp_path / "train.npz", n=12)
  _npz(tmp_path / "test.npz", n=6)
  with pytest.raises(HwnasError) as e:
    data.load(f"folder:{tmp_path}", val_fraction=0.1)
  assert "train.npz: cannot hold out 0.1 of 12 windows" in str(e.value)
  assert "\n" not in str(e.value)


def test_window_folders_ragged_window(tmp_path):
  _windows(tmp_path, "train")
  np.save(tmp_path / "train" / "walk" / "9.npy", np.zeros((15, 3)))
  with pytest.raises(HwnasError) as e:
    data.load(f"folder:{tmp_path}")
  msg = str(e.value)
  assert "9.npy: window of shape (15, 3)" in msg and "(16, 3)" in msg
  assert "\n" not in msg


@pytest.mark.parametrize("content, needle", [
    ("1,2,3\n4,5\n", "not a readable window"),
    ("1,2,nan\n4,5,6\n", "1 non-finite"),
])
def test_window_folders_bad_csv(tmp_path, content, needle):
  _windows(tmp_path, "train", suffix=".csv")
  (tmp_path / "train" / "run" / "bad.csv").write_text(content)
  with pytest.raises(HwnasError) as e:
    data.load(f"folder:{tmp_path}")
  assert needle in str(e.value) and "bad.csv" in str(e.value)
  assert "\n" not in str(e.value)


def test_window_folder_one_dimensional_npy(tmp_path):
  _windows(tmp_path, "train")
  np.save(tmp_path / "train" / "run" / "flat.npy", np.zeros(16))
  with pytest.raises(HwnasError, match=r"flat.npy: the window has shape "
                     r"\(16,\), expected \[T, C\]"):
    data.load(f"folder:{tmp_path}")


def test_image_folders_still_go_to_the_image_loader(tmp_path):
  (tmp_path / "train" / "cat").mkdir(parents=True)
  (tmp_path / "train" / "cat" / "a.png").write_bytes(b"")
  assert not series_files.is_series_folder(tmp_path)
  _windows(tmp_path / "s", "train")
  assert series_files.is_series_folder(tmp_path / "s")


def test_installed_watch_data():
  # The real data (seglearn is a dependency): 140 recordings of 10 subjects
  # cut into 3605 windows; the split sizes docs/data.md states.
  ds = data.load("watch")
  assert ds.info.split_sizes == {"train": 2055, "val": 777, "test": 773}
  assert ds.info.split_subjects == watch.SUBJECTS
  for s in data.SPLITS:
    assert np.bincount(ds[s].labels, minlength=7).min() > 0
    assert np.isfinite(ds[s].windows).all()
  assert min(ds.info.std) > 0.1  # every channel varies in training
