"""Loading run configs: a variant or a user's file, then `key=value`
overrides.

`load(spec)` picks the `ConfigDict` of `--config` (a variant of a config
module, by default `hwnas/configs/supernet.py`, or `FILE.py[:VARIANT]` with
`get_config(arg)`); `override(config, ["a.b=v", ...])` applies the
command line's `--set a.b=v` (values parsed as YAML scalars). Both raise
`HwnasError` with one line naming the bad value.
"""

from __future__ import annotations

import importlib.util
import pathlib
import types
from typing import Sequence

from hwnas import errors
from hwnas.configs import supernet as supernet_config


def _space_name(space: str | None) -> str:
  return pathlib.Path(space).stem if space else ""


def load(spec: str | None, *, space: str | None = None,
         module: types.ModuleType = supernet_config):
  """The `ConfigDict` of `--config` (variant or FILE.py[:VARIANT]).

  Without `spec`: the `tiny` variant for the tiny space, otherwise the
  default variant of `module` (a config module of `hwnas.configs`; the
  supernet's unless given).
  """
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


def _keys(node, prefix: str = "") -> list[str]:
  """Every dotted key of a (nested) ConfigDict."""
  out = []
  for k in node.keys():
    full = f"{prefix}{k}"
    out.append(full)
    child = node[k]
    if hasattr(child, "keys") and callable(child.keys):
      out += _keys(child, full + ".")
  return out


def _did_you_mean(config, key: str) -> str:
  import difflib  # pylint: disable=g-import-not-at-top
  keys = _keys(config)
  close = difflib.get_close_matches(key, keys, n=1, cutoff=0.7)
  if not close:  # a typo in the last part only: compare leaves
    leaf = key.rsplit(".", 1)[-1]
    close = [k for k in keys if difflib.get_close_matches(
        leaf, [k.rsplit(".", 1)[-1]], n=1, cutoff=0.75)][:1]
  return f"; did you mean {close[0]!r}?" if close \
      else ""


def _module_name(source: str) -> str:
  """'hwnas/configs/train.py' or 'hwnas.configs.train' -> the module name
  (what a pip install has, unlike a checkout path)."""
  return source.removesuffix(".py").replace("/", ".")


def override(config, items: Sequence[str], *,
             source: str = "hwnas.configs.supernet"):
  """Applies `key.sub=value` overrides (YAML values) in place; `source`
  names the config module an unknown key's error points to (with the
  closest existing keys)."""
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
      raise errors.HwnasError(
          f"--set {item}: no config key {key.strip()!r}"
          f"{_did_you_mean(config, key.strip())}; the keys are listed by "
          f"`python -c \"import {_module_name(source)} as c; "
          "print(c.get_config())\"`") from None
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
