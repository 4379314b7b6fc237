"""Is the simulated int8 accuracy the accuracy of the real int8 model?

For each architecture of a trained supernet: the simulated int8 accuracy
(`hwnas.supernet.quant`) and the accuracy of the real full-int8 TFLite
model of the same network, run by the LiteRT interpreter, with the same
weights (the supernet's, BatchNorm recalibrated on the same images), the
same calibration images (the converter's representative dataset) and the
same held-out images. `compare` adds the per-architecture difference and
the rank correlation (scipy.stats Kendall tau and Spearman rho).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Sequence

import jax
import numpy as np

from hwnas import arch as arch_lib
from hwnas import tflite


@dataclasses.dataclass(frozen=True)
class Row:
  """One architecture: accuracies in [0, 1] and timings in seconds."""

  arch: str
  accuracy_float: float
  accuracy_int8_simulated: float
  accuracy_int8_tflite: float
  convert_s: float

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def tflite_int8(evaluator, arch: arch_lib.ArchChoice) -> tuple[bytes, Any]:
  """(full-int8 TFLite bytes, standalone network) of `arch`.

  The network is the exact subnet of the evaluator's supernet with
  BatchNorm recalibrated on the evaluator's calibration images (what the
  simulated evaluation uses), built with the `lax` depthwise conv; the same
  images are the converter's representative dataset.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import extract  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import model as model_lib  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import train as train_lib  # pylint: disable=g-import-not-at-top
  d = evaluator.data.at(arch.resolution)
  state = _recalibrate(evaluator.graphdef)(
      {"params": evaluator.params, "stats": evaluator.stats}, d.calib,
      model_lib.arch_arrays(evaluator.space, arch))
  net = extract.subnet(train_lib.merge(evaluator.graphdef, state), arch,
                         depthwise="lax")
  graphdef, st = nnx.split(net)
  fn = lambda x: nnx.merge(graphdef, st)(x, train=False)
  calib = np.asarray(d.calib).reshape((-1,) + d.calib.shape[2:])
  shape = (1,) + calib.shape[1:]
  return tflite.convert(fn, shape, int8=True,
                        representative=[x[None] for x in calib]), net


@functools.lru_cache(maxsize=4)
def _recalibrate(graphdef):
  from hwnas.supernet import train as train_lib  # pylint: disable=g-import-not-at-top
  return jax.jit(functools.partial(train_lib.recalibrate, graphdef=graphdef))


def tflite_accuracy(model_bytes: bytes, data, resolution: int) -> float:
  """Top-1 accuracy of a TFLite model on an `EvalData`'s held-out images."""
  d = data.at(resolution)
  keep = np.asarray(d.mask).reshape(-1) > 0
  images = np.asarray(d.images).reshape((-1,) + d.images.shape[2:])[keep]
  labels = np.asarray(d.labels).reshape(-1)[keep]
  logits = tflite.Runner(model_bytes, num_threads=1).run(images)
  return float(np.mean(np.argmax(logits, -1) == labels))


def measure(evaluator, archs: Sequence[arch_lib.ArchChoice]) -> list[Row]:
  """Float, simulated int8 and TFLite int8 accuracy of each architecture.

  Args:
    evaluator: a `hwnas.supernet.quant.Evaluator` (its data and weights).
    archs: architectures of its space.
  """
  from hwnas.supernet import quant  # pylint: disable=g-import-not-at-top
  both = quant.Evaluator(evaluator.graphdef, {"params": evaluator.params,
                                              "stats": evaluator.stats},
                         evaluator.space, evaluator.data, accuracy="int8",
                         also=("float",))
  rows = []
  for a in archs:
    _, (m,) = both([a])
    t0 = time.perf_counter()
    model_bytes, _ = tflite_int8(evaluator, a)
    convert_s = time.perf_counter() - t0
    rows.append(Row(arch=arch_lib.to_string(a),
                    accuracy_float=m["accuracy_float"],
                    accuracy_int8_simulated=m["accuracy_int8"],
                    accuracy_int8_tflite=tflite_accuracy(
                        model_bytes, evaluator.data, a.resolution),
                    convert_s=convert_s))
  return rows


def compare(rows: Sequence[Row]) -> dict[str, Any]:
  """Summary: mean |simulated - TFLite| (points) and rank correlations."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  sim = np.array([r.accuracy_int8_simulated for r in rows])
  real = np.array([r.accuracy_int8_tflite for r in rows])
  flt = np.array([r.accuracy_float for r in rows])

  def corr(a, b):
    if len(a) < 2:
      return {"kendall_tau": None, "spearman_rho": None}
    return {"kendall_tau": float(stats.kendalltau(a, b).statistic),
            "spearman_rho": float(stats.spearmanr(a, b).statistic)}

  diff = 100 * (sim - real)
  return {"num_archs": len(rows),
          "mean_abs_diff_points": float(np.mean(np.abs(diff))),
          "max_abs_diff_points": float(np.max(np.abs(diff))),
          "mean_diff_points": float(np.mean(diff)),
          "simulated_vs_tflite": corr(sim, real),
          "float_vs_tflite_int8": corr(flt, real),
          "float_vs_simulated_int8": corr(flt, sim),
          "mean_int8_drop_points": float(np.mean(100 * (flt - real)))}
