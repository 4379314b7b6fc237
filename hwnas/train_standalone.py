"""Training one standalone architecture: fine-tuning or from scratch.

`train(spec, config, workdir)` trains the exact network of a `NetSpec`
(`hwnas.models.Network`) on a dataset from `hwnas.data`, and is what
`hwnas train` runs. The machinery is that of supernet training:

- the config layout of supernet training: an ml_collections ConfigDict
  (`hwnas/configs/train.py`, `get_config(arg)`; `hwnas train --set K=V`);
- the one optimiser and schedule (`hwnas.optim`: SGD with Nesterov momentum
  or AdamW; weight decay on kernels only; linear warm-up then cosine decay;
  optional gradient clipping), label smoothing;
- a functional step: `nnx.split` once, a `jax.jit`-ed pure
  `train_step(state, batch) -> (state, metrics)` with the state donated;
- data parallelism over all local devices with `jax.sharding` (state
  replicated, batch sharded over a `data` mesh axis; multi-host through
  `jax.distributed` with each host feeding its own rows, `hwnas.data`);
- a workdir (`hwnas.train_workdir`: config.json, metrics.jsonl, Orbax
  checkpoints, result.json): a run resumes automatically from its latest
  checkpoint, and the data stream resumes at the same batch
  (`hwnas.data.batches(start_step=...)`), so an interrupted run ends with
  the same weights as an uninterrupted one; `result.json` holds the
  validation and test accuracy (BatchNorm running statistics, eval mode).

Initial weights come from `init`: `scratch` (random, seeded) or
`supernet:WORKDIR`, the shared weights of a trained supernet copied into the
architecture (`hwnas.supernet`), which then fine-tunes them.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from hwnas import aot_cache
from hwnas import data as data_lib
from hwnas import netspec as netspec_lib
from hwnas import optim
from hwnas import train_workdir as wd_lib
from hwnas.configs import train as train_config
from hwnas.errors import HwnasError
from hwnas.mesh import data_mesh
from hwnas.models import Network

State = dict[str, Any]
Metrics = dict[str, jax.Array]
Config = ml_collections.ConfigDict


def get_config(arg: str | None = None, **overrides: Any) -> Config:
  """`hwnas/configs/train.py`'s config of variant `arg`, with dotted-key
  overrides, e.g. `get_config(**{"train.steps": 10})`."""
  c = train_config.get_config(arg)
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def learning_rate_fn(config: Config) -> optax.Schedule:
  """Linear warm-up, then cosine decay over `config.train.steps`
  (`hwnas.optim.make_schedule`)."""
  return optim.make_schedule(config.optimizer, config.train.steps)


def make_optimizer(config: Config) -> optax.GradientTransformation:
  """`hwnas.optim.make_optimizer` of `config.optimizer` over
  `config.train.steps`."""
  return optim.make_optimizer(config.optimizer, config.train.steps,
                              key="optimizer.name")


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
  compiled = {}   # batch shape -> executable (the last batch may be short)
  totals = {"correct": 0.0, "loss": 0.0, "count": 0.0}
  for batch in data_lib.batches(ds, split, batch_size=batch_size,
                                resolution=resolution, seed=0, shuffle=False,
                                repeat=False, drop_remainder=False):
    b = data_lib.shard_batch(batch, mesh) if mesh else batch
    shape = tuple(np.shape(b["image"]))
    if shape not in compiled:
      compiled[shape] = aot_cache.compiled(
          "train_eval", step, (state, b),
          key_parts={"graphdef": aot_cache.graph_digest(graphdef)})
    for k, v in jax.device_get(compiled[shape](state, b)).items():
      totals[k] += float(v)
  n = max(totals["count"], 1.0)
  return {f"{split}/accuracy": totals["correct"] / n,
          f"{split}/loss": totals["loss"] / n}


@functools.lru_cache(maxsize=8)
def _jitted_eval(graphdef):
  return jax.jit(functools.partial(eval_step, graphdef=graphdef))


def init_model(spec: netspec_lib.NetSpec, config: Config, *,
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


def resolve_spec(spec: netspec_lib.NetSpec, config: Config,
                 info: data_lib.DatasetInfo) -> netspec_lib.NetSpec:
  """Adapts input resolution and classifier width to the run and data."""
  data_lib.check_input(info, kind=spec.kind, channels=spec.in_channels,
                       what=f"network {spec.name}")
  if config.resolution and config.resolution != spec.resolution:
    spec = netspec_lib.with_resolution(spec, config.resolution)
  if spec.num_classes != info.num_classes:
    if config.init != "scratch":
      raise HwnasError(
          f"--dataset {info.name}: has {info.num_classes} classes but the "
          f"supernet's classifier has {spec.num_classes}; use --init scratch")
    spec = netspec_lib.with_num_classes(spec, info.num_classes)
  return spec


def initial_state(model: Network, config: Config) -> tuple[Any, State]:
  """Splits `model` into its graphdef and the train state (step 0)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  opt_state = jax.jit(make_optimizer(config).init)(params)
  return graphdef, {"params": params, "rest": rest, "opt_state": opt_state,
                    "step": jnp.zeros((), jnp.int32)}


def _config_json(config: Config, spec: netspec_lib.NetSpec,
                 info: data_lib.DatasetInfo, arch: Any) -> dict[str, Any]:
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  return {"config": config.to_dict(), "netspec": spec.to_dict(),
          "arch": arch_lib.to_dict(arch) if arch is not None else None,
          "dataset": info.to_json(), "devices": jax.device_count(),
          "processes": jax.process_count()}


# --------------------------------------------------------------- train --

def _progress(enabled: bool):
  from hwnas import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  return progress_lib.make(enabled, lambda: rp.Progress(
      rp.TextColumn("train"), rp.BarColumn(), rp.MofNCompleteColumn(),
      rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
      rp.TextColumn("loss {task.fields[loss]}"),
      rp.TextColumn("{task.fields[speed]} img/s"), disable=not enabled,
      transient=False))


def _check_finite(row: dict[str, Any], step: int) -> None:
  for k in ("train/loss", "train/grad_norm"):
    if not np.isfinite(row[k]):
      raise HwnasError(f"step {step}: {k} is {row[k]}; lower "
                       "optimizer.learning_rate or check the data")


def train(spec: netspec_lib.NetSpec, config: Config,
          workdir: str | pathlib.Path, *, arch: Any = None,
          progress: bool = False, stop_after: int | None = None,
          ds: data_lib.Dataset | None = None) -> dict[str, Any]:
  """Trains (or resumes training) one architecture in `workdir`.

  Args:
    spec: The network to train (decoded architecture or reference).
    config: The run config (`hwnas/configs/train.py`, `get_config`).
    workdir: Run directory; an existing checkpoint there is resumed.
    arch: The `ArchChoice` `spec` was decoded from (needed for
      `init="supernet:..."`; recorded in config.json).
    progress: Show a rich progress bar.
    stop_after: Stop after this many steps of this call (with a checkpoint);
      a later call resumes. None trains to `config.train.steps`.
    ds: The dataset of `config`, already loaded (`hwnas.data.load_for`); saves
      loading it again when one process trains many architectures.

  Returns:
    `{"step", "finished"}` plus, when finished, `val/accuracy`, `val/loss`,
    `test/accuracy`, `test/loss`, `num_params` (also in result.json).
  """
  workdir = pathlib.Path(workdir)
  ds = ds if ds is not None else data_lib.load_for(config)
  spec = resolve_spec(spec, config, ds.info)
  resolved = _config_json(config, spec, ds.info, arch)
  wd_lib.check_workdir(workdir, resolved)
  model = init_model(spec, config, arch=arch)  # fails before writing files
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(json.dumps(resolved, indent=1) + "\n")
    netspec_lib.save(spec, workdir / "netspec.json")
  graphdef, state = initial_state(model, config)
  mngr = wd_lib.checkpoint_manager(workdir)
  try:
    state = wd_lib.restore_latest(mngr, state)
  except BaseException:
    mngr.close()  # stops Orbax's threads before the error is shown
    raise
  mesh = data_mesh(config.train.batch_size)
  state = jax.device_put(state, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  start, steps = int(state["step"]), config.train.steps
  metrics_path = workdir / "metrics.jsonl"
  wd_lib.truncate_metrics(metrics_path, start)
  end = steps if stop_after is None else min(steps, start + stop_after)
  state = _run(state, ds, spec, config, graphdef, mesh, mngr,
               metrics_path, start, end, progress)
  mngr.wait_until_finished()
  if end < steps:
    mngr.close()
    return {"step": end, "finished": False}
  result = {"step": end, "finished": True,
            "num_params": int(sum(np.size(p) for p in
                                  jax.tree.leaves(state["params"])))}
  for split in ("val", "test"):
    if ds.info.split_sizes[split]:
      result.update(evaluate(state, ds, split, graphdef=graphdef,
                             batch_size=config.eval.batch_size,
                             resolution=spec.resolution, mesh=mesh))
  wd_lib.append(metrics_path,
                {k: v for k, v in result.items() if k != "finished"})
  if jax.process_index() == 0:
    (workdir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
  mngr.close()
  return result


def _step_settings(config: Config) -> tuple[int, float, str]:
  """What the jitted step closes over besides its graph: the schedule's
  length, label smoothing and the optimiser (`_cached_step`'s arguments;
  also the step's compiled-code cache key)."""
  return (int(config.train.steps), float(config.train.label_smoothing),
          json.dumps(config.optimizer.to_dict(), sort_keys=True))


def _jitted_train_step(graphdef: Any, config: Config):
  """The jitted step of `config` (see `_cached_step`)."""
  return _cached_step(graphdef, *_step_settings(config))


@functools.lru_cache(maxsize=4)
def _cached_step(graphdef: Any, steps: int, label_smoothing: float,
                 optimizer_json: str):
  """Cached on what the step depends on, so that a resumed run in one
  process (tests, notebooks) does not compile again."""
  opt = ml_collections.ConfigDict(json.loads(optimizer_json))
  tx = optim.make_optimizer(opt, steps, key="optimizer.name")
  return jax.jit(functools.partial(
      train_step, graphdef=graphdef, tx=tx, label_smoothing=label_smoothing),
      donate_argnums=0)


def _run(state, ds, spec, config, graphdef, mesh, mngr, metrics_path,
         start, end, progress) -> State:
  """The step loop from `start` to `end`, logging and checkpointing."""
  jitted = _jitted_train_step(graphdef, config)
  step_fn = None
  lr = learning_rate_fn(config)
  t = config.train
  it = data_lib.batches(
      ds, "train", batch_size=t.batch_size, resolution=spec.resolution,
      seed=config.seed, augment=t.augment, start_step=start,
      process_index=jax.process_index(), process_count=jax.process_count())
  step, t0, n0 = start, time.perf_counter(), start
  with _progress(progress) as bar:
    task = bar.add_task("train", total=t.steps, completed=start,
                        loss="-", speed="-")
    try:
      for step in range(start + 1, end + 1):
        batch = data_lib.shard_batch(next(it), mesh)
        if step_fn is None:
          # The executable from the compiled-code cache (`hwnas.aot_cache`)
          # where it is on: rank-check's seeds, a re-rank's candidates
          # that share a shape, and a resume load instead of tracing.
          step_fn = aot_cache.compiled(
              "train_step", jitted, (state, batch),
              key_parts={"graphdef": aot_cache.graph_digest(graphdef),
                         "settings": list(_step_settings(config))})
        state, m = step_fn(state, batch)
        if step % t.log_every == 0 or step == end:
          row = {"step": step, **{k: float(v) for k, v in
                                  jax.device_get(m).items()}}
          _check_finite(row, step)
          dt = time.perf_counter() - t0
          row["train/learning_rate"] = float(lr(step - 1))
          row["train/examples_per_sec"] = (step - n0) * t.batch_size / dt
          wd_lib.append(metrics_path, row)
          bar.update(task, loss=f"{row['train/loss']:.3f}",
                     speed=f"{row['train/examples_per_sec']:.0f}")
          t0, n0 = time.perf_counter(), step
        if step % t.checkpoint_every == 0 or step == end:
          wd_lib.save(mngr, state, step)
          if step % t.checkpoint_every == 0 and step < t.steps:
            wd_lib.append(metrics_path, {"step": step, **evaluate(
                state, ds, "val", graphdef=graphdef,
                batch_size=config.eval.batch_size,
                resolution=spec.resolution, mesh=mesh)})
        bar.update(task, completed=step)
    except KeyboardInterrupt:
      if int(state["step"]) == step:
        wd_lib.save(mngr, state, step)
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
  try:
    config = ml_collections.ConfigDict(saved["config"])
    tx = make_optimizer(config)
  except (KeyError, AttributeError):
    raise HwnasError(f"{path}: not a config of this hwnas version (no "
                     "optimizer/train sections); retrain it") from None
  spec = netspec_lib.NetSpec.from_dict(saved["netspec"], where=str(path))
  abstract = nnx.eval_shape(lambda: Network(spec, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
  state = {"params": params, "rest": rest,
           "opt_state": jax.eval_shape(tx.init, params),
           "step": jax.ShapeDtypeStruct((), jnp.int32)}
  mngr = wd_lib.checkpoint_manager(workdir)
  if mngr.latest_step() is None:
    raise HwnasError(f"{workdir / 'checkpoints'}: no checkpoint; train first")
  try:
    state = wd_lib.restore_latest(mngr, state, fallback=False)
  finally:
    mngr.close()
  return nnx.merge(graphdef, state["params"], state["rest"])
