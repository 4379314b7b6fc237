"""The supernet side of `export_arch`: restore a `hwnas supernet train`
workdir and pick the architecture's standalone network out of it.

Uses the supernet package's own loaders (`hwnas.supernet.load_workdir`:
config.json + the latest Orbax checkpoint, one-line HwnasError when either
is missing or corrupt) and `hwnas.supernet.extract.subnet` (exact shapes,
centre-cropped kernels, leading channels); the dataset is the one the
supernet was trained on, with the same validation hold-out, unless the
caller names another.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from hwnas import errors


def _check_workdir(workdir: pathlib.Path) -> None:
  if not workdir.is_dir():
    raise errors.HwnasError(f"{workdir}: no such supernet workdir; fix: pass "
                            "the --workdir of `hwnas supernet train`")
  if not (workdir / "config.json").is_file():
    raise errors.HwnasError(f"{workdir / 'config.json'}: missing; not a "
                            "supernet workdir (train one with `hwnas "
                            "supernet train --workdir ...`)")
  if not (workdir / "checkpoints").is_dir():
    raise errors.HwnasError(f"{workdir / 'checkpoints'}: missing; train the "
                            "supernet first")


def load(supernet_dir: str | os.PathLike[str]) -> tuple[Any, Any, Any]:
  """`(space, Supernet with trained weights, run config)` of a workdir."""
  workdir = pathlib.Path(supernet_dir)
  _check_workdir(workdir)
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


def load_dataset(config, name: str | None):
  """The supernet's dataset (same validation hold-out), or `name`."""
  from hwnas import data  # pylint: disable=g-import-not-at-top
  return data.load(name or config.dataset,
                   val_fraction=float(config.get("val_fraction", 0.1)),
                   seed=int(config.get("seed", 0)),
                   data_dir=config.get("data_dir") or None,
                   manual_dir=config.get("manual_dir") or None)
