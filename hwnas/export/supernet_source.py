"""The supernet side of `export_arch`: restore a `hwnas supernet train`
workdir (`hwnas.supernet.load_workdir`: config.json + the latest Orbax
checkpoint, one-line HwnasError when either is missing or corrupt) as the
space, the supernet with its trained weights and the run config.
`export_arch` then takes the architecture's standalone network out of it
(`hwnas.supernet.extract.subnet`: exact shapes, centre-cropped
kernels, leading channels) and the dataset from the run config
(`hwnas.data.load_for`: the training run's validation hold-out).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from hwnas import errors


def load(supernet_dir: str | os.PathLike[str]) -> tuple[Any, Any, Any]:
  """`(space, Supernet with trained weights, run config)` of a workdir."""
  workdir = pathlib.Path(supernet_dir)
  # load_workdir checks config.json and the checkpoint itself; these two
  # come first so that a wrong path reads as one, and so that Orbax's
  # manager does not create checkpoints/ in a directory that has none.
  if not workdir.is_dir():
    raise errors.HwnasError(f"{workdir}: no such supernet workdir; fix: pass "
                            "the --workdir of `hwnas supernet train`")
  if not (workdir / "checkpoints").is_dir():
    raise errors.HwnasError(f"{workdir / 'checkpoints'}: missing; train the "
                            "supernet first")
  from hwnas.supernet import load_workdir  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import train as train_lib  # pylint: disable=g-import-not-at-top
  try:
    space, graphdef, state, config = load_workdir(workdir)
  except (AttributeError, KeyError, TypeError) as e:
    # ml_collections raises AttributeError for a key config.json lacks.
    raise errors.HwnasError(
        f"{workdir / 'config.json'}: incomplete run config ({e}); fix: "
        "pass a workdir written by `hwnas supernet train`") from None
  return space, train_lib.merge(graphdef, state), config

