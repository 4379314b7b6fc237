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


# The int8 gate: the full-int8 model must agree with the float model on the
# top-1 class of at least this fraction of held-out inputs. A trained
# network quantised well agrees on >= 99% (digits: 99-100% in
# benchmarks/results/int8.md); 98% leaves room for inputs near a decision
# boundary while failing a model whose quantisation changes 1 in 50
# answers.
INT8_MIN_AGREEMENT = 0.98


@dataclasses.dataclass(frozen=True)
class Int8Gate:
  """The full-int8 TFLite model against the float (Flax) model.

  Attributes:
    top1_agreement: fraction of inputs with the same top-1 class.
    max_error_steps, mean_error_steps: |int8 - float| output error (the
      int8 output dequantised) in units of the output quantisation step
      (the output scale); rounding alone gives <= 0.5.
    input_scale, input_zero_point, output_scale, output_zero_point: the
      int8 model's input and output quantisation (real = scale * (q - zp)).
    min_agreement: the threshold.
    enforced: False for random weights (agreement of untrained logits is
      not a property of the network; recorded, never fails the export).
    allowed: the caller accepted a failure (`--allow-int8-drop`).
    num_samples: inputs compared.
  """

  top1_agreement: float
  max_error_steps: float
  mean_error_steps: float
  input_scale: float
  input_zero_point: int
  output_scale: float
  output_zero_point: int
  min_agreement: float
  enforced: bool
  allowed: bool
  num_samples: int

  @property
  def passed(self) -> bool:
    return self.top1_agreement >= self.min_agreement

  @property
  def ok(self) -> bool:
    """Whether the export may exit 0."""
    return self.passed or not self.enforced or self.allowed

  @property
  def status(self) -> str:
    if self.passed:
      return "pass"
    if not self.enforced:
      return "below threshold, not enforced (random weights)"
    return "FAIL, accepted (--allow-int8-drop)" if self.allowed else "FAIL"

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.update(passed=self.passed, ok=self.ok, status=self.status)
    return d


def int8_gate(reference: np.ndarray, int8_output: np.ndarray, *,
              input_quantization: tuple[float, int],
              output_quantization: tuple[float, int],
              min_agreement: float = INT8_MIN_AGREEMENT,
              enforced: bool = True, allowed: bool = False) -> Int8Gate:
  """Grades an int8 model's (dequantised) outputs against float outputs.

  Args:
    reference: [n, classes] float logits (Flax).
    int8_output: [n, classes] dequantised int8 TFLite outputs.
    input_quantization, output_quantization: (scale, zero point) of the
      int8 model's input and output tensors.
    min_agreement, enforced, allowed: see `Int8Gate`.
  """
  ref = np.asarray(reference, np.float64)
  oth = np.asarray(int8_output, np.float64)
  step = float(output_quantization[0]) or 1.0
  err = np.abs(ref - oth) / step
  return Int8Gate(
      top1_agreement=float(np.mean(np.argmax(ref, -1) == np.argmax(oth, -1))),
      max_error_steps=float(err.max()) if err.size else 0.0,
      mean_error_steps=float(err.mean()) if err.size else 0.0,
      input_scale=float(input_quantization[0]),
      input_zero_point=int(input_quantization[1]),
      output_scale=float(output_quantization[0]),
      output_zero_point=int(output_quantization[1]),
      min_agreement=float(min_agreement), enforced=bool(enforced),
      allowed=bool(allowed), num_samples=int(ref.shape[0]))
