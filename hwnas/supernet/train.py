"""Supernet training: optax optimiser, sandwich rule, in-place distillation.

The step functions here are pure and unjitted (functional NNX: the supernet
is split once into a graphdef and a state pytree); `hwnas.supernet.loop`
jits them once per resolution with the state donated.

Each step trains N architectures on the same batch, all at the step's
resolution (one sampled per step, as in Once-for-All): the largest, the
smallest (`hwnas.arch.largest`/`smallest`) and `n_random` random ones (the
sandwich rule). The largest learns from the labels (label-smoothed cross
entropy); the others also distil from the largest's logits (in-place
distillation, `kd_ratio`). The N architectures run in a `lax.scan` whose
body computes one architecture's gradient, so only one architecture's
activations are alive at a time; the gradients are averaged into one update.

Data parallelism (`jax.sharding`): the state is replicated and every batch is
sharded over a 1-D mesh of all devices along its batch axis; XLA inserts the
gradient and BatchNorm all-reduces, so a step on several devices computes
what it computes on one (tests/supernet_test.py checks it with fake CPU
devices). Several processes (TPU pods, GPU clusters, CPU processes): every
process joins with `hwnas.mesh.initialize_distributed` (`jax.distributed`;
`hwnas supernet train --coordinator HOST:PORT --num-processes N
--process-id I`) before any other jax call and runs the same loop:
`jax.devices()` then lists all processes' devices, each reads its own
shard of every batch
(`data.batches(..., process_index=jax.process_index(),
process_count=jax.process_count())`) and `data.shard_batch` assembles the
global batch. Only process 0 writes metrics and config; Orbax checkpoints
are written collectively.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import optim
from hwnas.models import bn as bn_lib
from hwnas.space import SearchSpace
from hwnas.supernet import model as model_lib

State = dict[str, Any]     # {"params", "stats", "opt_state", "step"}
Metrics = dict[str, jax.Array]

# ------------------------------------------------------------ optimiser --
# The optimiser and schedule live in `hwnas.optim` (shared with standalone
# training); these two read the supernet config's `optimizer` section.


def make_schedule(config: ml_collections.ConfigDict, steps: int
                  ) -> optax.Schedule:
  """`hwnas.optim.make_schedule` of `config.optimizer`."""
  return optim.make_schedule(config.optimizer, steps)


def make_optimizer(config: ml_collections.ConfigDict, steps: int
                   ) -> optax.GradientTransformation:
  """`hwnas.optim.make_optimizer` of `config.optimizer` (steps: the length
  of the cosine)."""
  return optim.make_optimizer(config.optimizer, steps)


# ---------------------------------------------------------------- state --


def create_state(supernet: model_lib.Supernet,
                 tx: optax.GradientTransformation) -> tuple[Any, State]:
  """Splits the supernet once: (graphdef, state pytree)."""
  graphdef, params, stats = nnx.split(supernet, nnx.Param, nnx.BatchStat)
  state = {"params": params, "stats": stats, "opt_state": tx.init(params),
           "step": jnp.zeros((), jnp.int32)}
  return graphdef, state


def merge(graphdef, state: State) -> model_lib.Supernet:
  return nnx.merge(graphdef, state["params"], state["stats"], copy=True)


# ------------------------------------------------------------- the step --


def resize(images: jax.Array, resolution: int) -> jax.Array:
  """[B, H, W, C] -> [B, R, R, C] (bilinear; identity when H == R).

  Time-series windows [B, T, C] are cut, never resampled, to their central
  R samples, as `hwnas.data.batches` cuts evaluation windows.
  """
  if images.ndim == 3:
    lo = (images.shape[1] - resolution) // 2
    return images[:, lo:lo + resolution]
  if images.shape[1] == resolution and images.shape[2] == resolution:
    return images
  b, _, _, c = images.shape
  return jax.image.resize(images, (b, resolution, resolution, c), "bilinear")


def _cross_entropy(logits, labels, mask, smoothing: float):
  n = logits.shape[-1]
  onehot = optax.smooth_labels(jax.nn.one_hot(labels, n), smoothing)
  ce = optax.softmax_cross_entropy(logits, onehot)
  return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _distillation(logits, teacher, mask):
  kd = optax.softmax_cross_entropy(logits, jax.nn.softmax(teacher))
  return jnp.sum(kd * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def train_step(state: State, batch: dict[str, jax.Array], key: jax.Array,
               arch_batch: dict[str, jax.Array], *, graphdef,
               tx: optax.GradientTransformation, resolution: int,
               label_smoothing: float = 0.1, kd_ratio: float = 1.0,
               unroll: bool = False) -> tuple[State, Metrics]:
  """One sandwich update.

  Args:
    state: {"params", "stats", "opt_state", "step"} (see `create_state`).
    batch: {"image": [B, H, W, C], "label": [B], optional "mask": [B]}.
    key: this step's key (dropout).
    arch_batch: `model.stack_arch_arrays` of N architectures, [N, slots];
      the first is the distillation teacher (the largest).
    graphdef, tx: bound with functools.partial.
    resolution: the step's input resolution (static).
    label_smoothing: for the cross entropy with the labels.
    kd_ratio: weight of the distillation loss of architectures 1..N-1.
    unroll: unroll the loop over the N architectures (`config.train.unroll`).

  Returns:
    The new state and scalar metrics (loss, teacher CE and accuracy, grad
    norm).
  """
  images = resize(batch["image"], resolution)
  labels = batch["label"]
  mask = batch.get("mask", jnp.ones(labels.shape, jnp.float32))
  n = jax.tree.leaves(arch_batch)[0].shape[0]
  params = state["params"]

  def body(carry, xs):
    grads, stats, teacher = carry
    arch, i, k = xs

    def loss_fn(p):
      model = nnx.merge(graphdef, p, stats, copy=True)
      logits = model(images, arch, train=True, dropout_key=k)
      ce = _cross_entropy(logits, labels, mask, label_smoothing)
      kd = _distillation(logits, teacher, mask)
      loss = ce + jnp.where(i > 0, kd_ratio * kd, 0.0)
      return loss, (logits, nnx.state(model, nnx.BatchStat), ce)

    (loss, (logits, new_stats, ce)), g = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    grads = jax.tree.map(jnp.add, grads, g)
    teacher = jnp.where(i == 0, jax.lax.stop_gradient(logits), teacher)
    acc = jnp.sum((jnp.argmax(logits, -1) == labels) * mask) / jnp.maximum(
        jnp.sum(mask), 1.0)
    return (grads, new_stats, teacher), (loss, ce, acc)

  zeros = jax.tree.map(jnp.zeros_like, params)
  num_classes = num_classes_of(state)
  teacher0 = jnp.zeros((labels.shape[0], num_classes), jnp.float32)
  keys = jax.random.split(key, n)
  # The architectures run one after another (scan, or unrolled with
  # `unroll`), each with its own scalars, so the slots' `lax.switch`es
  # branch (under `vmap` they would become selects that run every branch).
  # `unroll` compiles one copy of the supernet per architecture; the scan
  # one. benchmarks/results/supernet.md measures both.
  (grads, stats, _), (losses, ces, accs) = jax.lax.scan(
      body, (zeros, state["stats"], teacher0),
      (arch_batch, jnp.arange(n), keys), unroll=bool(unroll))
  grads = jax.tree.map(lambda g: g / n, grads)
  updates, opt_state = tx.update(grads, state["opt_state"], params)
  new_state = {"params": optax.apply_updates(params, updates),
               "stats": stats, "opt_state": opt_state,
               "step": state["step"] + 1}
  metrics = {"train/loss": jnp.mean(losses), "train/ce_largest": ces[0],
             "train/acc_largest": accs[0], "train/acc_smallest": accs[1 % n],
             "train/grad_norm": optax.global_norm(grads)}
  return new_state, metrics


def num_classes_of(state: State) -> int:
  """Classifier width, read from the (abstract) parameter shapes."""
  return jax.tree.leaves(state["params"]["classifier"]["bias"])[0].shape[-1]


# ------------------------------------------------------- BN & evaluation --


def recalibrate(state: State, images: jax.Array, arch: dict[str, jax.Array],
                *, graphdef) -> State:
  """BatchNorm statistics of `arch` from scratch on a few batches.

  Args:
    state: the train state (its params are used, its stats replaced for the
      blocks and channels `arch` uses).
    images: [n, B, R, R, C] training images (no augmentation needed).
    arch: `model.arch_arrays` of one architecture.

  Returns:
    The state with running statistics equal to the average of the n batch
    statistics (`hwnas.models.bn.average_batch_statistics`, Once-for-All's
    recalibration).
  """
  def batch_statistics(stats, x):
    model = nnx.merge(graphdef, state["params"], stats, copy=True)
    model(x, arch, train=True, momentum=0.0)
    return nnx.state(model, nnx.BatchStat)

  return {**state, "stats": bn_lib.average_batch_statistics(
      batch_statistics, state["stats"], images)}


def eval_step(state: State, batch: dict[str, jax.Array],
              arch: dict[str, jax.Array], *, graphdef) -> Metrics:
  """Correct predictions and example count of `arch` on one batch."""
  model = merge(graphdef, state)
  logits = model(batch["image"], arch, train=False)
  mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
  correct = jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask)
  return {"correct": correct, "count": jnp.sum(mask)}


# ------------------------------------------------------ arch sampling --


def shrink_phase(step: int, steps: int, schedule: Iterable[float]) -> int:
  """Progressive-shrinking phase of `step` (0-based) given phase starts as
  fractions of the run, e.g. (0, 0.25, 0.5, 0.75) -> phases 0..3."""
  frac = step / max(steps, 1)
  return sum(1 for start in list(schedule)[1:] if frac >= start)


def _shrink(space: SearchSpace, arch: arch_lib.ArchChoice,
            big: arch_lib.ArchChoice, phase: int) -> arch_lib.ArchChoice:
  """Restricts a random arch to the elastic dimensions of `phase`.

  Phase 0: only the largest; 1: + elastic kernel; 2: + depth, type, SE and
  activation; 3 (or more): + expansion and width (the whole space).
  """
  if phase >= 3:
    return arch
  if phase == 0:
    return big
  stages = []
  for s, (bs, bb) in enumerate(zip(arch.blocks, big.blocks)):
    row = []
    for j, (b, g) in enumerate(zip(bs, bb)):
      if phase == 1:
        row.append(dataclasses.replace(g, kernel=b.kernel)
                   if g.type != "skip" else g)
      elif b.type == "skip":
        row.append(b)
      else:
        row.append(dataclasses.replace(b, expansion=g.expansion))
    stages.append(tuple(row))
  depths = big.depths if phase == 1 else arch.depths
  return arch_lib.canonicalize(space, dataclasses.replace(
      big, depths=depths, blocks=tuple(stages)))


def sandwich(rng: np.random.Generator, space: SearchSpace, *,
             n_random: int, resolution: int, phase: int = 3
             ) -> list[arch_lib.ArchChoice]:
  """[largest, smallest, n_random random] architectures at `resolution`."""
  def at(a):
    return dataclasses.replace(a, resolution=resolution)
  big = at(arch_lib.largest(space))
  small = _shrink(space, at(arch_lib.smallest(space)), big, phase)
  rand = [_shrink(space, at(arch_lib.sample(rng, space)), big, phase)
          for _ in range(n_random)]
  return [big, small, *rand]


def jit_train_step(graphdef, tx, *, resolution: int, label_smoothing: float,
                   kd_ratio: float, unroll: bool = False) -> Callable:
  """`train_step` jitted for one resolution, with the state donated."""
  return jax.jit(functools.partial(
      train_step, graphdef=graphdef, tx=tx, resolution=resolution,
      label_smoothing=label_smoothing, kd_ratio=kd_ratio, unroll=unroll),
      donate_argnums=0)
