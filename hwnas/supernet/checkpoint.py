"""Supernet workdirs: Orbax checkpoints, config.json, metrics.jsonl.

A workdir holds `config.json` (the resolved run config plus the space path
and dataset info, enough to rebuild everything), `metrics.jsonl` (one JSON
row per logged step) and `checkpoints/<step>/` (Orbax `CheckpointManager`:
params, BatchNorm statistics, optimiser state and step). Each step records
the SHA-256 of its files (`hwnas.workdir.write_checksums`) after Orbax
commits it; restoring checks them, so a damaged checkpoint is never used
silently: resuming falls back to the newest intact step (with a warning),
eval and export fail with one line.

This module also builds a run's (abstract) train state, so that both the
training loop and the workdir loaders (`evaluate.load_workdir`) restore
through it without importing each other.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
from typing import Any

import jax
import ml_collections
from flax import nnx

from hwnas import errors
from hwnas import workdir as workdir_lib
from hwnas.space import SearchSpace
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib


def manager(workdir: str | os.PathLike[str], *, max_to_keep: int = 2):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(workdir).absolute() / "checkpoints"
  return ocp.CheckpointManager(
      path, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 create=True))


def step_dir(mgr, step: int) -> pathlib.Path:
  return pathlib.Path(str(mgr.directory)) / str(step)


def save(mgr, step: int, state: Any) -> None:
  """Saves `state` at `step`, then records its checksums (hwnas's commit
  marker: a step without them is incomplete)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  mgr.save(step, args=ocp.args.StandardSave(state), force=True)
  mgr.wait_until_finished()
  if jax.process_index() == 0:
    workdir_lib.write_checksums(step_dir(mgr, step))


def _restore_orbax(mgr, abstract_state: Any, step: int, workdir: Any) -> Any:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  workdir_lib.ignore_closed_event_loop()
  try:
    return mgr.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as e:  # orbax raises many types for damaged files
    raise errors.HwnasError(
        f"{pathlib.Path(workdir) / 'checkpoints' / str(step)}: corrupt or "
        f"incompatible checkpoint ({type(e).__name__}); delete it or use "
        "another --workdir") from None


def check_step(mgr, step: int, *, workdir: Any = "") -> str | None:
  """What is wrong with checkpoint `step` (None: intact).

  Checkpoints of an older hwnas, written before checksums were recorded
  (no step of the workdir has them), are accepted as they are.
  """
  steps = mgr.all_steps()
  if not any(workdir_lib.has_checksums(step_dir(mgr, s)) for s in steps):
    return None
  return workdir_lib.verify(step_dir(mgr, step))


def _set_aside(mgr, step: int, workdir: Any) -> pathlib.Path:
  """Moves a damaged step out of `checkpoints/` (kept for inspection)."""
  src = step_dir(mgr, step)
  dst = pathlib.Path(workdir).absolute() / "checkpoints_damaged" / str(step)
  dst.parent.mkdir(parents=True, exist_ok=True)
  if dst.exists():
    shutil.rmtree(dst)
  shutil.move(str(src), str(dst))
  mgr.reload()
  return dst


def restore(mgr, abstract_state: Any, *, workdir: Any = "",
            fallback: bool = True) -> tuple[Any, int]:
  """(state, step) of the newest intact checkpoint, or (None, 0) if none.

  Every step is checked against its recorded checksums first. With
  `fallback` (resuming a run) a damaged or incomplete newer step is moved
  to `checkpoints_damaged/` with a warning and the next older one is used;
  without it (eval, export) a damaged latest step is an error.

  Raises:
    HwnasError: the checkpoint exists but cannot be read, or (without
      `fallback`) the latest one is damaged, or every one is.
  """
  workdir = workdir or pathlib.Path(str(mgr.directory)).parent
  steps = sorted(mgr.all_steps(), reverse=True)
  if not steps:
    return None, 0
  damaged = []
  for step in steps:
    problem = check_step(mgr, step, workdir=workdir)
    if problem is None:
      state = _restore_orbax(mgr, abstract_state, step, workdir)
      for s, why in damaged:
        dst = _set_aside(mgr, s, workdir)
        print(f"warning: checkpoint {s} is damaged ({why}); moved it to "
              f"{dst} and resumed from step {step}", file=sys.stderr,
              flush=True)
      return state, step
    where = pathlib.Path(workdir) / "checkpoints" / str(step)
    if not fallback:
      raise errors.HwnasError(
          f"{where}: checkpoint {problem}; resume the training run (rerun "
          "its command: it falls back to the newest intact checkpoint) or "
          "use another workdir")
    damaged.append((step, problem))
  raise errors.HwnasError(
      f"{pathlib.Path(workdir) / 'checkpoints'}: every checkpoint is damaged "
      f"({'; '.join(f'{s}: {w}' for s, w in damaged)}); delete the folder to "
      "train from scratch")


def restore_step(mgr, abstract_state: Any, step: int, *,
                 workdir: Any = "") -> Any:
  """The state saved at `step` (HwnasError naming the path if it is
  missing, damaged or unreadable)."""
  where = pathlib.Path(workdir) / "checkpoints" / str(step)
  if step not in mgr.all_steps():
    raise errors.HwnasError(
        f"{where}: no such checkpoint; saved steps: "
        f"{sorted(mgr.all_steps())}")
  problem = check_step(mgr, step, workdir=workdir)
  if problem is not None:
    raise errors.HwnasError(f"{where}: checkpoint {problem}; use another "
                            "step or retrain")
  return _restore_orbax(mgr, abstract_state, step, workdir)


# -------------------------------------------------- a run's train state --


def build(space: SearchSpace, config: ml_collections.ConfigDict,
          num_classes: int):
  """(graphdef, initial state, optimiser) of a run."""
  supernet = model_lib.Supernet(space, rngs=nnx.Rngs(config.seed),
                                num_classes=num_classes,
                                depthwise=config.depthwise,
                                dropout=config.dropout,
                                kernel_transform=bool(
                                    config.get("kernel_transform", False)))
  tx = train_lib.make_optimizer(config, int(config.train.steps))
  graphdef, state = train_lib.create_state(supernet, tx)
  return graphdef, state, tx


def abstract_state(space: SearchSpace, config: ml_collections.ConfigDict,
                   num_classes: int):
  """(graphdef, state) of a run, for restoring a checkpoint into."""
  graphdef, state, _ = build(space, config, num_classes)
  return graphdef, state


def restore_checkpoint(workdir: str | os.PathLike[str], abstract: Any, *,
                       step: int | None = None) -> Any:
  """The state of checkpoint `step` (default: latest) or None if none.

  For eval and export: a damaged checkpoint is an error, never a fallback.

  Raises:
    HwnasError: one line naming the checkpoint path if it is damaged,
      incomplete or unreadable.
  """
  mgr = manager(workdir)
  try:
    if step is None:
      state, _ = restore(mgr, abstract, workdir=workdir, fallback=False)
      return state
    return restore_step(mgr, abstract, step, workdir=workdir)
  finally:
    mgr.close()


def write_config(workdir: str | os.PathLike[str],
                 config: ml_collections.ConfigDict,
                 extra: dict[str, Any]) -> None:
  if jax.process_index() != 0:
    return
  d = {"config": json.loads(config.to_json()), **extra}
  pathlib.Path(workdir, "config.json").write_text(json.dumps(d, indent=1))


def read_config(workdir: str | os.PathLike[str]) -> dict[str, Any]:
  p = pathlib.Path(workdir) / "config.json"
  if not p.is_file():
    raise errors.HwnasError(f"{p}: missing; not a supernet workdir (train one "
                            "with `hwnas supernet train --workdir ...`)")
  try:
    return json.loads(p.read_text())
  except json.JSONDecodeError as e:
    raise errors.HwnasError(f"{p}: invalid JSON ({e}); re-run training or "
                            "restore the file") from None


def append_metrics(workdir: str | os.PathLike[str], row: dict[str, Any]
                   ) -> None:
  if jax.process_index() != 0:
    return
  with open(pathlib.Path(workdir) / "metrics.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
