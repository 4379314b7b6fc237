"""What a standalone training workdir holds, and how a run resumes from it.

`hwnas.train_standalone` writes, in `WORKDIR`:

- `config.json`: the resolved config (`hwnas/configs/train.py`), the network
  spec, the architecture choice, the dataset's info and the device count;
  a later run in the same workdir must agree with it on every setting that
  changes what is trained (`RUN_IDENTITY`);
- `metrics.jsonl`: one JSON row per logged step (`split/name` keys), cut
  back to the checkpoint a resumed run starts from;
- `checkpoints/`: an Orbax `CheckpointManager` (the two latest steps);
- `netspec.json` and, at the end, `result.json`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax

from hwnas.errors import HwnasError

State = dict[str, Any]

# Config keys (dotted) whose change in an existing workdir would silently
# make a different run; `train.steps` may grow (a longer run resumes).
RUN_IDENTITY = ("dataset", "val_fraction", "seed", "init", "resolution",
                "train.batch_size", "train.label_smoothing", "train.augment",
                "optimizer")


def _get(tree: dict[str, Any], dotted: str) -> Any:
  for part in dotted.split("."):
    tree = tree[part]
  return tree


def check_workdir(workdir: pathlib.Path, resolved: dict[str, Any]) -> None:
  """Refuses to resume a workdir that holds a different run.

  Args:
    workdir: The run directory.
    resolved: The `config.json` this run would write (`config`, `netspec`).

  Raises:
    HwnasError: One line naming the differing key and the fix.
  """
  path = workdir / "config.json"
  if not path.is_file():
    return
  old = json.loads(path.read_text())
  for key in RUN_IDENTITY:
    try:
      a = _get(old["config"], key)
    except (KeyError, TypeError):
      raise HwnasError(f"{path}: no config key {key!r} (written by another "
                       "hwnas version?); use a new --workdir") from None
    b = _get(resolved["config"], key)
    if a != b:
      raise HwnasError(f"{path}: {key} is {a!r} there but {b!r} now; use a "
                       "new --workdir or the same settings to resume")
  if old["netspec"] != resolved["netspec"]:
    raise HwnasError(f"{path}: netspec: the workdir trains "
                     f"{old['netspec']['name']}; use a new --workdir")


def truncate_metrics(path: pathlib.Path, step: int) -> None:
  """Drops rows logged after the checkpoint a run resumes from."""
  if not path.is_file():
    return
  rows = [l for l in path.read_text().splitlines() if l.strip()]
  keep = [l for l in rows if json.loads(l)["step"] <= step]
  if len(keep) != len(rows):
    path.write_text("".join(l + "\n" for l in keep))


def append(path: pathlib.Path, row: dict[str, Any]) -> None:
  """Appends one metrics row (process 0 only)."""
  if jax.process_index() == 0:
    with path.open("a") as f:
      f.write(json.dumps(row) + "\n")


def checkpoint_manager(workdir: pathlib.Path):
  """The Orbax manager of `WORKDIR/checkpoints` (keeps the two latest)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(
      (workdir / "checkpoints").absolute(),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def restore_latest(mngr, state: State, *, fallback: bool = True) -> State:
  """The newest intact checkpoint restored into `state`'s structure, or
  `state` if there is none. Checksums are verified
  (`hwnas.supernet.checkpoint.restore`): with `fallback` a damaged latest
  step gives way to the newest intact one, with a warning; without it a
  damaged step is one error line."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored, _ = checkpoint.restore(mngr, abstract, fallback=fallback)
  return state if restored is None else restored


def save(mngr, state: State, step: int) -> None:
  """Checkpoints `state` at `step` unless that step is already saved; waits
  for it, then records its checksums (the commit marker hwnas checks)."""
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  if mngr.latest_step() != step:
    checkpoint.save(mngr, step, state)
