"""Search spaces: load and validate `search_spaces/*.yaml` into frozen values.

A space file is declarative data (nothing in it is executed):

```yaml
format: 1                      # schema version of this file format
name: tiny
version: 1                     # version of this space's contents
description: a two-stage space for tests
input_channels: 3
num_classes: 10
channel_divisor: 8             # mid/SE channels round to multiples of this
se_ratio: 0.25                 # SE squeeze channels = mid * se_ratio
resolutions: [24, 32]
stem: {channels: 8, kernel: 3, stride: 2, activation: relu}
stages:
  - widths: [8, 16]            # output channel choices; or
    # width_multipliers: [0.75, 1.0] with base_width: 16
    stride: 1
    depths: [1, 2]
    types: [ibn, fused_ibn]    # ibn | fused_ibn | skip (not 1st block)
    kernels: [3, 5]
    expansions: [2, 4]         # mid = make_divisible(in * expansion)
    se: [false, true]
    activations: [relu]        # relu | relu6 | hswish | swish
    ops: [mult, shift]         # optional; mult (default) | shift
head: {expand_channels: 64, feature_channels: 0, activation: relu}
```

A time-series space (1-D networks, e.g. activity recognition from
accelerometer windows) replaces `input_channels` and `resolutions` by

```yaml
input: {kind: timeseries, channels: 6, lengths: [64, 96, 128]}
```

`lengths` are the window lengths in samples, the 1-D "resolution" (an
architecture's `resolution` is its length); every kernel is 1 x k, every
stride 1 x s (`hwnas.netspec`, `dims`). `input: {kind: image, channels: 3,
resolutions: [...]}` is the same as the two top-level keys.

Every block of a stage chooses its type, kernel, expansion, SE and
activation independently from the stage's lists (as in Once-for-All's
per-layer kernel/expansion). `ops` offers DeepShift power-of-two
('shift') convolutions beside ordinary ('mult') ones; a stage without it
has only `mult`, as before ops existed. `stem: {op: shift}` and `head:
{op: shift}` make the stem conv and the head's 1x1 conv shift convolutions
in every architecture of the space; `stem: {ops: [mult, shift]}` (and the
same on the head) makes each a search choice (`ArchChoice.stem_op` /
`head_op`). `op: X` is the one-choice form of `ops: [X]`.
`skip` (identity, as in
FBNet/ProxylessNAS) is never offered to the first block of a stage, which
changes shape.

`load()` rejects anything else with one line naming the file, the key, what
is wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import pathlib
from typing import Any

import yaml

from hwnas import errors, resources, validate

FORMAT_VERSION = 1
SPACE_BLOCK_TYPES = ("ibn", "fused_ibn", "skip")
SPACE_ACTIVATIONS = ("relu", "relu6", "hswish", "swish")
SPACE_OPS = ("mult", "shift")

# Sane bounds of a space file's numbers (docs/spaces.md). Far beyond any
# published mobile space; they keep a typo (depths: [1, 100000000]) from
# hanging `hwnas space show` or building a network no device can hold.
BOUNDS = {
    "depth": (1, 16), "kernel": (1, 11), "resolution": (8, 1024),
    "width": (1, 4096), "head_channels": (0, 8192), "expansion": (0, 16),
    "stages": (1, 16), "num_classes": (1, 100_000), "input_channels": (1, 64),
    "channel_divisor": (1, 256), "choices": (1, 64), "length": (8, 8192),
}
INPUT_KINDS = ("image", "timeseries")


@dataclasses.dataclass(frozen=True)
class Stem:
  channels: int
  kernel: int = 3
  stride: int = 2
  activation: str = "relu"
  ops: tuple[str, ...] = ("mult",)   # 'shift': power-of-two weights


@dataclasses.dataclass(frozen=True)
class Head:
  expand_channels: int = 0     # 1x1 conv + BN + act before pooling; 0: none
  feature_channels: int = 0    # dense + act after pooling (MBV3); 0: none
  activation: str = "relu"
  ops: tuple[str, ...] = ("mult",)   # of the expand conv, as for Stem


@dataclasses.dataclass(frozen=True)
class Stage:
  """Choices of one stage; every block of it chooses independently."""

  widths: tuple[int, ...]
  stride: int
  depths: tuple[int, ...]
  types: tuple[str, ...]
  kernels: tuple[int, ...]
  expansions: tuple[float, ...]
  se: tuple[bool, ...]
  activations: tuple[str, ...]
  name: str = ""
  ops: tuple[str, ...] = ("mult",)

  @property
  def max_depth(self) -> int:
    return max(self.depths)

  def types_for(self, index_in_stage: int) -> tuple[str, ...]:
    """Block types offered to block `index_in_stage` (no skip for the 1st)."""
    if index_in_stage == 0:
      return tuple(t for t in self.types if t != "skip")
    return self.types


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A validated search space (see the module docstring for the format)."""

  name: str
  version: int
  input_channels: int
  num_classes: int
  resolutions: tuple[int, ...]
  stem: Stem
  stages: tuple[Stage, ...]
  head: Head
  channel_divisor: int = 8
  se_ratio: float = 0.25
  description: str = ""
  path: str = ""
  kind: str = "image"           # 'image' | 'timeseries' (see INPUT_KINDS)

  @property
  def dims(self) -> int:
    """1 for a time-series space (1-D networks), 2 for images."""
    return 1 if self.kind == "timeseries" else 2

  @property
  def num_slots(self) -> int:
    """Number of block slots (sum of the stages' maximum depths)."""
    return sum(s.max_depth for s in self.stages)

  def slots(self) -> list[tuple[int, int]]:
    """(stage index, index within stage) for every block slot, in order."""
    return [(i, j) for i, s in enumerate(self.stages)
            for j in range(s.max_depth)]

  @property
  def id(self) -> str:
    return f"{self.name}@{self.version}"

  def num_archs(self) -> int:
    """Number of distinct architectures (distinct decoded networks)."""
    total = len(self.resolutions) * len(self.stem.ops) * len(self.head.ops)
    for st in self.stages:
      per_block = (len(st.kernels) * len(st.expansions) * len(st.se) *
                   len(st.activations) * len(st.ops))
      first = len(st.types_for(0)) * per_block
      rest = sum(per_block for t in st.types if t != "skip") + (
          1 if "skip" in st.types else 0)
      total *= len(st.widths) * sum(first * rest ** (d - 1)
                                    for d in st.depths)
    return total

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.pop("path")
    kind = d.pop("kind")
    if kind == "timeseries":
      d = {k: v for k, v in d.items()
           if k not in ("input_channels", "resolutions")}
      d["input"] = {"kind": kind, "channels": self.input_channels,
                    "lengths": list(self.resolutions)}
    d = {"format": FORMAT_VERSION, **d}
    for st in d["stages"]:
      if not st["name"]:
        st.pop("name")
      if st["ops"] == ("mult",):
        st.pop("ops")
    for part in ("stem", "head"):   # as before ops existed, unless shift
      ops = d[part].pop("ops")
      if len(ops) > 1:
        d[part]["ops"] = ops
      elif ops != ("mult",):
        d[part]["op"] = ops[0]    # the fixed form
    return _lists(d)


def _lists(x):
  if isinstance(x, (list, tuple)):
    return [_lists(v) for v in x]
  if isinstance(x, dict):
    return {k: _lists(v) for k, v in x.items()}
  return x


# ----------------------------------------------------------------- loading --

_TOP_KEYS = {"format", "name", "version", "description", "input_channels",
             "num_classes", "channel_divisor", "se_ratio", "resolutions",
             "stem", "stages", "head", "input"}
_REQUIRED_TOP = ("format", "name", "version", "stem", "stages", "head")
_STAGE_KEYS = {"name", "widths", "width_multipliers", "base_width", "stride",
               "depths", "types", "kernels", "expansions", "se",
               "activations", "ops"}


class _Checker:
  """Validation helpers that prefix every message with file and key."""

  def __init__(self, path: str):
    self.path = path

  def fail(self, key: str, msg: str):
    raise errors.SpaceError(f"{self.path}: {key}: {msg}")

  def keys(self, d: Any, key: str, allowed: set[str],
           required: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
      self.fail(key or "<top>", f"expected a mapping, got {_kind(d)}")
    unknown = sorted(set(d) - allowed)
    if unknown:
      self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
    for r in required:
      if r not in d:
        self.fail(f"{key}.{r}" if key else r, "missing required key")
    return d

  def pos_int(self, v: Any, key: str, *, zero_ok: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (
        v == 0 and not zero_ok):
      self.fail(key, f"must be a {'non-negative' if zero_ok else 'positive'} "
                f"integer, got {v!r}")
    return v

  def bounded(self, v: Any, key: str, bound: str) -> int:
    """A positive integer within `BOUNDS[bound]` (inclusive)."""
    lo, hi = BOUNDS[bound]
    self.pos_int(v, key, zero_ok=lo == 0)
    if not lo <= v <= hi:
      self.fail(key, f"{v} is out of range; allowed: {lo} .. {hi} (see "
                "docs/spaces.md, 'Bounds')")
    return v

  def pos_num(self, v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 or (
        not math.isfinite(v)):
      self.fail(key, f"must be a positive number, got {v!r}")
    return v

  def choice(self, v: Any, key: str, allowed: tuple) -> Any:
    # Of the same type too: `stride: true` equals 1 but is no stride.
    if not any(v == a and type(v) is type(a) for a in allowed):
      self.fail(key, f"{v!r} is not allowed; allowed: "
                f"{', '.join(map(str, allowed))}")
    return v

  def choices(self, v: Any, key: str, item_fn) -> tuple:
    if not isinstance(v, list):
      self.fail(key, f"must be a list of choices, got {_kind(v)}")
    if not v:
      self.fail(key, "the list of choices is empty; give at least one")
    if len(v) > BOUNDS["choices"][1]:
      self.fail(key, f"{len(v)} choices; at most {BOUNDS['choices'][1]}")
    out = tuple(item_fn(x, f"{key}[{i}]") for i, x in enumerate(v))
    if len(set(out)) != len(out):
      self.fail(key, f"duplicate choices in {list(v)}")
    return out


def _kind(v: Any) -> str:
  return {dict: "a mapping", list: "a list", str: "a string"}.get(
      type(v), type(v).__name__)


def _parse_stage(c: _Checker, d: Any, key: str, divisor: int) -> Stage:
  c.keys(d, key, _STAGE_KEYS, ("stride", "depths", "types", "kernels",
                               "expansions"))
  if ("widths" in d) == ("width_multipliers" in d):
    c.fail(key, "give exactly one of 'widths' (channels) or "
           "'width_multipliers' (with 'base_width')")
  if "widths" in d:
    if "base_width" in d:
      c.fail(f"{key}.base_width", "only allowed with 'width_multipliers'")
    widths = c.choices(d["widths"], f"{key}.widths",
                       lambda v, k: c.bounded(v, k, "width"))
  else:
    if "base_width" not in d:
      c.fail(f"{key}.base_width", "required with 'width_multipliers'")
    from hwnas.netspec import make_divisible
    base = c.bounded(d["base_width"], f"{key}.base_width", "width")
    mults = c.choices(d["width_multipliers"], f"{key}.width_multipliers",
                      c.pos_num)
    widths = tuple(make_divisible(base * m, divisor) for m in mults)
    for m, w in zip(mults, widths):
      if w > BOUNDS["width"][1]:
        c.fail(f"{key}.width_multipliers", f"{m} x {base} = {w} channels is "
               f"out of range; at most {BOUNDS['width'][1]}")
    if len(set(widths)) != len(widths):
      c.fail(f"{key}.width_multipliers", f"multipliers {list(mults)} of "
             f"{base} round to duplicate widths {list(widths)}")
  stride = c.pos_int(d["stride"], f"{key}.stride")
  if stride not in (1, 2):
    c.fail(f"{key}.stride", f"must be 1 or 2, got {stride}")
  types = c.choices(d["types"], f"{key}.types",
                    lambda v, k: c.choice(v, k, SPACE_BLOCK_TYPES))
  if types == ("skip",):
    c.fail(f"{key}.types", "'skip' alone is not allowed: the first block of "
           "a stage changes shape and needs ibn or fused_ibn")
  kernels = c.choices(d["kernels"], f"{key}.kernels",
                      lambda v, k: c.bounded(v, k, "kernel"))
  for i, k in enumerate(kernels):
    if k % 2 == 0:
      c.fail(f"{key}.kernels[{i}]", f"kernel sizes must be odd, got {k}")
  return Stage(
      name=str(d.get("name", "")),
      widths=widths,
      stride=stride,
      depths=c.choices(d["depths"], f"{key}.depths",
                       lambda v, k: c.bounded(v, k, "depth")),
      types=types,
      kernels=kernels,
      expansions=c.choices(d["expansions"], f"{key}.expansions",
                           lambda v, k: _expansion(c, v, k)),
      se=c.choices(d.get("se", [False]), f"{key}.se",
                   lambda v, k: v if isinstance(v, bool) else c.fail(
                       k, f"must be true or false, got {v!r}")),
      activations=c.choices(
          d.get("activations", ["relu"]), f"{key}.activations",
          lambda v, k: c.choice(v, k, SPACE_ACTIVATIONS)),
      ops=c.choices(d.get("ops", ["mult"]), f"{key}.ops",
                    lambda v, k: c.choice(v, k, SPACE_OPS)),
  )


def _part_ops(c: _Checker, d: dict, part: str) -> tuple[str, ...]:
  """The stem's or head's op choices: `op: X` (fixed) or `ops: [...]`."""
  if "op" in d and "ops" in d:
    c.fail(f"{part}.ops", f"give either {part}.op (fixed) or {part}.ops "
           "(a search choice), not both")
  if "ops" in d:
    return c.choices(d["ops"], f"{part}.ops",
                     lambda v, k: c.choice(v, k, SPACE_OPS))
  return (c.choice(d.get("op", "mult"), f"{part}.op", SPACE_OPS),)


def _expansion(c: _Checker, v: Any, key: str) -> float:
  c.pos_num(v, key)
  if v > BOUNDS["expansion"][1]:
    c.fail(key, f"{v} is out of range; allowed: > 0 .. "
           f"{BOUNDS['expansion'][1]} (see docs/spaces.md, 'Bounds')")
  return v


def _parse_input(c: _Checker, d: dict) -> tuple[str, int, tuple[int, ...]]:
  """(kind, channels, resolutions or lengths) from `input` or the top-level
  `input_channels` / `resolutions` of an image space."""
  if "input" not in d:
    if "resolutions" not in d:
      c.fail("resolutions", "missing required key (or give `input: {kind: "
             "timeseries, channels: C, lengths: [...]}`)")
    return "image", c.bounded(d.get("input_channels", 3), "input_channels",
                              "input_channels"), c.choices(
        d["resolutions"], "resolutions",
        lambda v, k: c.bounded(v, k, "resolution"))
  for k in ("input_channels", "resolutions"):
    if k in d:
      c.fail(k, "not allowed beside `input`; give it inside `input`")
  i = d["input"]
  c.keys(i, "input", {"kind", "channels", "lengths", "resolutions"},
         ("kind",))
  kind = c.choice(i["kind"], "input.kind", INPUT_KINDS)
  sizes, bound = (("lengths", "length") if kind == "timeseries" else
                  ("resolutions", "resolution"))
  other = "resolutions" if kind == "timeseries" else "lengths"
  if other in i:
    c.fail(f"input.{other}", f"not allowed for kind {kind}; use "
           f"input.{sizes}")
  if sizes not in i:
    c.fail(f"input.{sizes}", "missing required key")
  channels = c.bounded(i.get("channels", 3), "input.channels",
                       "input_channels")
  return kind, channels, c.choices(i[sizes], f"input.{sizes}",
                                   lambda v, k: c.bounded(v, k, bound))


def from_dict(d: Any, *, path: str = "<space>") -> SearchSpace:
  """Validates a parsed space file; raises SpaceError naming file and key."""
  c = _Checker(path)
  c.keys(d, "", _TOP_KEYS, _REQUIRED_TOP)
  if type(d["format"]) is not int or d["format"] != FORMAT_VERSION:
    c.fail("format", f"unsupported format {d['format']!r}; this hwnas reads "
           f"format {FORMAT_VERSION}")
  if not isinstance(d["name"], str) or not d["name"]:
    c.fail("name", "must be a non-empty string")
  if validate.printable(d["name"], 64) != d["name"]:
    c.fail("name", f"{validate.printable(d['name'])!r} must be one line of "
           "at most 64 printable characters")
  divisor = c.bounded(d.get("channel_divisor", 8), "channel_divisor",
                      "channel_divisor")
  stem_d = c.keys(d["stem"], "stem",
                  {"channels", "kernel", "stride", "activation", "op", "ops"},
                  ("channels",))
  stem = Stem(
      channels=c.bounded(stem_d["channels"], "stem.channels", "width"),
      kernel=c.bounded(stem_d.get("kernel", 3), "stem.kernel", "kernel"),
      stride=c.choice(stem_d.get("stride", 2), "stem.stride", (1, 2)),
      activation=c.choice(stem_d.get("activation", "relu"),
                          "stem.activation", SPACE_ACTIVATIONS),
      ops=_part_ops(c, stem_d, "stem"))
  head_d = c.keys(d["head"], "head",
                  {"expand_channels", "feature_channels", "activation", "op",
                   "ops"})
  head = Head(
      expand_channels=c.bounded(head_d.get("expand_channels", 0),
                                "head.expand_channels", "head_channels"),
      feature_channels=c.bounded(head_d.get("feature_channels", 0),
                                 "head.feature_channels", "head_channels"),
      activation=c.choice(head_d.get("activation", "relu"),
                          "head.activation", SPACE_ACTIVATIONS),
      ops=_part_ops(c, head_d, "head"))
  if head.ops != ("mult",) and not head.expand_channels:
    key = "head.ops" if "ops" in head_d else "head.op"
    c.fail(key, f"{', '.join(head.ops)} applies to the head's 1x1 conv and "
           f"this head has none; set head.expand_channels > 0 or drop {key}")
  if not isinstance(d["stages"], list) or not d["stages"]:
    c.fail("stages", "must be a non-empty list of stages")
  if len(d["stages"]) > BOUNDS["stages"][1]:
    c.fail("stages", f"{len(d['stages'])} stages; at most "
           f"{BOUNDS['stages'][1]}")
  stages = tuple(_parse_stage(c, s, f"stages[{i}]", divisor)
                 for i, s in enumerate(d["stages"]))
  se_ratio = c.pos_num(d.get("se_ratio", 0.25), "se_ratio")
  if se_ratio > 1:
    c.fail("se_ratio", f"must be in (0, 1], got {se_ratio}")
  kind, channels, resolutions = _parse_input(c, d)
  return SearchSpace(
      name=d["name"],
      version=c.pos_int(d["version"], "version"),
      description=str(d.get("description", "")).strip(),
      input_channels=channels, kind=kind,
      num_classes=c.bounded(d.get("num_classes", 1000), "num_classes",
                            "num_classes"),
      channel_divisor=divisor,
      se_ratio=se_ratio,
      resolutions=resolutions,
      stem=stem, stages=stages, head=head, path=path)


def load(name_or_path: str | os.PathLike[str]) -> SearchSpace:
  """Loads a space by shipped name ('mobilenetv3') or by file path."""
  path = resources.resolve(name_or_path, "search_spaces", (".yaml", ".yml"))
  if not path.is_file():
    names = list_spaces()
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise errors.SpaceError(
        f"{name_or_path}: no such search space file or shipped space; "
        f"{hint}shipped spaces: {', '.join(names)}")
  text = errors.read_text(path, what="search space file")
  try:
    d = validate.load_yaml(text, str(path), max_bytes=1 << 20)
  except errors.HwnasError as e:
    raise errors.SpaceError(str(e)) from None
  return from_dict(d, path=str(path))


def list_spaces() -> list[str]:
  """Names of the spaces shipped in `search_spaces/`."""
  d = resources.search_spaces_dir()
  return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def dump(space: SearchSpace, path: str | os.PathLike[str]) -> None:
  """Writes a space back to YAML (round-trips through `load`)."""
  pathlib.Path(path).write_text(
      yaml.safe_dump(space.to_dict(), sort_keys=False))
