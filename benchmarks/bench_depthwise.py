"""One depthwise layer, forward and backward pieces, by implementation.

  python benchmarks/bench_depthwise.py [--batch 64] [--repeats 5]

For shapes of the mobilenetv3 space (map size, channels, kernel, stride),
times jitted: the forward pass of the shift-add (`hwnas.models.ops`,
'shift') and of XLA's grouped convolution ('lax'); the gradient of both
(input and kernel); and the shift-add's two backward pieces alone, the
input gradient and the kernel gradient (`ops._shift_grads`), plus two
other ways of computing the kernel gradient: one reduction per tap, and
the variadic reduction in two stages (rows, then columns). Prints a
markdown table of medians (ms) with the CPU model and load; only ratios
within one run compare.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp

from hwnas.latency.backends import cpu_model
from hwnas.models import ops
from profile_small_subnet import _median_ms  # pylint: disable=g-bad-import-order

SHAPES = ((64, 72, 3, 1), (64, 72, 7, 1), (32, 120, 5, 1), (32, 240, 7, 2),
          (16, 480, 7, 1), (8, 960, 5, 1))


def _kernel_grad_per_tap(x, g, k, stride):
  return jnp.stack([jnp.sum(p * g, axis=(0, 1, 2)) for _, p in
                    ops._shift_patches(x, k, k, stride)])  # pylint: disable=protected-access


def _kernel_grad_two_stage(x, g, k, stride):
  b, ho, wo, c = g.shape
  patches = [p for _, p in ops._shift_patches(x, k, k, stride)]  # pylint: disable=protected-access
  zero = jnp.zeros((), g.dtype)
  sums = jax.lax.reduce(
      tuple((p * g).reshape(b * ho, wo * c) for p in patches),
      (zero,) * len(patches), lambda u, v: tuple(a + b_ for a, b_ in zip(u, v)),
      (0,))
  return jnp.stack([s.reshape(wo, c).sum(0) for s in sums])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  a = p.parse_args()
  rows = []
  t0 = time.time()
  for h, c, k, s in SHAPES:
    x = jax.random.normal(jax.random.key(0), (a.batch, h, h, c))
    w = jax.random.normal(jax.random.key(1), (k, k, 1, c))
    g = jax.random.normal(jax.random.key(2),
                          (a.batch, -(-h // s), -(-h // s), c))

    def fwd(impl):
      return jax.jit(lambda x, w: ops.depthwise_conv(x, w, s, impl=impl))

    def grad(impl):
      return jax.jit(jax.grad(lambda x, w: jnp.sum(
          ops.depthwise_conv(x, w, s, impl=impl) ** 2), (0, 1)))

    ms = lambda fn, *args: _median_ms(fn, args, a.repeats)  # pylint: disable=unnecessary-lambda-assignment
    shift_grads = ops._shift_grads  # pylint: disable=protected-access
    rows.append((f"{h}x{h}x{c}, {k}x{k}, stride {s}", [
        ms(fwd("shift"), x, w), ms(fwd("lax"), x, w),
        ms(grad("shift"), x, w), ms(grad("lax"), x, w),
        ms(jax.jit(lambda x, w, g: shift_grads(x, w, g, s)[0]), x, w, g),
        ms(jax.jit(lambda x, w, g: shift_grads(x, w, g, s)[1]), x, w, g),
        ms(jax.jit(lambda x, g: _kernel_grad_per_tap(x, g, k, s)), x, g),
        ms(jax.jit(lambda x, g: _kernel_grad_two_stage(x, g, k, s)), x, g)]))
    print(f"  {rows[-1][0]} done", flush=True)
  print(f"\n### Depthwise layer by implementation ({cpu_model()}, "
        f"{os.cpu_count()} cores)\n")
  print(f"`python benchmarks/bench_depthwise.py --batch {a.batch} --repeats "
        f"{a.repeats}`; jax {jax.__version__}; medians, ms; load average "
        f"{os.getloadavg()[0]:.1f} at the end; wall {time.time() - t0:.0f} "
        "s.\n")
  print("| input, kernel | forward shift | forward lax | gradient shift | "
        "gradient lax | shift: input grad | shift: kernel grad | kernel "
        "grad, a reduction per tap | kernel grad, two-stage reduction |")
  print("|---|" + "---:|" * 8)
  for name, v in rows:
    print(f"| {name} | " + " | ".join(f"{t:.1f}" for t in v) + " |")


if __name__ == "__main__":
  main()
