"""Saving and loading an exported standalone Flax model.

An export directory holds `netspec.json` (the exact network), `arch.json`
(the architecture choice, when it came from a search space) and `flax/`, an
Orbax checkpoint of the model's NNX state as a pure dict. `load_exported`
rebuilds the `Network` from the directory alone.
"""

from __future__ import annotations

import os
import pathlib

import jax

from hwnas import errors, netspec, workdir
from hwnas.netspec import NetSpec

FLAX_DIR = "flax"
NETSPEC_FILE = "netspec.json"
ARCH_FILE = "arch.json"


def save_flax(model, directory: str | os.PathLike[str]) -> pathlib.Path:
  """Writes the NNX state of `model` to `<directory>/flax` with Orbax."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(directory).absolute() / FLAX_DIR
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, nnx.to_pure_dict(nnx.state(model)))
  checkpointer.wait_until_finished()
  checkpointer.close()
  workdir.write_checksums(path)  # verified by restore_flax
  return path


def restore_flax(model, checkpoint: str | os.PathLike[str]) -> None:
  """Restores an Orbax checkpoint written by `save_flax` into `model`.

  Raises:
    HwnasError: the checkpoint is missing, corrupt or of another network.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(checkpoint).absolute()
  if not path.is_dir():
    raise errors.HwnasError(f"{path}: no such Flax checkpoint directory")
  problem = workdir.verify(path) if workdir.has_checksums(path) else None
  if problem is not None:
    raise errors.HwnasError(f"{path}: Flax checkpoint {problem}; export "
                            "again (`hwnas export`)")
  state = nnx.state(model)
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        nnx.to_pure_dict(state))
  checkpointer = ocp.StandardCheckpointer()
  workdir.ignore_closed_event_loop()
  try:
    restored = checkpointer.restore(path, target)
  except Exception as e:  # orbax raises many types for bad checkpoints
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    raise errors.HwnasError(
        f"{path}: cannot restore the Flax checkpoint ({first}); fix: point "
        "to an export directory written by `hwnas export`") from None
  finally:
    checkpointer.close()
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(model, state)


def load_spec(directory: str | os.PathLike[str]) -> NetSpec:
  """The network spec of an export directory."""
  d = pathlib.Path(directory)
  if not (d / NETSPEC_FILE).is_file():
    raise errors.HwnasError(f"{d}: not an export directory (no "
                            f"{NETSPEC_FILE}); fix: run `hwnas export` first")
  return netspec.load(d / NETSPEC_FILE)


def load_exported(directory: str | os.PathLike[str], *,
                  depthwise: str = "auto"):
  """Rebuilds the exported standalone model from an export directory.

  Args:
    directory: a directory written by `hwnas export` with the `flax` format.
    depthwise: depthwise-conv implementation of the rebuilt model ('auto'
      for fast CPU training/eval, 'lax' for a further TFLite conversion).

  Returns:
    `(network, spec)`: the `hwnas.models.Network` with the exported weights
    and BatchNorm statistics, and its `NetSpec`.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network  # pylint: disable=g-import-not-at-top
  spec = load_spec(directory)
  model = Network(spec, rngs=nnx.Rngs(0), depthwise=depthwise)
  restore_flax(model, pathlib.Path(directory) / FLAX_DIR)
  return model, spec
