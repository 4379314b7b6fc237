"""The supernet side of `export_arch`: a standalone network with weights
inherited from a trained supernet and recalibrated BatchNorm."""

from __future__ import annotations

import os
from typing import Any

from hwnas import errors


def build(arch_or_path, supernet_dir: str | os.PathLike[str], options
          ) -> tuple[Any, Any, dict[str, Any], Any, dict[str, Any] | None]:
  """Returns `(model, arch, source, dataset, bn_recalibration)`.

  Raises:
    HwnasError: the supernet package is missing, the checkpoint is missing
      or corrupt, or the architecture is not in the supernet's space.
  """
  try:
    from hwnas import supernet  # pylint: disable=g-import-not-at-top,unused-import
  except ModuleNotFoundError as e:
    if e.name != "hwnas.supernet":
      raise
    raise errors.HwnasError(
        f"{supernet_dir}: this hwnas build has no supernet support "
        "(hwnas.supernet); fix: export with --weights DIR or random "
        "initialisation instead of --supernet") from None
  raise errors.HwnasError(
      f"{supernet_dir}: exporting from a supernet checkpoint is not wired to "
      "hwnas.supernet in this build; fix: use --weights or random init")
