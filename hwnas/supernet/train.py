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
devices). Multi-host (TPU pods, GPU clusters): call
`jax.distributed.initialize()` at the start of every process (before any
other jax call; on Cloud TPU it needs no arguments, elsewhere pass
`coordinator_address`, `num_processes` and `process_id`), then run the same
`hwnas supernet train` command on every host: `jax.devices()` then lists
all hosts' devices, each host reads its own shard of every batch
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
from hwnas import errors
from hwnas.space import SearchSpace
from hwnas.supernet import model as model_lib

State = dict[str, Any]     # {"params", "stats", "opt_state", "step"}
Metrics = dict[str, jax.Array]

# ------------------------------------------------------------ optimiser --


def warmup_cosine(peak_lr: float, steps: int, warmup_steps: int,
                  final_lr_ratio: float) -> optax.Schedule:
  """Linear warm-up (at most `steps - 1`), then cosine decay to
  `final_lr_ratio * peak_lr` at `steps`."""
  warmup = min(int(warmup_steps), max(steps - 1, 0))
  return optax.schedules.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup,
      decay_steps=max(steps, warmup + 1), end_value=peak_lr * final_lr_ratio)


def make_schedule(config: ml_collections.ConfigDict, steps: int
                  ) -> optax.Schedule:
  """`warmup_cosine` from `config.optimizer`."""
  o = config.optimizer
  return warmup_cosine(o.learning_rate, steps, o.warmup_steps,
                       o.final_lr_ratio)


def decay_mask(params):
  """Weight decay on conv/dense kernels only (not BN, not biases).

  Decided by rank (kernels have >= 2 dims; BN scales/offsets and biases
  have 1): on an nnx.State the last path entry of every leaf is `.value`,
  so matching on the name 'kernel' would select nothing.
  """
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def build_optimizer(name: str, lr: optax.ScalarOrSchedule, *,
                    momentum: float, nesterov: bool, b1: float, b2: float,
                    weight_decay: float, grad_clip: float,
                    key: str = "optimizer") -> optax.GradientTransformation:
  """SGD (momentum, optionally Nesterov) or AdamW with weight decay on
  kernels only (`decay_mask`), optionally clipped by global norm.

  Shared by supernet training and standalone training (`hwnas.
  train_standalone`); `key` names the setting in the error for an unknown
  `name`.
  """
  if name == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.sgd(lr, momentum=momentum, nesterov=nesterov))
  elif name == "adamw":
    tx = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay,
                     mask=decay_mask)
  else:
    raise errors.HwnasError(f"{key} = {name!r}: use 'sgd' or 'adamw'")
  if grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return tx


def make_optimizer(config: ml_collections.ConfigDict, steps: int
                   ) -> optax.GradientTransformation:
  """`build_optimizer` from `config.optimizer` on `make_schedule`.

  Args:
    config: the run config (`config.optimizer`: name 'sgd' | 'adamw',
      learning_rate, momentum, nesterov, b1, b2, weight_decay, warmup_steps,
      final_lr_ratio, grad_clip).
    steps: total training steps (the length of the cosine).
  """
  o = config.optimizer
  return build_optimizer(
      o.name, make_schedule(config, steps), momentum=o.momentum,
      nesterov=o.nesterov, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
      grad_clip=o.grad_clip, key="config.optimizer.name")


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
  """[B, H, W, C] -> [B, R, R, C] (bilinear; identity when H == R)."""
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
    statistics (cumulative average, Once-for-All's recalibration).
  """
  def body(stats, xs):
    x, i = xs
    model = nnx.merge(graphdef, state["params"], stats, copy=True)
    model(x, arch, train=True, momentum=i / (i + 1.0))
    return nnx.state(model, nnx.BatchStat), None

  n = images.shape[0]
  stats, _ = jax.lax.scan(body, state["stats"],
                          (images, jnp.arange(n, dtype=jnp.float32)),
                          unroll=True)
  return {**state, "stats": stats}


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
