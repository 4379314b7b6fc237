"""The numbers an export checks and reports: data samples, BatchNorm
recalibration of a standalone network, Flax/TFLite predictions, accuracy
and output agreement.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hwnas import errors
from hwnas.models.bn import recalibrate_bn  # the one BN recalibration


def take_samples(ds, split: str, n: int, *, resolution: int, seed: int,
                 shuffle: bool, batch_size: int = 64
                 ) -> tuple[np.ndarray, np.ndarray]:
  """The first `n` (image, label) pairs of a split, normalised and resized.

  Returns:
    `(images [m, R, R, C] float32, labels [m] int32)` with `m <= n` (the
    whole split when it is smaller).
  """
  from hwnas import data  # pylint: disable=g-import-not-at-top
  images, labels, have = [], [], 0
  for batch in data.batches(ds, split, batch_size=batch_size,
                            resolution=resolution, seed=seed, shuffle=shuffle,
                            repeat=False, drop_remainder=False):
    keep = batch["mask"] > 0
    images.append(batch["image"][keep])
    labels.append(batch["label"][keep])
    have += int(keep.sum())
    if have >= n:
      break
  if not have:
    raise errors.HwnasError(f"{ds.info.name}: split {split!r} gave no samples")
  return (np.concatenate(images)[:n].astype(np.float32),
          np.concatenate(labels)[:n].astype(np.int32))


def predict(model, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
  """Eval-mode logits of an NNX model, batched with one compiled shape."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, x):
    return nnx.merge(graphdef, state)(x, train=False)

  n = images.shape[0]
  b = min(batch_size, n)
  outs = []
  for i in range(0, n, b):
    x = images[i:i + b]
    pad = b - x.shape[0]
    if pad:
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    outs.append(np.asarray(forward(state, x))[:b - pad])
  return np.concatenate(outs)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy."""
  return float(np.mean(np.argmax(logits, axis=-1) == labels))


@dataclasses.dataclass(frozen=True)
class Agreement:
  """How closely two models' outputs agree on the same inputs."""

  max_abs_diff: float
  max_abs_output: float
  top1_agreement: float
  tolerance: float
  num_samples: int

  @property
  def passed(self) -> bool:
    return self.max_abs_diff <= self.tolerance

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["passed"] = self.passed
    return d


def agreement(reference: np.ndarray, other: np.ndarray, *,
              rtol: float = 1e-3, atol: float = 1e-4) -> Agreement:
  """Compares outputs; tolerance is `atol + rtol * max|reference|`."""
  ref = np.asarray(reference, np.float64)
  oth = np.asarray(other, np.float64)
  scale = float(np.abs(ref).max()) if ref.size else 0.0
  return Agreement(
      max_abs_diff=float(np.abs(ref - oth).max()) if ref.size else 0.0,
      max_abs_output=scale,
      top1_agreement=float(np.mean(np.argmax(ref, -1) == np.argmax(oth, -1))),
      tolerance=atol + rtol * scale, num_samples=int(ref.shape[0]))
