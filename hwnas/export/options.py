"""What an export is asked to do and where it writes: `ExportOptions`,
the file names of an export directory, the checked output directory
(`OutDir`) and the staging directory that makes an export atomic
(everything is built beside `out` and renamed into place only when the
whole export succeeded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import tempfile
from typing import Sequence

from hwnas import errors
from hwnas.export.checks import INT8_MIN_AGREEMENT

FORMATS = ("flax", "saved_model", "tflite", "tflite-int8")
FLOAT_TFLITE = "model_float.tflite"
INT8_TFLITE = "model_int8.tflite"
SAVED_MODEL_DIR = "saved_model"
EDGETPU_DIR = "edgetpu"


@dataclasses.dataclass(frozen=True)
class ExportOptions:
  """Knobs of an export (CLI flags of `hwnas export`).

  Attributes:
    formats: subset of `FORMATS` to write.
    calibration_steps: representative samples (batch 1) from the training
      split for int8 calibration.
    dataset: dataset name for calibration, BN recalibration and accuracy
      (`hwnas.data.load`); None: random calibration data, no accuracy.
    eval_split: held-out split for accuracy ('test' is never used by search).
    eval_samples: at most this many held-out samples for accuracy.
    bn_batches: batches for BatchNorm recalibration (0: keep statistics).
    batch_size: batch size for recalibration and Flax evaluation.
    latency_repeats: timed LiteRT invokes (median of these; docs/stack_notes.md, section 6).
    latency_warmup: untimed invokes first.
    seed: data order and random initialisation.
    overwrite: replace an existing `out` (atomically, after success).
    compile_edgetpu: run `edgetpu_compiler` when it is on PATH.
    int8_min_agreement: the int8 gate: the full-int8 TFLite model must give
      the float model's top-1 class on at least this fraction of the
      held-out inputs (`hwnas.export.checks.int8_gate`).
    allow_int8_drop: accept an int8 model below the gate (recorded; the
      CLI then exits 0).
  """

  formats: tuple[str, ...] = FORMATS
  calibration_steps: int = 100
  dataset: str | None = None
  eval_split: str = "test"
  eval_samples: int = 500
  bn_batches: int = 20
  batch_size: int = 32
  latency_repeats: int = 200
  latency_warmup: int = 20
  seed: int = 0
  overwrite: bool = False
  compile_edgetpu: bool = True
  int8_min_agreement: float = INT8_MIN_AGREEMENT
  allow_int8_drop: bool = False

  def __post_init__(self):
    unknown = sorted(set(self.formats) - set(FORMATS))
    if unknown or not self.formats:
      raise errors.HwnasError(
          f"--formats: unknown or empty {unknown or list(self.formats)}; "
          f"allowed: {','.join(FORMATS)}")
    for name in ("calibration_steps", "eval_samples", "latency_repeats",
                 "batch_size"):
      if getattr(self, name) < 1:
        raise errors.HwnasError(f"--{name.replace('_', '-')} must be >= 1")
    if self.bn_batches < 0 or self.latency_warmup < 0:
      raise errors.HwnasError("--bn-batches and warm-up must be >= 0")
    if not 0.0 <= self.int8_min_agreement <= 1.0:
      raise errors.HwnasError("--int8-min-agreement must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class OutDir:
  """An export directory that `check_out_dir` accepted.

  Attributes:
    path: where the export goes.
    overwrite: `path` may exist and is replaced (only after success).
  """

  path: pathlib.Path
  overwrite: bool


def check_out_dir(out: str | os.PathLike[str], *, overwrite: bool) -> OutDir:
  """Validates the output directory before any work is done.

  Every export entry point calls this once and hands the `OutDir` down;
  nothing below re-checks it (`staging` only guards against a directory
  that appears while the export runs).
  """
  p = pathlib.Path(out)
  if p.exists() and not overwrite:
    raise errors.HwnasError(f"{p}: already exists; fix: choose a new --out "
                            "or pass --overwrite")
  if p.exists() and not p.is_dir():
    raise errors.HwnasError(f"{p}: exists and is not a directory")
  return OutDir(p, overwrite)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
  """'flax,tflite' -> ('flax', 'tflite'), validated."""
  items = text.split(",") if isinstance(text, str) else list(text)
  formats = tuple(dict.fromkeys(f.strip() for f in items if f.strip()))
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown or not formats:
    raise errors.HwnasError(f"--formats: unknown {unknown or '(empty)'}; "
                            f"allowed: {','.join(FORMATS)}")
  return formats


@contextlib.contextmanager
def staging(out: OutDir):
  """Yields a temp dir beside `out.path`; renames it there on success only."""
  path = out.path
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-",
                                      dir=path.parent))
  try:
    yield tmp
    if path.exists():
      if not out.overwrite:
        raise errors.HwnasError(f"{path}: appeared during export; not "
                                "replaced")
      trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old-",
                                            dir=path.parent))
      os.replace(path, trash / path.name)
      os.replace(tmp, path)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.replace(tmp, path)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
