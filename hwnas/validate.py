"""Checks every input passes once, where it enters (flags, files, outputs).

- `load_json` / `load_yaml`: parse a user's file with its nesting depth and
  the length of its numbers bounded before the parser sees them (a deep
  `[[[...` would exhaust Python's stack, a 5,000-digit integer trips
  Python's int-conversion limit), YAML duplicate keys rejected (the last
  one would win silently) and a YAML file's size bounded (PyYAML builds
  ~50k nodes a second).
- `finite` / `integer`: one number in a documented range, of the right
  type (`True` is not 1, `3.0` is not a kernel size).
- `check_args` / `check_config`: every number of a parsed command line
  and of a run config in its documented range (`ARG_BOUNDS`,
  `CONFIG_RULES`).
- `check_out`: an output file may be written (absent, or `--overwrite`),
  checked before any work starts.
- `printable`: a user's string made safe to print on one line.

Every failure is one `HwnasError` line naming the file or flag and the fix.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import pathlib
import re
from typing import Any

from hwnas import errors

MAX_DEPTH = 64          # nesting of lists / mappings in a user's file
MAX_DIGITS = 100        # digits of one number in a user's file
MAX_YAML_BYTES = 2 << 20  # ~10 s of parsing at worst
_LONG_NUMBER = re.compile(rb"\d{%d,}" % (MAX_DIGITS + 1))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: object, limit: int = 200) -> str:
  """`text` on one line: control characters (newlines too) escaped, at most
  `limit` characters, so a user's string cannot forge an output line."""
  s = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))
  return s if len(s) <= limit else s[:limit - 3] + "..."


def _check_shape(text: str, where: str) -> None:
  """Refuses nesting deeper than MAX_DEPTH and numbers longer than
  MAX_DIGITS digits (bracket counts are upper bounds: a bracket inside a
  string counts too, which only a pathological file would notice)."""
  data = text.encode("utf-8", "replace")
  depth = deepest = 0
  for token in re.finditer(rb"[\[{]+|[\]}]+", data):
    t = token.group()
    if t[0] in b"[{":
      depth += len(t)
      deepest = max(deepest, depth)
    else:
      depth = max(0, depth - len(t))
  if deepest > MAX_DEPTH:
    raise errors.HwnasError(f"{where}: lists or mappings nested {deepest} "
                            f"deep (at most {MAX_DEPTH}); is this the right "
                            "file?")
  m = _LONG_NUMBER.search(data)
  if m:
    line = data.count(b"\n", 0, m.start()) + 1
    raise errors.HwnasError(f"{where}: line {line}: a number with "
                            f"{len(m.group())} digits (at most {MAX_DIGITS}); "
                            "give a value in range")


def load_json(text: str, where: str) -> Any:
  """`json.loads` of a user's file, shape-checked first (see above).

  Raises:
    HwnasError: invalid JSON, too deep, or a too-long number.
  """
  _check_shape(text, where)
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise errors.HwnasError(f"{where}: invalid JSON ({e})") from None
  except RecursionError:   # unreachable within MAX_DEPTH; kept as a net
    raise errors.HwnasError(f"{where}: nested too deeply") from None


class _DuplicateKey(Exception):
  pass


@functools.lru_cache(maxsize=1)
def _loader():
  import yaml  # pylint: disable=g-import-not-at-top
  base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

  class Loader(base):  # pylint: disable=too-many-ancestors
    """A safe loader that refuses a key given twice in one mapping."""

  def mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
      key = loader.construct_object(key_node, deep=True)
      try:
        if key in seen:
          raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key "
                              f"{printable(key)!r} is given twice")
        seen.add(key)
      except TypeError:
        pass   # an unhashable key: the safe constructor refuses it below
    return loader.construct_mapping(node, deep=True)

  Loader.add_constructor("tag:yaml.org,2002:map", mapping)
  return Loader


def load_yaml(text: str, where: str, *,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
  """`yaml.safe_load` of a user's file (libyaml when installed) with
  duplicate keys refused and size, depth and numbers bounded first.

  Raises:
    HwnasError: too big, too deep, a too-long number, a duplicate key or a
      YAML syntax error (one line naming `where` and the line).
  """
  import yaml  # pylint: disable=g-import-not-at-top
  size = len(text.encode("utf-8", "replace"))
  if size > max_bytes:
    raise errors.HwnasError(f"{where}: {size:,} bytes of YAML (at most "
                            f"{max_bytes:,}); is this the right file?")
  _check_shape(text, where)
  try:
    return yaml.load(text, Loader=_loader())  # noqa: S506 (a safe loader)
  except _DuplicateKey as e:
    raise errors.HwnasError(f"{where}: {e}; keep one") from None
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    raise errors.HwnasError(f"{where}: {at}YAML syntax error ({problem}); "
                            "fix the file's YAML") from None
  except RecursionError:
    raise errors.HwnasError(f"{where}: nested too deeply") from None


def finite(value: Any, what: str, *, low: float | None = None,
           high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> float:
  """`value` as a float if it is a finite number (not a bool) in range.

  Args:
    value: the value to check.
    what: how the message names it (`--reward-weight`,
      `config.optimizer.learning_rate`).
    low, high: bounds (None: unbounded); `*_open` excludes the bound.
  """
  ok = (not isinstance(value, bool) and isinstance(value, (int, float))
        and math.isfinite(value))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if not ok:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    rng = " and ".join(x for x in (lo, hi) if x)
    raise errors.HwnasError(f"{what} = {printable(value)!s}: give a finite "
                            f"number{' ' + rng if rng else ''}")
  return float(value)


def integer(value: Any, what: str, *, low: int | None = None,
            high: int | None = None) -> int:
  """`value` if it is an integer (not a bool, not 3.0) in [low, high]."""
  ok = not isinstance(value, bool) and isinstance(value, int)
  if ok and ((low is not None and value < low) or
             (high is not None and value > high)):
    ok = False
  if not ok:
    rng = (f" in [{low}, {high}]" if low is not None and high is not None
           else f" >= {low}" if low is not None else
           f" <= {high}" if high is not None else "")
    raise errors.HwnasError(f"{what} = {printable(value)!s}: give an integer"
                            f"{rng}")
  return value


MAX_SEED = 2**32 - 1   # numpy and JAX both take seeds in [0, 2**32)

# Bounds of the command line's integer flags, by argparse `dest` (a list
# value is checked item by item). Resolution and class counts are those of
# a space file (`hwnas.space.BOUNDS`, docs/spaces.md); the CLI checks these
# once after parsing (`check_args`). Float flags must all be finite.
ARG_BOUNDS = {
    "seed": (0, MAX_SEED), "resolution": (8, 1024), "resolutions": (8, 1024),
    "num_classes": (1, 100_000), "limit": (0, None), "ensemble": (1, 1024),
}


# Rules of a run config's values (supernet, standalone training), by dotted
# key: ("int", low, high), ("num", low, high, low_open) or ("in", options).
# A key a config does not have is skipped; counts that must be positive
# (steps, batch sizes) are checked by the runs themselves.
CONFIG_RULES = {
    "seed": ("int", 0, MAX_SEED), "num_classes": ("int", 0, 100_000),
    "val_fraction": ("num", 0.0, 0.99, False), "dropout": ("num", 0, 0.99,
                                                           False),
    "depthwise": ("in", ("auto", "lax", "shift")),
    "resolution": ("int", 0, 1024),
    "train.n_random": ("int", 0, 64), "train.kd_ratio": ("num", 0, 1e3, False),
    "train.label_smoothing": ("num", 0, 0.99, False),
    "train.resolutions": ("ints", 8, 1024),
    "optimizer.name": ("in", ("sgd", "adamw")),
    "optimizer.learning_rate": ("num", 0, 1e3, False),   # 0: frozen weights
    "optimizer.momentum": ("num", 0, 0.9999, False),
    "optimizer.b1": ("num", 0, 0.9999, False),
    "optimizer.b2": ("num", 0, 0.9999999, False),
    "optimizer.weight_decay": ("num", 0, 1e3, False),
    "optimizer.warmup_steps": ("int", 0, None),
    "optimizer.final_lr_ratio": ("num", 0, 1, False),
    "optimizer.grad_clip": ("num", 0, 1e9, False),
    "eval.bn_batches": ("int", 1, 10_000), "eval.val_batches": ("int", 0, None),
}


def check_config(config: Any) -> None:
  """Every value of a run config (`ml_collections.ConfigDict`) named in
  `CONFIG_RULES` of the right type and in range: one line naming the key,
  e.g. `config.optimizer.learning_rate = -0.5: give a finite number > 0`."""
  for key, rule in CONFIG_RULES.items():
    node = config
    try:
      for part in key.split("."):
        node = node[part]
    except (KeyError, TypeError, AttributeError):
      continue
    what = f"config.{key}"
    if key == "eval.bn_batches" and "standalone" in config:
      rule = ("int", 0, 10_000)   # a rank-check config: 0 = the supernet's
    if rule[0] == "int":
      integer(node, what, low=rule[1], high=rule[2])
    elif rule[0] == "ints":
      for i, v in enumerate(node):
        integer(v, f"{what}[{i}]", low=rule[1], high=rule[2])
    elif rule[0] == "num":
      finite(node, what, low=rule[1], high=rule[2], low_open=rule[3])
    elif node not in rule[1]:
      raise errors.HwnasError(f"{what} = {printable(node)!r}: use one of "
                              f"{', '.join(rule[1])}")


def check_args(args: argparse.Namespace) -> None:
  """Every number of a parsed command line in range (see `ARG_BOUNDS`):
  one error naming the flag, e.g. `--seed -1: give an integer in [0,
  4294967295]`."""
  for dest, value in vars(args).items():
    flag = "--" + dest.replace("_", "-")
    for v in value if isinstance(value, list) else [value]:
      if isinstance(v, float) and not math.isfinite(v):
        raise errors.HwnasError(f"{flag} {v}: give a finite number")
      if dest in ARG_BOUNDS and isinstance(v, int) and not isinstance(
          v, bool):
        low, high = ARG_BOUNDS[dest]
        if v < low or (high is not None and v > high):
          rng = f"in [{low}, {high}]" if high is not None else f">= {low}"
          raise errors.HwnasError(f"{flag} {v}: give an integer {rng}")


def check_out(path: str | os.PathLike[str], *, overwrite: bool = False,
              flag: str = "--out", what: str = "file") -> pathlib.Path:
  """An output file's path, checked before any work: its folder exists (or
  can be made: no file in the way) and it is not a directory; an existing
  file is refused unless `overwrite`.

  Raises:
    HwnasError: one line naming `flag` and the fix.
  """
  p = pathlib.Path(path)
  if p.is_dir():
    raise errors.HwnasError(f"{flag} {p}: is a directory; give a {what} "
                            "path inside it")
  for parent in p.parents:
    if parent.exists():
      if not parent.is_dir():
        raise errors.HwnasError(f"{flag} {p}: {parent} is a file, not a "
                                "folder; choose another path")
      break
  if p.exists() and not overwrite:
    raise errors.HwnasError(f"{flag} {p}: exists; pass --overwrite to "
                            "replace it, or choose another path")
  return p
