"""Supernet speed: train steps, eval forward, standalone, compile, memory.

  python benchmarks/bench_supernet.py [--space mobilenetv3] [--resolution 32]
      [--batch 64] [--repeats 5] [--compare-autodiff]
      [--compare-kernel-transform] [--compare-masked-taps]

Prints a markdown section (benchmarks/results/supernet.md holds a run).
The space is used at the given resolution with 10 classes. Rows: the
sandwich step (largest + smallest + 2 random subnets, one update), single-
arch steps (largest, random), the random subnet trained standalone (exact
shapes, `hwnas.models.Network`), eval forward of the largest subnet,
evaluation throughput (BN recalibration + val pass per architecture) and
peak resident memory. Medians over `--repeats` calls after one warm-up.
After the memory reading, each `--compare-*` flag adds a variant of the
sandwich step timed in the same process, for same-run ratios:
`--compare-autodiff` differentiates the shift-add depthwise by autodiff
instead of its hand-written VJPs (`hwnas.models.layers._shift_grads`);
`--compare-masked-taps` runs every tap of a slot's largest kernel whatever
the kernel choice (no `lax.switch` in `elastic_depthwise_conv`);
`--compare-kernel-transform` trains a supernet with Once-for-All's learned
kernel transforms (`Supernet(kernel_transform=True)`). The sandwich step
and these variants are timed in interleaved rounds (`--repeats` of them),
and so are the largest and the random single-architecture steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import space as space_lib
from hwnas.configs.supernet import get_config
from hwnas.latency.backends import cpu_model
from hwnas.models.standalone import Network
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib


def _time(fn, repeats):
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return first, float(np.median(times)) * 1e3 if times else None


def _interleaved(calls, repeats):
  """Median ms of each call, timed in `repeats` rounds of one call each."""
  times = [[] for _ in calls]
  for _ in range(repeats):
    for t_list, call in zip(times, calls):
      t = time.perf_counter()
      jax.block_until_ready(call())
      t_list.append(time.perf_counter() - t)
  return [float(np.median(t)) * 1e3 for t in times]


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--space", default="mobilenetv3")
  p.add_argument("--resolution", type=int, default=32)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--compare-autodiff", action="store_true")
  p.add_argument("--compare-kernel-transform", action="store_true")
  p.add_argument("--compare-masked-taps", action="store_true")
  a = p.parse_args()
  space = dataclasses.replace(space_lib.load(a.space),
                              resolutions=(a.resolution,), num_classes=10)
  rng = np.random.default_rng(0)
  cfg = get_config()
  cfg.dropout = 0.0
  sn = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  tx = train_lib.make_optimizer(cfg, 1000)
  graphdef, state = train_lib.create_state(sn, tx)
  x = jax.random.normal(jax.random.key(0), (a.batch, a.resolution,
                                            a.resolution, 3))
  batch = {"image": x, "label": jnp.arange(a.batch) % 10}
  step = jax.jit(functools.partial(
      train_lib.train_step, graphdef=graphdef, tx=tx,
      resolution=a.resolution))    # no donation: the state is reused
  big = arch_lib.largest(space)
  rand = arch_lib.sample(rng, space)
  rows = []

  def step_fn(archs):
    arrays = model_lib.stack_arch_arrays(space, archs)
    return lambda: step(state, batch, jax.random.key(0), arrays)

  sandwich = train_lib.sandwich(rng, space, n_random=2,
                                resolution=a.resolution)
  first, ms = _time(step_fn(sandwich), 0)
  rows.append(("sandwich step (largest+smallest+2 random)", None,
               f"compile+first {first:.1f} s"))
  first, _ = _time(step_fn([big]), 0)
  # Same compiled 1-arch step, another architecture: no recompile.
  first_rand, _ = _time(step_fn([rand]), 0)
  big_ms, rand_ms = _interleaved([step_fn([big]), step_fn([rand])],
                                 a.repeats)
  rows.append(("largest subnet step", big_ms, f"compile+first {first:.1f} s"))
  rows.append(("random subnet step (supernet, masked)", rand_ms,
               f"first call {first_rand:.2f} s (no recompile); timed "
               "interleaved with the largest"))

  fwd = jax.jit(lambda st, arr: train_lib.merge(graphdef, st)(x, arr))
  big_arr = jax.tree.map(jnp.asarray, model_lib.arch_arrays(space, big))
  first, ms = _time(lambda: fwd(state, big_arr), a.repeats)
  rows.append(("largest subnet eval forward", ms,
               f"compile+first {first:.1f} s"))

  net = Network(arch_lib.decode(space, rand), rngs=nnx.Rngs(0))
  ngd, nparams, nrest = nnx.split(net, nnx.Param, ...)
  ntx = optax.sgd(0.1, momentum=0.9, nesterov=True)
  nopt = ntx.init(nparams)

  @jax.jit
  def nstep(params, rest, opt):
    def loss_fn(p):
      m = nnx.merge(ngd, p, rest, copy=True)
      logits = m(x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, batch["label"]).mean(), nnx.state(m, nnx.BatchStat)
    (loss, new_rest), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt = ntx.update(g, opt, params)
    return optax.apply_updates(params, upd), new_rest, opt, loss

  first, ms = _time(lambda: nstep(nparams, nrest, nopt), a.repeats)
  rows.append(("same random subnet, standalone step (exact shapes)", ms,
               f"compile+first {first:.1f} s"))

  # Evaluation throughput: recalibrate BN (2 batches) + 2 val batches.
  from hwnas.supernet.evaluate import _accuracy_fn  # pylint: disable=g-import-not-at-top
  acc = _accuracy_fn(graphdef)
  calib = np.asarray(jnp.stack([x, x]))
  images = np.asarray(jnp.stack([x, x]))
  labels = np.stack([np.arange(a.batch) % 10] * 2).astype(np.int32)
  mask = np.ones_like(labels, np.float32)
  archs = [arch_lib.sample(rng, space) for _ in range(a.repeats + 1)]
  arrs = [model_lib.arch_arrays(space, r) for r in archs]
  t = time.perf_counter()
  jax.block_until_ready(acc(state["params"], state["stats"], arrs[0], calib,
                            images, labels, mask))
  first = time.perf_counter() - t
  t = time.perf_counter()
  for arr in arrs[1:]:
    jax.block_until_ready(acc(state["params"], state["stats"], arr, calib,
                              images, labels, mask))
  per = (time.perf_counter() - t) / (len(arrs) - 1)
  rows.append(("evaluate one arch (BN recal 2x64 + val 2x64 images)",
               per * 1e3, f"{60 / per:.0f} archs/min; compile+first "
               f"{first:.1f} s"))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
  from hwnas.models import layers  # pylint: disable=g-import-not-at-top

  # The sandwich step and its variants are timed in interleaved rounds (one
  # call of each per round), so the machine's drift hits all alike.
  sandwich_arrays = model_lib.stack_arch_arrays(space, sandwich)
  group = [(0, lambda: step(state, batch, jax.random.key(0),
                            sandwich_arrays))]

  def variant(name, gd=graphdef, st=state, **swaps):
    """Compiles the sandwich step of supernet (gd, st) with `layers`
    functions swapped (benchmark only; the swap is traced into the
    executable) and adds it to the group."""
    saved = {k: getattr(layers, k) for k in swaps}
    for k, v in swaps.items():
      setattr(layers, k, v)
    try:
      fn = jax.jit(functools.partial(train_lib.train_step, graphdef=gd,
                                     tx=tx, resolution=a.resolution))
      call = lambda: fn(st, batch, jax.random.key(0), sandwich_arrays)
      first, _ = _time(call, 0)
    finally:
      for k, v in saved.items():
        setattr(layers, k, v)
    rows.append((name, None, f"compile+first {first:.1f} s"))
    group.append((len(rows) - 1, call))

  if a.compare_kernel_transform:
    kt = model_lib.Supernet(space, rngs=nnx.Rngs(0), kernel_transform=True)
    variant("sandwich step, learned kernel transforms",
            *train_lib.create_state(kt, tx))
  # pylint: disable=protected-access
  if a.compare_masked_taps:
    # Every kernel choice runs all taps of the slot's largest kernel (the
    # smaller kernel is zero-masked): the supernet before the kernel switch.
    variant("sandwich step, depthwise runs every tap of the largest kernel "
            "(no kernel switch)",
            _elastic_shift=lambda x, w, index, sizes, stride:
            layers._depthwise_shift(x, w, stride))
  if a.compare_autodiff:
    # The custom-VJP functions replaced by their own forward passes, so JAX
    # differentiates the shift-add tap by tap (the pre-VJP behaviour).
    variant("sandwich step, depthwise backward by autodiff (no custom VJP)",
            _depthwise_shift=layers._shift_forward,
            _elastic_shift=layers._elastic_forward)
  # pylint: enable=protected-access
  medians = _interleaved([call for _, call in group], a.repeats)
  base_ms = medians[0]
  for (i, _), ms in zip(group, medians):
    name, _, note = rows[i]
    if i:
      note += f"; {ms / base_ms:.2f}x the sandwich step"
    rows[i] = (name, ms, note)
  load = os.getloadavg()
  print(f"### Supernet ({a.space} space at {a.resolution}x{a.resolution}, "
        f"batch {a.batch}, 10 classes)\n")
  print(f"{cpu_model()}; jax {jax.__version__}, backend "
        f"{jax.default_backend()}, "
        f"{len(jax.devices())} device(s), depthwise "
        f"{'shift' if jax.default_backend() == 'cpu' else 'lax'}; load "
        f"average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} cores. Medians of {a.repeats} calls.\n")
  print("| what | median ms | notes |\n|---|---:|---|")
  for name, ms, note in rows:
    print(f"| {name} | {ms:.0f} | {note} |")
  print(f"\nPeak resident memory: {peak:.2f} GiB.")


if __name__ == "__main__":
  main()
