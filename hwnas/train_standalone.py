"""Training one standalone architecture: fine-tuning or from scratch.

`train(spec, config, workdir)` trains the exact network of a `NetSpec`
(`hwnas.models.Network`) on a dataset from `hwnas.data`, and is what
`hwnas train` runs. The machinery is that of supernet training:

- the Optax optimiser options of supernet training (SGD with Nesterov
  momentum or AdamW; weight decay on kernels only; linear warm-up then
  cosine decay; optional gradient clipping; label smoothing);
- a functional step: `nnx.split` once, a `jax.jit`-ed pure
  `train_step(state, batch) -> (state, metrics)` with the state donated;
- data parallelism over all local devices with `jax.sharding` (state
  replicated, batch sharded over a `data` mesh axis; multi-host through
  `jax.distributed` with each host feeding its own rows, `hwnas.data`);
- an Orbax `CheckpointManager` in `WORKDIR/checkpoints`: a run resumes
  automatically from its latest checkpoint, and the data stream resumes at
  the same batch (`hwnas.data.batches(start_step=...)`), so an interrupted
  run ends with the same weights as an uninterrupted one;
- `WORKDIR/config.json` (resolved config, network spec, dataset info),
  `WORKDIR/metrics.jsonl` (one JSON row per logged step, `split/name` keys),
  `WORKDIR/netspec.json` and, at the end, `WORKDIR/result.json` with the
  validation and test accuracy (BatchNorm running statistics, eval mode).

Initial weights come from `init`: `scratch` (random, seeded) or
`supernet:WORKDIR`, the shared weights of a trained supernet copied into the
architecture (`hwnas.supernet`), which then fine-tunes them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hwnas import data as data_lib
from hwnas import netspec as netspec_lib
from hwnas.errors import HwnasError
from hwnas.models import Network
from hwnas.supernet.train import build_optimizer, warmup_cosine  # shared

State = dict[str, Any]
Metrics = dict[str, jax.Array]

# Changing these in an existing workdir would silently make a different run.
_RUN_IDENTITY = ("dataset", "val_fraction", "batch_size", "resolution",
                 "optimizer", "learning_rate", "momentum", "b1", "b2",
                 "weight_decay", "warmup_steps", "final_lr_ratio",
                 "grad_clip", "label_smoothing", "augment", "seed", "init")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyper-parameters of a standalone training run (CLI flags override).

  Attributes:
    dataset: `digits`, `tfds:NAME` or `folder:PATH` (see `hwnas.data`).
    data_dir: tensorflow-datasets data directory.
    manual_dir: tensorflow-datasets manual-download directory.
    val_fraction: Share of the original training data held out as `val`.
    steps: Total optimiser steps.
    batch_size: Global batch size.
    resolution: Input resolution; None keeps the network spec's.
    optimizer: `sgd` (Nesterov momentum) or `adamw`.
    learning_rate: Peak learning rate (after warm-up).
    momentum: SGD (Nesterov) momentum.
    b1: AdamW's first-moment decay.
    b2: AdamW's second-moment decay.
    weight_decay: Decoupled weight decay on conv/dense kernels only.
    warmup_steps: Linear warm-up steps (at most `steps - 1`).
    final_lr_ratio: The cosine ends at this fraction of `learning_rate`.
    grad_clip: Global-norm gradient clipping (0: none).
    label_smoothing: Label smoothing of the cross-entropy loss.
    augment: Training augmentation (`hwnas.data.batches`).
    seed: Seeds the initial weights, the shuffle and the augmentation.
    init: `scratch` or `supernet:WORKDIR`.
    log_every: Steps between metrics rows (and host syncs).
    checkpoint_every: Steps between checkpoints (and validation passes).
    eval_batch_size: Batch size of the validation / test passes.
  """

  dataset: str = "digits"
  data_dir: str | None = None
  manual_dir: str | None = None
  val_fraction: float = 0.1
  steps: int = 1000
  batch_size: int = 64
  resolution: int | None = None
  optimizer: str = "sgd"
  learning_rate: float = 0.1
  momentum: float = 0.9
  b1: float = 0.9
  b2: float = 0.999
  weight_decay: float = 4e-5
  warmup_steps: int = 50
  final_lr_ratio: float = 0.0
  grad_clip: float = 0.0
  label_smoothing: float = 0.1
  augment: bool = True
  seed: int = 0
  init: str = "scratch"
  log_every: int = 50
  checkpoint_every: int = 250
  eval_batch_size: int = 128


def learning_rate_fn(config: TrainConfig) -> optax.Schedule:
  """Linear warm-up, then cosine decay to `final_lr_ratio * learning_rate`
  (the supernet's schedule, `hwnas.supernet.train.warmup_cosine`)."""
  return warmup_cosine(config.learning_rate, config.steps,
                       config.warmup_steps, config.final_lr_ratio)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """SGD-Nesterov or AdamW on `learning_rate_fn`, kernel-only weight decay,
  optional global-norm clipping: supernet training's `build_optimizer`."""
  return build_optimizer(
      config.optimizer, learning_rate_fn(config), momentum=config.momentum,
      nesterov=True, b1=config.b1, b2=config.b2,
      weight_decay=config.weight_decay, grad_clip=config.grad_clip,
      key="--optimizer")


def _loss(graphdef, params, rest, batch, label_smoothing):
  model = nnx.merge(graphdef, params, rest, copy=True)  # copy: docs/stack_notes.md, 3
  logits = model(batch["image"], train=True)
  labels = jax.nn.one_hot(batch["label"], logits.shape[-1])
  loss = optax.softmax_cross_entropy(
      logits, optax.smooth_labels(labels, label_smoothing)).mean()
  _, _, new_rest = nnx.split(model, nnx.Param, ...)
  return loss, (logits, new_rest)


def train_step(state: State, batch: dict[str, jax.Array], *, graphdef: Any,
               tx: optax.GradientTransformation,
               label_smoothing: float) -> tuple[State, Metrics]:
  """One optimiser step (pure; jit it with `donate_argnums=0`).

  Args:
    state: `{"params", "rest" (BatchNorm statistics), "opt_state", "step"}`.
    batch: `{"image": [B, R, R, C], "label": [B], ...}`.
    graphdef: The model's `nnx.GraphDef`.
    tx: The optimiser.
    label_smoothing: Label smoothing of the loss.

  Returns:
    The new state and `{"train/loss", "train/accuracy", "train/grad_norm"}`.
  """
  grad_fn = jax.value_and_grad(_loss, argnums=1, has_aux=True)
  (loss, (logits, rest)), grads = grad_fn(
      graphdef, state["params"], state["rest"], batch, label_smoothing)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  params = optax.apply_updates(state["params"], updates)
  acc = (jnp.argmax(logits, -1) == batch["label"]).mean()
  new = {"params": params, "rest": rest, "opt_state": opt_state,
         "step": state["step"] + 1}
  return new, {"train/loss": loss, "train/accuracy": acc,
               "train/grad_norm": optax.global_norm(grads)}


def eval_step(state: State, batch: dict[str, jax.Array], *,
              graphdef: Any) -> Metrics:
  """Sums of correct predictions, loss and examples (rows with mask 1)."""
  model = nnx.merge(graphdef, state["params"], state["rest"], copy=True)
  logits = model(batch["image"], train=False)
  mask = batch["mask"]
  loss = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                         batch["label"])
  correct = (jnp.argmax(logits, -1) == batch["label"]) * mask
  return {"correct": correct.sum(), "loss": (loss * mask).sum(),
          "count": mask.sum()}


def evaluate(state: State, ds: data_lib.Dataset, split: str, *,
             graphdef: Any, batch_size: int, resolution: int,
             mesh: jax.sharding.Mesh | None = None) -> dict[str, float]:
  """Accuracy and mean loss of the model in `state` on a whole split."""
  step = _jitted_eval(graphdef)
  totals = {"correct": 0.0, "loss": 0.0, "count": 0.0}
  for batch in data_lib.batches(ds, split, batch_size=batch_size,
                                resolution=resolution, seed=0, shuffle=False,
                                repeat=False, drop_remainder=False):
    b = data_lib.shard_batch(batch, mesh) if mesh else batch
    for k, v in jax.device_get(step(state, b)).items():
      totals[k] += float(v)
  n = max(totals["count"], 1.0)
  return {f"{split}/accuracy": totals["correct"] / n,
          f"{split}/loss": totals["loss"] / n}


@functools.lru_cache(maxsize=8)
def _jitted_eval(graphdef):
  return jax.jit(functools.partial(eval_step, graphdef=graphdef))


def init_model(spec: netspec_lib.NetSpec, config: TrainConfig, *,
               arch: Any = None) -> Network:
  """The network with its initial weights (`config.init`).

  `scratch`: random, seeded with `config.seed`. `supernet:WORKDIR`: the
  shared weights of a trained supernet for `arch`, with BatchNorm
  statistics recalibrated for it (`hwnas.supernet.extract_subnet`).
  """
  if config.init == "scratch":
    # One jitted initialisation instead of one eager compile per initialiser.
    return nnx.jit(lambda: Network(spec, rngs=nnx.Rngs(config.seed)))()
  kind, _, where = config.init.partition(":")
  if kind != "supernet" or not where:
    raise HwnasError(f"--init {config.init}: use scratch or supernet:WORKDIR")
  if arch is None:
    raise HwnasError(f"--init {config.init}: needs an architecture choice "
                     "file (arch sample, search best.json), not a network "
                     "spec or reference")
  from hwnas.supernet import extract_subnet  # heavy; only when asked for
  return extract_subnet(pathlib.Path(where), arch, spec=spec)


def resolve_spec(spec: netspec_lib.NetSpec, config: TrainConfig,
                 info: data_lib.DatasetInfo) -> netspec_lib.NetSpec:
  """Adapts input resolution and classifier width to the run and data."""
  if config.resolution and config.resolution != spec.resolution:
    spec = netspec_lib.with_resolution(spec, config.resolution)
  if spec.num_classes != info.num_classes:
    if config.init != "scratch":
      raise HwnasError(
          f"--dataset {info.name}: has {info.num_classes} classes but the "
          f"supernet's classifier has {spec.num_classes}; use --init scratch")
    spec = netspec_lib.with_num_classes(spec, info.num_classes)
  if spec.in_channels != info.image_shape[2]:
    raise HwnasError(f"--dataset {info.name}: {info.image_shape[2]}-channel "
                     f"images but {spec.name} takes {spec.in_channels}")
  return spec


def _data_mesh(batch_size: int) -> jax.sharding.Mesh:
  devices = np.asarray(jax.devices())
  if batch_size % devices.size:
    raise HwnasError(f"--batch-size {batch_size}: must be a multiple of the "
                     f"{devices.size} devices")
  return jax.sharding.Mesh(devices, ("data",))


def initial_state(model: Network, config: TrainConfig) -> tuple[Any, State]:
  """Splits `model` into its graphdef and the train state (step 0)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  opt_state = jax.jit(make_optimizer(config).init)(params)
  return graphdef, {"params": params, "rest": rest, "opt_state": opt_state,
                    "step": jnp.zeros((), jnp.int32)}


# ------------------------------------------------------------- workdir --

def _config_json(config: TrainConfig, spec: netspec_lib.NetSpec,
                 info: data_lib.DatasetInfo, arch: Any) -> dict[str, Any]:
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  return {"config": dataclasses.asdict(config), "netspec": spec.to_dict(),
          "arch": arch_lib.to_dict(arch) if arch is not None else None,
          "dataset": info.to_json(), "devices": jax.device_count(),
          "processes": jax.process_count()}


def _check_workdir(workdir: pathlib.Path, resolved: dict[str, Any]) -> None:
  """Refuses to resume a workdir that holds a different run."""
  path = workdir / "config.json"
  if not path.is_file():
    return
  old = json.loads(path.read_text())
  for key in _RUN_IDENTITY:
    a, b = old["config"].get(key), resolved["config"][key]
    if a != b:
      raise HwnasError(f"{path}: {key} is {a!r} there but {b!r} now; use a "
                       "new --workdir or the same settings to resume")
  if old["netspec"] != resolved["netspec"]:
    raise HwnasError(f"{path}: netspec: the workdir trains "
                     f"{old['netspec']['name']}; use a new --workdir")


def _truncate_metrics(path: pathlib.Path, step: int) -> None:
  """Drops rows logged after the checkpoint a run resumes from."""
  if not path.is_file():
    return
  rows = [l for l in path.read_text().splitlines() if l.strip()]
  keep = [l for l in rows if json.loads(l)["step"] <= step]
  if len(keep) != len(rows):
    path.write_text("".join(l + "\n" for l in keep))


def _append(path: pathlib.Path, row: dict[str, Any]) -> None:
  if jax.process_index() == 0:
    with path.open("a") as f:
      f.write(json.dumps(row) + "\n")


def _checkpoint_manager(workdir: pathlib.Path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(
      (workdir / "checkpoints").absolute(),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _restore_latest(mngr, state: State, *, fallback: bool = True) -> State:
  """The newest intact checkpoint (checksums verified; see
  `hwnas.supernet.checkpoint.restore`), or `state` if there is none."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored, _ = checkpoint.restore(mngr, abstract, fallback=fallback)
  return state if restored is None else restored


def _save(mngr, state: State, step: int) -> None:
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  if mngr.latest_step() != step:
    checkpoint.save(mngr, step, state)  # waits, then records checksums


# --------------------------------------------------------------- train --

def _progress(enabled: bool):
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  return rp.Progress(
      rp.TextColumn("train"), rp.BarColumn(), rp.MofNCompleteColumn(),
      rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
      rp.TextColumn("loss {task.fields[loss]}"),
      rp.TextColumn("{task.fields[speed]} img/s"), disable=not enabled,
      transient=False)


def _check_finite(row: dict[str, Any], step: int) -> None:
  for k in ("train/loss", "train/grad_norm"):
    if not np.isfinite(row[k]):
      raise HwnasError(f"step {step}: {k} is {row[k]}; lower --learning-rate "
                       "or check the data")


def train(spec: netspec_lib.NetSpec, config: TrainConfig,
          workdir: str | pathlib.Path, *, arch: Any = None,
          progress: bool = False,
          stop_after: int | None = None) -> dict[str, Any]:
  """Trains (or resumes training) one architecture in `workdir`.

  Args:
    spec: The network to train (decoded architecture or reference).
    config: Hyper-parameters.
    workdir: Run directory; an existing checkpoint there is resumed.
    arch: The `ArchChoice` `spec` was decoded from (needed for
      `init="supernet:..."`; recorded in config.json).
    progress: Show a rich progress bar.
    stop_after: Stop after this many steps of this call (with a checkpoint);
      a later call resumes. None trains to `config.steps`.

  Returns:
    `{"step", "finished"}` plus, when finished, `val/accuracy`, `val/loss`,
    `test/accuracy`, `test/loss`, `num_params` (also in result.json).
  """
  workdir = pathlib.Path(workdir)
  ds = data_lib.load(config.dataset, val_fraction=config.val_fraction,
                     seed=config.seed, data_dir=config.data_dir,
                     manual_dir=config.manual_dir)
  spec = resolve_spec(spec, config, ds.info)
  resolved = _config_json(config, spec, ds.info, arch)
  _check_workdir(workdir, resolved)
  model = init_model(spec, config, arch=arch)  # fails before writing files
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(json.dumps(resolved, indent=1) + "\n")
    netspec_lib.save(spec, workdir / "netspec.json")
  graphdef, state = initial_state(model, config)
  mngr = _checkpoint_manager(workdir)
  try:
    state = _restore_latest(mngr, state)
  except BaseException:
    mngr.close()  # stops Orbax's threads before the error is shown
    raise
  mesh = _data_mesh(config.batch_size)
  state = jax.device_put(state, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  start = int(state["step"])
  metrics_path = workdir / "metrics.jsonl"
  _truncate_metrics(metrics_path, start)
  end = config.steps if stop_after is None else min(config.steps,
                                                    start + stop_after)
  state = _run(state, ds, spec, config, graphdef, mesh, mngr,
               metrics_path, start, end, progress)
  mngr.wait_until_finished()
  if end < config.steps:
    mngr.close()
    return {"step": end, "finished": False}
  result = {"step": end, "finished": True,
            "num_params": int(sum(np.size(p) for p in
                                  jax.tree.leaves(state["params"])))}
  for split in ("val", "test"):
    if ds.info.split_sizes[split]:
      result.update(evaluate(state, ds, split, graphdef=graphdef,
                             batch_size=config.eval_batch_size,
                             resolution=spec.resolution, mesh=mesh))
  _append(metrics_path, {k: v for k, v in result.items() if k != "finished"})
  if jax.process_index() == 0:
    (workdir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
  mngr.close()
  return result


@functools.lru_cache(maxsize=4)
def _jitted_train_step(graphdef: Any, config: TrainConfig):
  """The jitted step; cached so that a resumed run in one process (tests,
  notebooks) does not compile again."""
  return jax.jit(functools.partial(
      train_step, graphdef=graphdef, tx=make_optimizer(config),
      label_smoothing=config.label_smoothing), donate_argnums=0)


def _run(state, ds, spec, config, graphdef, mesh, mngr, metrics_path,
         start, end, progress) -> State:
  """The step loop from `start` to `end`, logging and checkpointing."""
  step_fn = _jitted_train_step(graphdef, config)
  lr = learning_rate_fn(config)
  it = data_lib.batches(
      ds, "train", batch_size=config.batch_size, resolution=spec.resolution,
      seed=config.seed, augment=config.augment, start_step=start,
      process_index=jax.process_index(), process_count=jax.process_count())
  step, t0, n0 = start, time.perf_counter(), start
  with _progress(progress) as bar:
    task = bar.add_task("train", total=config.steps, completed=start,
                        loss="-", speed="-")
    try:
      for step in range(start + 1, end + 1):
        state, m = step_fn(state, data_lib.shard_batch(next(it), mesh))
        if step % config.log_every == 0 or step == end:
          row = {"step": step, **{k: float(v) for k, v in
                                  jax.device_get(m).items()}}
          _check_finite(row, step)
          dt = time.perf_counter() - t0
          row["train/learning_rate"] = float(lr(step - 1))
          row["train/examples_per_sec"] = (step - n0) * config.batch_size / dt
          _append(metrics_path, row)
          bar.update(task, loss=f"{row['train/loss']:.3f}",
                     speed=f"{row['train/examples_per_sec']:.0f}")
          t0, n0 = time.perf_counter(), step
        if step % config.checkpoint_every == 0 or step == end:
          _save(mngr, state, step)
          if step % config.checkpoint_every == 0 and step < config.steps:
            _append(metrics_path, {"step": step, **evaluate(
                state, ds, "val", graphdef=graphdef,
                batch_size=config.eval_batch_size,
                resolution=spec.resolution, mesh=mesh)})
        bar.update(task, completed=step)
    except KeyboardInterrupt:
      if int(state["step"]) == step:
        _save(mngr, state, step)
      mngr.wait_until_finished()
      raise
  return state


def restore(workdir: str | pathlib.Path) -> Network:
  """The trained network of a `train` workdir (latest checkpoint).

  Args:
    workdir: A directory written by `train` (config.json, netspec.json,
      checkpoints/).

  Returns:
    The `Network` with the trained weights and BatchNorm statistics; call
    it with `train=False`.
  """
  workdir = pathlib.Path(workdir)
  path = workdir / "config.json"
  if not path.is_file():
    raise HwnasError(f"{path}: no such file; is {workdir} a `hwnas train` "
                     "workdir?")
  saved = json.loads(path.read_text())
  config = TrainConfig(**saved["config"])
  spec = netspec_lib.NetSpec.from_dict(saved["netspec"], where=str(path))
  abstract = nnx.eval_shape(lambda: Network(spec, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
  state = {"params": params, "rest": rest,
           "opt_state": jax.eval_shape(make_optimizer(config).init, params),
           "step": jax.ShapeDtypeStruct((), jnp.int32)}
  mngr = _checkpoint_manager(workdir)
  if mngr.latest_step() is None:
    raise HwnasError(f"{workdir / 'checkpoints'}: no checkpoint; train first")
  try:
    state = _restore_latest(mngr, state, fallback=False)
  finally:
    mngr.close()
  return nnx.merge(graphdef, state["params"], state["rest"])
