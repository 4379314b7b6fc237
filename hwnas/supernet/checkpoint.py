"""Supernet workdirs: Orbax checkpoints, config.json, metrics.jsonl.

A workdir holds `config.json` (the resolved run config plus the space path
and dataset info, enough to rebuild everything), `metrics.jsonl` (one JSON
row per logged step) and `checkpoints/<step>/` (Orbax `CheckpointManager`:
params, BatchNorm statistics, optimiser state and step).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import ml_collections

from hwnas import errors


def manager(workdir: str | os.PathLike[str], *, max_to_keep: int = 2):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(workdir).absolute() / "checkpoints"
  return ocp.CheckpointManager(
      path, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 create=True))


def save(mgr, step: int, state: Any) -> None:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  mgr.save(step, args=ocp.args.StandardSave(state), force=True)
  mgr.wait_until_finished()


def restore(mgr, abstract_state: Any, *, workdir: Any = "") -> tuple[Any, int]:
  """(state, step) of the latest checkpoint, or (None, 0) if there is none.

  Raises:
    HwnasError: the checkpoint exists but cannot be read.
  """
  step = mgr.latest_step()
  if step is None:
    return None, 0
  return restore_step(mgr, abstract_state, step, workdir=workdir), step


def restore_step(mgr, abstract_state: Any, step: int, *,
                 workdir: Any = "") -> Any:
  """The state saved at `step` (HwnasError naming the path if unreadable)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  try:
    state = mgr.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as e:  # orbax raises many types for damaged files
    raise errors.HwnasError(
        f"{pathlib.Path(workdir) / 'checkpoints' / str(step)}: corrupt or "
        f"incompatible checkpoint ({type(e).__name__}); delete it or use "
        "another --workdir") from None
  return state


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
