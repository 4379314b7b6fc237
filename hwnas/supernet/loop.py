"""The supernet training run: data, mesh, jitted steps, logging, resume.

`train(config, workdir)` is what `hwnas supernet train` calls. It writes
config.json, appends metrics.jsonl, checkpoints with Orbax every
`config.train.checkpoint_every` steps and at the end, and resumes from the
latest checkpoint of `workdir` automatically. The step's randomness is a
function of (seed, step) (architectures: `np.random.default_rng([seed,
step])`; keys: `fold_in(key, step)`; data: `batches(..., start_step=step)`),
so a resumed run continues the same run. The step of each resolution is
loaded from the compiled-code cache (`hwnas.aot_cache`) where it is on, so
a warm start neither compiles nor traces it.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from hwnas import aot_cache
from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.mesh import data_mesh
from hwnas import space as space_lib
from hwnas import workdir as workdir_lib
from hwnas.supernet import channels, checkpoint
from hwnas.supernet.checkpoint import build
from hwnas.supernet.evaluate import EvalData, evaluate as evaluate_archs
from hwnas.supernet import model as model_lib, train as train_lib


def _progress(enabled: bool):
  from hwnas import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from rich import progress as rp  # pylint: disable=g-import-not-at-top
  return progress_lib.make(enabled, lambda: rp.Progress(
      rp.TextColumn("[bold]supernet"), rp.BarColumn(), rp.MofNCompleteColumn(),
      rp.TextColumn("loss {task.fields[loss]:.3f}"),
      rp.TextColumn("{task.fields[ips]:.0f} img/s"),
      rp.TimeRemainingColumn(), rp.TextColumn("{task.fields[status]}"),
      disable=not enabled))


def check_config(config: ml_collections.ConfigDict) -> None:
  """One line for a count that must be positive (steps, batch sizes, ...)."""
  for key in ("train.steps", "train.batch_size", "train.log_every",
              "train.checkpoint_every", "eval.batch_size"):
    node = config
    for part in key.split("."):
      node = node[part]
    if isinstance(node, bool) or not isinstance(node, int) or node < 1:
      raise errors.HwnasError(
          f"config.{key} = {node!r}: must be a positive integer; fix it "
          f"with --set {key}=N" + (" or --steps N" if key == "train.steps"
                                   else ""))


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike[str],
          *, progress: bool = True) -> dict[str, Any]:
  """Trains (or resumes) a supernet; returns the final metrics row.

  The final row holds `eval/top1_largest` and `eval/top1_smallest`: val
  accuracy of the largest and smallest subnets after BN recalibration.
  The workdir is locked while training (a second process on it fails at
  once); a run that fails before writing anything leaves no workdir.
  """
  check_config(config)
  space = space_lib.load(config.space)
  with workdir_lib.lock(workdir, enabled=jax.process_index() == 0):
    return _train(config, pathlib.Path(workdir), space, progress)


def _train(config, workdir: pathlib.Path, space, progress: bool
           ) -> dict[str, Any]:
  """`train` inside the workdir lock."""
  from hwnas import data as data_lib  # pylint: disable=g-import-not-at-top
  dataset = data_lib.load_for(config)  # the run's data and val hold-out
  info = dataset.info
  data_lib.check_input(info, kind=space.kind, channels=space.input_channels,
                       what=f"space {space.path or space.name}")
  if config.num_classes and config.num_classes < info.num_classes:
    raise errors.HwnasError(
        f"config.num_classes = {config.num_classes}: dataset {info.name} has "
        f"{info.num_classes} classes; use 0 (the dataset's) or at least "
        f"{info.num_classes}")
  tc, steps = config.train, int(config.train.steps)
  resolutions = tuple(tc.resolutions) or space.resolutions
  for r in resolutions:
    if r not in space.resolutions:
      raise errors.HwnasError(f"config.train.resolutions: {r} is not a "
                              f"resolution of space {space.name}")
  num_classes = config.num_classes or info.num_classes
  graphdef, state, tx = build(space, config, num_classes)
  mgr = checkpoint.manager(workdir)
  try:
    return _run(config, workdir, space, progress, dataset, graphdef, state,
                tx, mgr, resolutions)
  finally:
    mgr.close()  # stops Orbax's threads (no tracebacks at exit on errors)


def _run(config, workdir, space, progress, dataset, graphdef, state, tx, mgr,
         resolutions) -> dict[str, Any]:
  """The training steps of `train` (checkpoint manager open)."""
  from hwnas import data as data_lib  # pylint: disable=g-import-not-at-top
  info, tc, steps = dataset.info, config.train, int(config.train.steps)
  num_classes = config.num_classes or info.num_classes
  restored, start = checkpoint.restore(mgr, state, workdir=workdir)
  state = restored if restored is not None else state
  checkpoint.write_config(workdir, config, {
      "space_path": space.path, "space": space.name,
      "num_classes": num_classes, "dataset": info.to_json()})
  if jax.process_index() == 0:
    space_lib.dump(space, workdir / "space.yaml")

  mesh = data_mesh(tc.batch_size, what="config.train.batch_size")
  state = jax.device_put(state, NamedSharding(mesh, P()))
  steps_fn = {r: train_lib.jit_train_step(
      graphdef, tx, resolution=r, label_smoothing=tc.label_smoothing,
      kd_ratio=tc.kd_ratio, unroll=tc.unroll)
      for r in resolutions}
  schedule = train_lib.make_schedule(config, steps)
  it = data_lib.batches(
      dataset, "train", batch_size=tc.batch_size,
      resolution=max(resolutions), seed=config.seed, augment=tc.augment,
      start_step=start, process_index=jax.process_index(),
      process_count=jax.process_count())
  key = jax.random.fold_in(jax.random.key(config.seed), 1)
  metrics, t0, seen, compiled = None, time.time(), 0, {}
  first_step_s = None
  if not progress and start < steps:
    print("compiling (first step)…", flush=True)
  with _progress(progress) as bar:
    task = bar.add_task("train", total=steps, completed=start, loss=0.0,
                        ips=0.0, status="")
    for step in range(start, steps):
      rng = np.random.default_rng([config.seed, step])
      res = resolutions[int(rng.integers(len(resolutions)))]
      phase = (train_lib.shrink_phase(step, steps, tc.shrink_schedule)
               if tc.progressive_shrinking else 3)
      if (tc.progressive_shrinking and tc.get("sort_channels", True)
          and step > 0 and phase >= 3 > train_lib.shrink_phase(
              step - 1, steps, tc.shrink_schedule)):
        # Entering the expansion phase: importance-sorted channels (a pure
        # function of the state at this step, so a resumed run repeats it).
        state = jax.device_put(
            channels.sort_channels(space, jax.device_get(state)),
            NamedSharding(mesh, P()))
      archs = train_lib.sandwich(rng, space, n_random=tc.n_random,
                                 resolution=res, phase=phase)
      batch = data_lib.shard_batch(next(it), mesh)
      args = (state, batch, jax.random.fold_in(key, step),
              model_lib.stack_arch_arrays(space, archs))
      if res not in compiled:
        bar.update(task, status=f"compiling (step at {res} px)…")
        compiled[res], source = aot_cache.load_or_compile(
            "supernet_step", steps_fn[res], args,
            key_parts=step_key_parts(config, space, graphdef, res))
        if source == "loaded" and not progress:
          print(f"loaded the compiled step at {res} px from "
                f"{aot_cache.aot_dir()}", flush=True)
        bar.update(task, status="")
      state, metrics = compiled[res](*args)
      if first_step_s is None:
        # Compile + one step (seconds since the loop began): what the
        # compilation caches save (hwnas.compile_cache, hwnas.aot_cache).
        jax.block_until_ready(metrics)
        first_step_s = time.time() - t0
      seen += tc.batch_size
      done = step + 1
      if done % tc.log_every == 0 or done == steps:
        row = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not all(np.isfinite(v) for v in row.values()):
          raise errors.HwnasError(
              f"{workdir}: training diverged at step {done} ({row}); lower "
              "config.optimizer.learning_rate or add grad_clip")
        ips = seen / max(time.time() - t0, 1e-9)
        row.update({"step": done, "train/lr": float(schedule(step)),
                    "train/images_per_s": ips, "time": time.time()})
        if first_step_s:
          row["train/first_step_s"], first_step_s = first_step_s, 0.0
        checkpoint.append_metrics(workdir, row)
        bar.update(task, loss=row["train/loss"], ips=ips)
        t0, seen = time.time(), 0
      if done % tc.checkpoint_every == 0 or done == steps:
        checkpoint.save(mgr, done, state)
      bar.update(task, completed=done)
  final = {"step": steps}
  final.update(final_eval(config, state, graphdef, space, dataset))
  checkpoint.append_metrics(workdir, final)
  return final


def step_key_parts(config: ml_collections.ConfigDict, space, graphdef,
                   resolution: int) -> dict[str, Any]:
  """What the jitted step of `resolution` closes over, for its entry in
  the compiled-code cache (`hwnas.aot_cache`): the config (its file and
  data paths aside: the space's contents and the batch's shapes stand for
  them), the space and the supernet's graph."""
  settings = config.to_dict()
  for name in ("space", "data_dir", "manual_dir"):
    settings.pop(name, None)
  return {"config": settings, "space": space.to_dict(),
          "graphdef": aot_cache.graph_digest(graphdef),
          "resolution": int(resolution)}


def final_eval(config, state, graphdef, space, dataset) -> dict[str, float]:
  """Val accuracy of the largest and smallest subnets (BN recalibrated)."""
  e = config.eval
  big, small = arch_lib.largest(space), arch_lib.smallest(space)
  data = EvalData(dataset, batch_size=e.batch_size, bn_batches=e.bn_batches,
                  val_batches=e.val_batches, seed=config.seed)
  accs = evaluate_archs(state, [big, small], data, graphdef=graphdef,
                        space=space)
  return {"eval/top1_largest": accs[0], "eval/top1_smallest": accs[1]}
