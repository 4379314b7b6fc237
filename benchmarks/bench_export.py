"""Export benchmark: TFLite conversion time, LiteRT latency float vs int8,
float-vs-Flax agreement and the Edge TPU operator verdict.

Run:  python benchmarks/bench_export.py [--repeats 200] [--resolution 64]

Networks: the `tiny` space's largest architecture (relu only and with
hard-swish in stage 2) and reference networks at a reduced resolution,
random weights (seed 0), int8 calibrated on 32 standard-normal inputs.
Latency is LiteRT (XNNPACK, 1 thread, batch 1) on this machine: the machine
is shared and noisy, so read the float/int8 ratio measured in the same run,
not the absolute numbers. Prints a markdown section.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import numpy as np


def _nets(resolution: int):
  from hwnas import arch, references, space
  s = space.load("tiny")
  a = arch.largest(s)
  relu = dataclasses.replace(a, blocks=tuple(
      tuple(dataclasses.replace(b, activation="relu", se=False) for b in bs)
      for bs in a.blocks))
  hs = dataclasses.replace(relu, blocks=(relu.blocks[0], tuple(
      dataclasses.replace(b, activation="hswish") for b in relu.blocks[1])))
  yield "tiny largest (relu, no SE)", arch.decode(s, relu)
  yield "tiny largest (hswish stage 2)", arch.decode(s, hs)
  for name in ("mobilenet_edgetpu_1.0", "mobilenet_v3_small_1.0"):
    yield f"{name} @{resolution}", references.load(name,
                                                   resolution=resolution)


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--repeats", type=int, default=200)
  p.add_argument("--resolution", type=int, default=64)
  args = p.parse_args()
  from flax import nnx
  from hwnas import counting, edgetpu, tflite
  from hwnas.export import checks, writer
  from hwnas.models import Network
  import jax
  rows = []
  for label, spec in _nets(args.resolution):
    model = Network(spec, rngs=nnx.Rngs(0), depthwise="lax")
    fn = writer._pure_fn(model)  # pylint: disable=protected-access
    shape = (1, spec.resolution, spec.resolution, spec.in_channels)
    rng = np.random.default_rng(0)
    rep = rng.standard_normal((32,) + shape[1:]).astype(np.float32)
    t0 = time.perf_counter()
    fb = tflite.convert(fn, shape)
    t1 = time.perf_counter()
    ib = tflite.convert(fn, shape, int8=True,
                        representative=[x[None] for x in rep])
    t2 = time.perf_counter()
    x = rep[:8]
    agree = checks.agreement(checks.predict(model, x),
                             tflite.Runner(fb).run(x))
    warm = min(20, args.repeats)
    tf_ = tflite.Runner(fb).time(args.repeats, warm)
    ti = tflite.Runner(ib).time(args.repeats, warm)
    ops = edgetpu.check_ops(tflite.op_list(ib))
    rows.append((label, counting.macs(spec), t1 - t0, t2 - t1, len(fb),
                 len(ib), tf_.median_ms, ti.median_ms, agree.max_abs_diff,
                 ops.summary()))
  print("## Export (TFLite conversion and LiteRT latency)\n")
  print(f"{platform.machine()}, {platform.python_version()}, jax "
        f"{jax.__version__}, {args.repeats} timed runs after warm-up, "
        "random weights; LiteRT XNNPACK 1 thread batch 1.\n")
  print("| network | MACs | convert float s | convert int8 s | float KB | "
        "int8 KB | float ms | int8 ms | int8/float | max abs diff "
        "TFLite-Flax | Edge TPU (static) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for (label, macs, cf, ci, fbytes, ibytes, fms, ims, diff, verdict) in rows:
    print(f"| {label} | {macs:,} | {cf:.1f} | {ci:.1f} | {fbytes / 1024:.0f} "
          f"| {ibytes / 1024:.0f} | {fms:.3f} | {ims:.3f} | {ims / fms:.2f} | "
          f"{diff:.1e} | {verdict} |")


if __name__ == "__main__":
  main()
