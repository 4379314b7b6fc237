"""Loading run configs: a variant or a user's file, then `key=value`
overrides.

`load(spec)` picks the `ConfigDict` of `--config` (a variant of a config
module, by default `hwnas/configs/supernet.py`, or `FILE.py[:VARIANT]` with
`get_config(arg)`); `override(config, ["a.b=v", ...])` applies the
command line's `--set a.b=v` (values parsed as YAML scalars). Both raise
`HwnasError` with one line naming the bad value.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
from typing import Sequence

from hwnas import errors


def _space_name(space: str | None) -> str:
  return pathlib.Path(space).stem if space else ""


def load(spec: str | None, *, space: str | None = None,
         module: str = "hwnas.configs.supernet"):
  """The `ConfigDict` of `--config` (variant or FILE.py[:VARIANT]).

  Without `spec`: the `tiny` variant for the tiny space, otherwise the
  default variant of `module` (the supernet's config unless named).
  """
  module = importlib.import_module(module)
  arg = spec
  path, _, variant = (spec or "").partition(":")
  if path.endswith(".py"):
    p = pathlib.Path(path)
    if not p.is_file():
      raise errors.HwnasError(f"--config {spec}: no such file {p}")
    mspec = importlib.util.spec_from_file_location(f"_hwnas_cfg_{p.stem}", p)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      raise errors.HwnasError(f"--config {spec}: {p} defines no "
                              "get_config(arg)")
    arg = variant or None
  elif spec is None and _space_name(space) == "tiny":
    arg = "tiny"
  try:
    return module.get_config(arg)
  except ValueError as e:
    raise errors.HwnasError(f"--config {spec}: {e}") from None


def override(config, items: Sequence[str], *,
             source: str = "hwnas/configs/supernet.py"):
  """Applies `key.sub=value` overrides (YAML values) in place; `source`
  names the config file an unknown key's error points to."""
  import yaml  # pylint: disable=g-import-not-at-top
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
      raise errors.HwnasError(f"--set {item}: use KEY=VALUE, e.g. "
                              "optimizer.learning_rate=0.05")
    *parents, leaf = key.strip().split(".")
    node = config
    try:
      for p in parents:
        node = node[p]
      old = node[leaf]
    except (KeyError, TypeError, AttributeError):
      raise errors.HwnasError(f"--set {item}: no config key {key.strip()!r};"
                              f" see {source}") from None
    try:
      value = yaml.safe_load(text)
    except yaml.YAMLError:
      value = text
    if isinstance(old, str) and not isinstance(value, str):
      value = text
    if isinstance(old, tuple):
      value = tuple(value) if isinstance(value, list) else (
          (value,) if value is not None else ())
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise errors.HwnasError(f"--set {item}: {e}") from None
  from hwnas import validate  # pylint: disable=g-import-not-at-top
  validate.check_config(config)   # the resolved config, once
  return config
