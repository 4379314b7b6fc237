"""Supernet speed: sandwich and single-subnet steps against exact-shape
standalone steps of the same subnets, compiles, eval, memory.

  python benchmarks/bench_supernet.py [--space mobilenetv3] [--resolution 64]
      [--batch 64] [--repeats 5] [--subnets-only] [--compare-autodiff]
      [--compare-kernel-transform] [--compare-masked-taps]

Prints a markdown section (benchmarks/results/supernet.md holds runs). The
space is used at one resolution with 10 classes. A sandwich is drawn
(largest, smallest, 2 random subnets). Timed, in interleaved rounds (one
call of each per round, so the machine's drift hits all alike and ratios
are same-run): the sandwich step (one update), each of its four subnets
trained alone through the supernet (the same compiled one-architecture
step for all four), and each trained standalone with exact shapes
(`hwnas.models.Network`, one compile per subnet). Reported ratios: a
subnet's supernet step / its standalone step, and the sandwich step / the
sum of its four subnets' standalone steps. Also: XLA compilations counted
(`jax.monitoring`), eval forward of the largest subnet, evaluation
throughput (BN recalibration + val pass per architecture) and peak resident
memory. Each `--compare-*` flag adds a variant of the sandwich step to the
interleaved rounds: `--compare-autodiff` differentiates the
shift-add depthwise by autodiff instead of its hand-written VJPs,
`--compare-masked-taps` runs every tap of a slot's largest kernel whatever
the kernel choice, `--compare-kernel-transform` trains a supernet with
Once-for-All's learned kernel transforms. `--subnets-only` times only the
four subnets (supernet and standalone steps, no sandwich, no variants) and
then a float against a simulated-int8 evaluation of random subnets
(`hwnas.supernet.quant`), interleaved.
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


class _Compiles:
  """Counts XLA backend compilations (and their seconds) from now on."""

  def __init__(self):
    self.count, self.secs = 0, 0.0
    jax.monitoring.register_event_duration_secs_listener(self._on)

  def _on(self, event, secs, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1
      self.secs += secs


def _standalone_step(space, arch, x, labels):
  """Jitted SGD step of `arch`'s exact-shape standalone Network, bound to
  its initial state."""
  net = Network(arch_lib.decode(space, arch), rngs=nnx.Rngs(0))
  ngd, nparams, nrest = nnx.split(net, nnx.Param, ...)
  ntx = optax.sgd(0.1, momentum=0.9, nesterov=True)
  nopt = ntx.init(nparams)

  @jax.jit
  def nstep(params, rest, opt):
    def loss_fn(p):
      m = nnx.merge(ngd, p, rest, copy=True)
      logits = m(x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, labels).mean(), nnx.state(m, nnx.BatchStat)
    (loss, new_rest), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt = ntx.update(g, opt, params)
    return optax.apply_updates(params, upd), new_rest, opt, loss

  return lambda: nstep(nparams, nrest, nopt)


def _int8_eval(graphdef, state, space, rng, calib, a, compiles):
  """Rows: one float and one simulated-int8 evaluation of the same random
  subnets (BN recalibration on `calib`, + range calibration for int8, + a
  pass over 2 batches), compiled first, then timed interleaved."""
  from hwnas.supernet import quant  # pylint: disable=g-import-not-at-top
  images = calib
  lab = np.stack([np.arange(a.batch) % 10] * 2).astype(np.int32)
  mask = np.ones_like(lab, np.float32)
  arrs = [model_lib.arch_arrays(space, arch_lib.sample(rng, space))
          for _ in range(a.repeats)]
  rows, calls = [], []
  for kind in ("float", "int8"):
    fn = quant._accuracy_fn(graphdef, (kind,))  # pylint: disable=protected-access
    n0 = compiles.count
    t = time.perf_counter()
    jax.block_until_ready(fn(state["params"], state["stats"], arrs[0], calib,
                             images, lab, mask))
    first = time.perf_counter() - t
    calls.append((kind, fn, first, compiles.count - n0))
  totals = {kind: 0.0 for kind, *_ in calls}
  for arr in arrs:
    for kind, fn, _, _ in calls:
      t = time.perf_counter()
      jax.block_until_ready(fn(state["params"], state["stats"], arr, calib,
                               images, lab, mask))
      totals[kind] += time.perf_counter() - t
  for kind, _, first, n in calls:
    rows.append((f"{kind} evaluation of one random arch (quant."
                 f"_accuracy_fn; BN recal 2x{a.batch} + val 2x{a.batch})",
                 totals[kind] / len(arrs) * 1e3,
                 f"compile+first {first:.1f} s, {n} compile(s)"))
  rows.append(("int8 / float evaluation (ratio)",
               totals["int8"] / totals["float"], "same archs, interleaved"))
  return rows


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--space", default="mobilenetv3")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--compare-autodiff", action="store_true")
  p.add_argument("--compare-kernel-transform", action="store_true")
  p.add_argument("--compare-masked-taps", action="store_true")
  p.add_argument("--subnets-only", action="store_true")
  p.add_argument("--int8-eval", action="store_true")
  a = p.parse_args()
  compiles = _Compiles()
  t_start = time.time()
  space = dataclasses.replace(space_lib.load(a.space),
                              resolutions=(a.resolution,), num_classes=10)
  rng = np.random.default_rng(a.seed)
  cfg = get_config()
  cfg.dropout = 0.0
  sn = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  tx = train_lib.make_optimizer(cfg, 1000)
  graphdef, state = train_lib.create_state(sn, tx)
  x = jax.random.normal(jax.random.key(0), (a.batch, a.resolution,
                                            a.resolution, 3))
  labels = jnp.arange(a.batch) % 10
  batch = {"image": x, "label": labels}
  step = jax.jit(functools.partial(
      train_lib.train_step, graphdef=graphdef, tx=tx,
      resolution=a.resolution))    # no donation: the state is reused
  sandwich = train_lib.sandwich(rng, space, n_random=2,
                                resolution=a.resolution)
  names = ["largest", "smallest", "random 1", "random 2"]
  rows, group = [], []

  def step_fn(archs):
    arrays = model_lib.stack_arch_arrays(space, archs)
    return lambda: step(state, batch, jax.random.key(0), arrays)

  def timed_first(call):
    n0 = compiles.count
    t = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - t, compiles.count - n0

  if not a.subnets_only:
    call = step_fn(sandwich)
    first, n = timed_first(call)
    group.append(("sandwich step (largest + smallest + 2 random, one "
                  "update)", call, f"compile+first {first:.1f} s, "
                  f"{n} compile(s)"))
  for i, (name, arch) in enumerate(zip(names, sandwich)):
    call = step_fn([arch])
    first, n = timed_first(call)
    group.append((f"{name} subnet step (supernet)", call,
                  f"{'compile+' if not i else ''}first {first:.1f} s, "
                  f"{n} compile(s)"))
  for name, arch in zip(names, sandwich):
    call = _standalone_step(space, arch, x, labels)
    first, n = timed_first(call)
    group.append((f"{name} subnet step (standalone, exact shapes)", call,
                  f"compile+first {first:.1f} s"))
  from hwnas.models import ops  # pylint: disable=g-import-not-at-top
  sandwich_arrays = model_lib.stack_arch_arrays(space, sandwich)

  def variant(name, gd=graphdef, st=state, module=ops, archs=None,
              **swaps):
    """The sandwich step (or the one-arch step of `archs`) of supernet
    (gd, st) with `module` attributes swapped (benchmark only; the swap is
    traced into the executable)."""
    saved = {k: getattr(module, k) for k in swaps}
    for k, v in swaps.items():
      setattr(module, k, v)
    arrays = (sandwich_arrays if archs is None else
              model_lib.stack_arch_arrays(space, archs))
    try:
      fn = jax.jit(functools.partial(train_lib.train_step, graphdef=gd,
                                     tx=tx, resolution=a.resolution))
      call = lambda: fn(st, batch, jax.random.key(0), arrays)
      first, _ = timed_first(call)
    finally:
      for k, v in saved.items():
        setattr(module, k, v)
    group.append((name, call, f"compile+first {first:.1f} s"))
    return fn

  if a.compare_kernel_transform:
    kt = model_lib.Supernet(space, rngs=nnx.Rngs(0), kernel_transform=True)
    variant("sandwich step, learned kernel transforms",
            *train_lib.create_state(kt, tx))
  # pylint: disable=protected-access
  if a.compare_masked_taps:
    variant("sandwich step, depthwise runs every tap of the largest kernel "
            "(no kernel switch)",
            _elastic_shift=lambda x, w, index, sizes, stride:
            ops._depthwise_shift(x, w, stride))
  if a.compare_autodiff:
    variant("sandwich step, depthwise backward by autodiff (no custom VJP)",
            _depthwise_shift=ops._shift_forward,
            _elastic_shift=ops._elastic_forward)
  # pylint: enable=protected-access
  train_compiles = compiles.count
  medians = _interleaved([c for _, c, _ in group], a.repeats)
  assert compiles.count == train_compiles, "a timed step recompiled"
  ms = dict(zip([g[0] for g in group], medians))
  for (name, _, note), m in zip(group, medians):
    rows.append((name, m, note))

  calib = np.asarray(jnp.stack([x, x]))
  if not a.subnets_only:
    fwd = jax.jit(lambda st, arr: train_lib.merge(graphdef, st)(x, arr))
    big_arr = jax.tree.map(jnp.asarray,
                           model_lib.arch_arrays(space, sandwich[0]))
    first, m = _time(lambda: fwd(state, big_arr), a.repeats)
    rows.append(("largest subnet eval forward", m,
                 f"compile+first {first:.1f} s"))

    # Evaluation throughput: recalibrate BN (2 batches) + 2 val batches.
    from hwnas.supernet.evaluate import _accuracy_fn  # pylint: disable=g-import-not-at-top
    acc = _accuracy_fn(graphdef)
    images = np.asarray(jnp.stack([x, x]))
    lab = np.stack([np.arange(a.batch) % 10] * 2).astype(np.int32)
    mask = np.ones_like(lab, np.float32)
    archs = [arch_lib.sample(rng, space) for _ in range(a.repeats + 1)]
    arrs = [model_lib.arch_arrays(space, r) for r in archs]
    n0 = compiles.count
    t = time.perf_counter()
    jax.block_until_ready(acc(state["params"], state["stats"], arrs[0], calib,
                              images, lab, mask))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for arr in arrs[1:]:
      jax.block_until_ready(acc(state["params"], state["stats"], arr, calib,
                                images, lab, mask))
    per = (time.perf_counter() - t) / (len(arrs) - 1)
    rows.append((f"evaluate one arch (BN recal 2x{a.batch} + val 2x{a.batch} "
                 "images)", per * 1e3,
                 f"{60 / per:.0f} archs/min; compile+first {first:.1f} s; "
                 f"{compiles.count - n0} compile(s) for {len(arrs)} archs"))
  if a.int8_eval:
    rows += _int8_eval(graphdef, state, space, rng, calib, a, compiles)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2

  load = os.getloadavg()
  print(f"### Supernet ({a.space} space at {a.resolution}x{a.resolution}, "
        f"batch {a.batch}, 10 classes)\n")
  print(f"{cpu_model()}; jax {jax.__version__}, backend "
        f"{jax.default_backend()}, "
        f"{len(jax.devices())} device(s), depthwise "
        f"{'shift' if jax.default_backend() == 'cpu' else 'lax'}; load "
        f"average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} cores. Medians of {a.repeats} interleaved "
        f"rounds; wall {time.time() - t_start:.0f} s.\n")
  print("| what | median ms | notes |\n|---|---:|---|")
  for name, m, note in rows:
    print(f"| {name} | {m:.2f} | {note} |" if m < 10 else
          f"| {name} | {m:.0f} | {note} |")
  alone = [ms[f"{n} subnet step (standalone, exact shapes)"] for n in names]
  under = [ms[f"{n} subnet step (supernet)"] for n in names]
  print("\n| ratio | value |\n|---|---:|")
  for n, u, s in zip(names, under, alone):
    print(f"| {n}: standalone step / supernet step | {s / u:.2f} |")
  if not a.subnets_only:
    sw = ms[group[0][0]]
    print(f"| sandwich / sum of its 4 standalone steps | "
          f"{sw / sum(alone):.2f} |")
    for name, _, _ in group[9:]:
      print(f"| {name} / sandwich step | {ms[name] / sw:.2f} |")
  print(f"\nXLA compilations: {train_compiles} before the timed rounds "
        f"({'' if a.subnets_only else 'sandwich step, '}one-arch step, 4 "
        "standalone steps"
        f"{', variants' if len(group) > 9 else ''}; "
        f"{compiles.secs:.0f} s compiling in all), none during them. "
        f"Peak resident memory: {peak:.2f} GiB.")


if __name__ == "__main__":
  main()
