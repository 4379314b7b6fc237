"""A feature baseline on `watch`: is the data learnable, and what does a
random-window split inflate?

Run: python benchmarks/bench_watch_baseline.py   (about 1 min on 2 cores)
Prints a markdown section and writes it to benchmarks/results/watch.md.

Features per window (after the training-statistics normalisation that
`data.batches` applies): per channel mean, standard deviation, minimum,
maximum and mean absolute first difference (6 channels x 5 = 30). Models:
scikit-learn logistic regression (on standardised features) and a random
forest (200 trees, seed 0). Fitted on the training subjects; accuracy on the
validation and test subjects. For contrast, the same forest on a random
split of the same windows (stratified, 60/20/20, seed 0), which puts
overlapping windows of one recording on both sides.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import time

import numpy as np

from hwnas import data
from hwnas.data import series

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "watch.md"


def _cpu() -> str:
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return "an unknown CPU"


def features(split: data.SeriesSplit, info: data.DatasetInfo) -> np.ndarray:
  x = (split.windows - np.asarray(info.mean)) / np.asarray(info.std)
  diff = np.abs(np.diff(x, axis=1)).mean(1)
  return np.concatenate([x.mean(1), x.std(1), x.min(1), x.max(1), diff], 1)


def _models():
  # pylint: disable-next=g-import-not-at-top
  from sklearn import ensemble, linear_model, pipeline, preprocessing
  return {
      "logistic regression": pipeline.make_pipeline(
          preprocessing.StandardScaler(),
          linear_model.LogisticRegression(max_iter=2000)),
      "random forest (200 trees)": ensemble.RandomForestClassifier(
          n_estimators=200, random_state=0, n_jobs=1),
  }


def _random_window_split(ds: data.Dataset) -> float:
  """Test accuracy of the forest when windows, not subjects, are split."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  splits = [ds[s] for s in data.SPLITS]
  allw = data.SeriesSplit(np.concatenate([s.windows for s in splits]),
                          np.concatenate([s.labels for s in splits]),
                          np.concatenate([s.subjects for s in splits]))
  idx = np.arange(len(allw))
  train, test = model_selection.train_test_split(
      idx, test_size=0.2, stratify=allw.labels, random_state=0)
  train, _ = model_selection.train_test_split(
      train, test_size=0.25, stratify=allw.labels[train], random_state=0)
  tr, te = series.take(allw, np.isin(idx, train)), series.take(
      allw, np.isin(idx, test))
  info = series.make_dataset("watch-random", {"train": tr, "val": te,
                                              "test": te},
                             class_names=ds.info.class_names).info
  model = _models()["random forest (200 trees)"]
  model.fit(features(tr, info), tr.labels)
  return float((model.predict(features(te, info)) == te.labels).mean())


def main():
  t0 = time.perf_counter()
  ds = data.load("watch")
  info = ds.info
  feats = {s: features(ds[s], info) for s in data.SPLITS}
  n_rec = 14 * len(info.split_subjects["test"])
  lines = [
      "## Time-series data: `watch` (seglearn smartwatch IMU), feature "
      "baseline", "",
      "Command: `python benchmarks/bench_watch_baseline.py` "
      f"(run {datetime.date.today()} on {_cpu()}, 2 cores shared with other "
      f"jobs, load average {os.getloadavg()[0]:.0f}; accuracies do not "
      "depend on the load).", "",
      f"Windows of {info.image_shape[0]} samples x {info.image_shape[1]} "
      "channels (2.56 s at 50 Hz, 50% overlap), split by subject. A small "
      f"data set: the test split is {n_rec} recordings (14 per subject), so "
      f"one recording is about {1 / n_rec:.1%} of its windows.", "",
      "| split | subjects | windows |", "|---|---|---:|"]
  for s in data.SPLITS:
    subj = ", ".join(map(str, info.split_subjects[s]))
    lines.append(f"| {s} | {subj} | {info.split_sizes[s]} |")
  lines += ["", "Per-window features: mean, std, min, max and mean |first "
            "difference| per channel (30).", "",
            "| model | val accuracy | test accuracy |", "|---|---:|---:|"]
  for name, model in _models().items():
    model.fit(feats["train"], ds["train"].labels)
    acc = {s: float((model.predict(feats[s]) == ds[s].labels).mean())
           for s in ("val", "test")}
    lines.append(f"| {name} | {acc['val']:.1%} | {acc['test']:.1%} |")
  leak = _random_window_split(ds)
  lines += ["", "The same forest on a random 60/20/20 split of the same "
            f"windows (subjects and recordings on both sides): test accuracy "
            f"{leak:.1%}. That number is what a random-window split "
            "reports; the subject split above is what a new user gets.", "",
            f"Wall time {time.perf_counter() - t0:.0f} s."]
  text = "\n".join(lines) + "\n"
  print(text)
  OUT.write_text(text)


if __name__ == "__main__":
  main()
