"""Architecture choices: the genotype the search samples, mutates and crosses.

An `ArchChoice` is a small frozen value: the resolution, one width and one
depth per stage, and per stage one `BlockChoice` per block *slot* (the
stage's maximum depth, as in Once-for-All's `ks`/`e` lists). Slots beyond a
stage's depth are inactive; every function here returns *canonical* choices,
in which inactive slots (and the fields of `skip` blocks) hold the stage's
default, so two choices are equal exactly when they decode to the same
network. Equal choices hash equally: they key caches and search history.

All stochastic functions take an explicit `numpy.random.Generator` first,
never modify their inputs, and always return valid members of the space.

>>> import numpy as np
>>> from hwnas import arch, space
>>> s = space.load("tiny")
>>> a = arch.sample(np.random.default_rng(0), s)
>>> arch.from_json(arch.to_json(a)) == a
True

Size: about 620 lines of small pure functions over one value type
(sample, mutate, crossover, decode, encode, JSON); no seam a reader would
expect to cross.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any

import numpy as np

from hwnas import errors
from hwnas import validate as validate_lib
from hwnas.netspec import Layer, NetSpec, make_divisible
from hwnas.space import SearchSpace, Stage

_SCHEMA = "hwnas/arch@1"


@dataclasses.dataclass(frozen=True)
class BlockChoice:
  type: str            # 'ibn' | 'fused_ibn' | 'skip'
  kernel: int
  expansion: float
  se: bool
  activation: str
  op: str = "mult"     # 'mult' | 'shift' (power-of-two weights)


@dataclasses.dataclass(frozen=True)
class ArchChoice:
  """One architecture of a space (see the module docstring)."""

  space: str                        # SearchSpace.name it belongs to
  resolution: int
  widths: tuple[int, ...]           # output channels, one per stage
  depths: tuple[int, ...]           # active blocks, one per stage
  blocks: tuple[tuple[BlockChoice, ...], ...]  # [stage][slot], max depth
  # The stem conv's and the head's 1x1 conv's op ('mult' | 'shift'): a
  # gene only where the space's `stem.ops` / `head.ops` offers both;
  # otherwise the space's one op (the defaults keep older files loading).
  stem_op: str = "mult"
  head_op: str = "mult"

  def active_blocks(self):
    """Yields (stage, index in stage, BlockChoice) of active, non-skip
    blocks."""
    for s, (d, bs) in enumerate(zip(self.depths, self.blocks)):
      for j in range(d):
        if bs[j].type != "skip":
          yield s, j, bs[j]


# ------------------------------------------------------------- utilities --

def _default_block(stage: Stage) -> BlockChoice:
  return BlockChoice(stage.types_for(0)[0], stage.kernels[0],
                     stage.expansions[0], stage.se[0], stage.activations[0],
                     stage.ops[0])


def canonicalize(space: SearchSpace, arch: ArchChoice) -> ArchChoice:
  """Resets inactive slots and the fields of skip blocks to defaults (and
  the stem / head op to the space's op where it offers only one)."""
  stages = []
  for st, d, bs in zip(space.stages, arch.depths, arch.blocks):
    default = _default_block(st)
    stages.append(tuple(
        default if j >= d else
        dataclasses.replace(default, type="skip") if b.type == "skip" else b
        for j, b in enumerate(bs)))
  fixed = lambda ops, op: ops[0] if len(ops) == 1 else op
  return dataclasses.replace(
      arch, blocks=tuple(stages),
      stem_op=fixed(space.stem.ops, arch.stem_op),
      head_op=fixed(space.head.ops, arch.head_op))


def validate(space: SearchSpace, arch: ArchChoice) -> None:
  """Raises SpaceError if `arch` is not a member of `space`."""
  def bad(key, value, allowed):
    raise errors.SpaceError(
        f"architecture: {key} = {value!r} is not in space {space.id} "
        f"({space.path or space.name}); allowed: {list(allowed)}")
  if arch.space != space.name:
    raise errors.SpaceError(
        f"architecture belongs to space {arch.space!r}, not {space.name!r}; "
        "use the space it was searched in")
  if arch.resolution not in space.resolutions:
    bad("resolution", arch.resolution, space.resolutions)
  if arch.stem_op not in space.stem.ops:
    bad("stem_op", arch.stem_op, space.stem.ops)
  if arch.head_op not in space.head.ops:
    bad("head_op", arch.head_op, space.head.ops)
  n = len(space.stages)
  if len(arch.widths) != n or len(arch.depths) != n:
    raise errors.SpaceError(
        f"architecture: needs {n} widths and depths (one per stage), got "
        f"{len(arch.widths)} and {len(arch.depths)}")
  if len(arch.blocks) != n:
    raise errors.SpaceError(
        f"architecture: needs {n} block lists (one per stage), got "
        f"{len(arch.blocks)}")
  for i, st in enumerate(space.stages):
    if len(arch.blocks[i]) != st.max_depth:
      raise errors.SpaceError(
          f"architecture: blocks[{i}] needs {st.max_depth} slots (the "
          f"stage's maximum depth), got {len(arch.blocks[i])}")
    if arch.widths[i] not in st.widths:
      bad(f"widths[{i}]", arch.widths[i], st.widths)
    if arch.depths[i] not in st.depths:
      bad(f"depths[{i}]", arch.depths[i], st.depths)
    for j in range(arch.depths[i]):
      b, k = arch.blocks[i][j], f"blocks[{i}][{j}]"
      if b.type not in st.types_for(j):
        bad(f"{k}.type", b.type, st.types_for(j))
      if b.type == "skip":
        continue
      for field, allowed in (("kernel", st.kernels),
                             ("expansion", st.expansions), ("se", st.se),
                             ("activation", st.activations),
                             ("op", st.ops)):
        if getattr(b, field) not in allowed:
          bad(f"{k}.{field}", getattr(b, field), allowed)


# ---------------------------------------------------------------- decode --

def decode(space: SearchSpace, arch: ArchChoice, *,
           num_classes: int | None = None) -> NetSpec:
  """Builds the NetSpec (concrete layers and shapes) of an architecture."""
  validate(space, arch)
  div = space.channel_divisor
  layers = []
  size, ch = arch.resolution, space.input_channels
  dims = space.dims   # 1: every layer a 1 x k time-series layer

  def add(layer: Layer):
    nonlocal size, ch
    layer = dataclasses.replace(layer, dims=dims) if dims != 2 else layer
    layers.append(layer)
    size, ch = layer.output_size, layer.out_channels

  st0 = space.stem
  add(Layer("conv", size, ch, st0.channels, kernel=st0.kernel,
            stride=st0.stride, activation=st0.activation, op=arch.stem_op))
  for st, width, depth, bs in zip(space.stages, arch.widths, arch.depths,
                                  arch.blocks):
    for j in range(depth):
      b = bs[j]
      if b.type == "skip":
        continue
      stride = st.stride if j == 0 else 1
      mid = make_divisible(ch * b.expansion, div)
      se = make_divisible(mid * space.se_ratio, div) if b.se else 0
      add(Layer(b.type, size, ch, width, mid_channels=mid, kernel=b.kernel,
                stride=stride, se_channels=se, activation=b.activation,
                residual=stride == 1 and ch == width, op=b.op))
  head = space.head
  if head.expand_channels:
    add(Layer("conv", size, ch, head.expand_channels,
              activation=head.activation, op=arch.head_op))
  add(Layer("pool", size, ch, ch))
  if head.feature_channels:
    add(Layer("fc", 1, ch, head.feature_channels, activation=head.activation))
  add(Layer("fc", 1, ch, num_classes or space.num_classes))
  return NetSpec(f"{space.name}:{to_string(arch)}", arch.resolution,
                 space.input_channels, tuple(layers))


# --------------------------------------------------- sampling & variation --

def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


def _pick_op(rng, st: Stage, current: str | None = None) -> str:
  # A stage without an ops choice draws nothing, so that spaces without
  # `ops` sample and mutate exactly as before ops existed.
  if len(st.ops) == 1:
    return st.ops[0]
  return _pick(rng, st.ops) if current is None else current


def _pick_part_op(rng, ops: tuple[str, ...]) -> str:
  # The stem / head op, drawn only where the space offers a choice.
  return ops[0] if len(ops) == 1 else _pick(rng, ops)


def _sample_block(rng, st: Stage, j: int) -> BlockChoice:
  return BlockChoice(_pick(rng, st.types_for(j)), _pick(rng, st.kernels),
                     _pick(rng, st.expansions), _pick(rng, st.se),
                     _pick(rng, st.activations), _pick_op(rng, st))


def sample(rng: np.random.Generator, space: SearchSpace) -> ArchChoice:
  """Samples an architecture uniformly per gene."""
  resolution = _pick(rng, space.resolutions)
  widths = tuple(_pick(rng, st.widths) for st in space.stages)
  depths = tuple(_pick(rng, st.depths) for st in space.stages)
  blocks = tuple(tuple(_sample_block(rng, st, j) for j in range(st.max_depth))
                 for st in space.stages)
  stem_op = _pick_part_op(rng, space.stem.ops)
  head_op = _pick_part_op(rng, space.head.ops)
  return canonicalize(space, ArchChoice(space.name, resolution, widths,
                                        depths, blocks, stem_op, head_op))


def mutate(rng: np.random.Generator, space: SearchSpace, arch: ArchChoice,
           prob: float = 0.1) -> ArchChoice:
  """Resamples each gene with probability `prob` (Once-for-All style).

  Genes: the resolution, each stage's width and depth, each field of
  each active block, and the stem and head ops where the space offers a
  choice. Slots activated by a grown depth are sampled afresh.
  """
  validate(space, arch)
  flip = lambda: rng.random() < prob
  resolution = _pick(rng, space.resolutions) if flip() else arch.resolution
  widths = tuple(_pick(rng, st.widths) if flip() else w
                 for st, w in zip(space.stages, arch.widths))
  depths = tuple(_pick(rng, st.depths) if flip() else d
                 for st, d in zip(space.stages, arch.depths))
  stages = []
  for s, st in enumerate(space.stages):
    blocks = list(arch.blocks[s])
    for j in range(depths[s]):
      if j >= arch.depths[s]:             # newly active slot
        blocks[j] = _sample_block(rng, st, j)
        continue
      b = blocks[j]
      if flip():
        new_type = _pick(rng, st.types_for(j))
        if new_type != b.type:
          # A skip block has no other genes; leaving skip samples them.
          b = dataclasses.replace(
              _sample_block(rng, st, j) if b.type == "skip" else b,
              type=new_type)
      if b.type != "skip":
        b = BlockChoice(
            b.type,
            _pick(rng, st.kernels) if flip() else b.kernel,
            _pick(rng, st.expansions) if flip() else b.expansion,
            _pick(rng, st.se) if flip() else b.se,
            _pick(rng, st.activations) if flip() else b.activation,
            b.op if len(st.ops) == 1 or not flip() else _pick_op(rng, st))
      blocks[j] = b
    stages.append(tuple(blocks))
  # As for block ops: no draw where the space offers one op.
  part_op = lambda ops, op: (_pick(rng, ops) if len(ops) > 1 and flip()
                             else op)
  stem_op = part_op(space.stem.ops, arch.stem_op)
  head_op = part_op(space.head.ops, arch.head_op)
  return canonicalize(space, ArchChoice(space.name, resolution, widths,
                                        depths, tuple(stages), stem_op,
                                        head_op))


def crossover(rng: np.random.Generator, space: SearchSpace, a: ArchChoice,
              b: ArchChoice) -> ArchChoice:
  """Uniform crossover: every gene comes from `a` or `b` with p = 1/2."""
  validate(space, a)
  validate(space, b)
  pick = lambda x, y: x if rng.random() < 0.5 else y
  depths = tuple(pick(x, y) for x, y in zip(a.depths, b.depths))
  stages = []
  for s, d in enumerate(depths):
    blocks = []
    for j in range(len(a.blocks[s])):
      # Take the gene only from parents in which the slot is active:
      # an inactive slot holds a placeholder, not a gene.
      active = [p.blocks[s][j] for p in (a, b) if j < p.depths[s]]
      if j >= d or not active:
        blocks.append(a.blocks[s][j])
      else:
        blocks.append(active[0] if len(active) == 1 else pick(*active))
    stages.append(tuple(blocks))
  part_op = lambda ops, x, y: pick(x, y) if len(ops) > 1 else x
  return canonicalize(space, ArchChoice(
      space.name, pick(a.resolution, b.resolution),
      tuple(pick(x, y) for x, y in zip(a.widths, b.widths)), depths,
      tuple(stages), part_op(space.stem.ops, a.stem_op, b.stem_op),
      part_op(space.head.ops, a.head_op, b.head_op)))


def _extreme(space: SearchSpace, largest: bool) -> ArchChoice:
  from hwnas import counting
  sel = max if largest else min
  # The stem / head op leaves MACs unchanged; as for blocks of equal MACs,
  # the largest multiplies and the smallest shifts.
  want = "mult" if largest else "shift"
  part_op = lambda ops: want if want in ops else ops[0]
  arch = canonicalize(space, ArchChoice(
      space.name, sel(space.resolutions),
      tuple(sel(st.widths) for st in space.stages),
      tuple(sel(st.depths) for st in space.stages),
      tuple(tuple(_default_block(st) for _ in range(st.max_depth))
            for st in space.stages),
      part_op(space.stem.ops), part_op(space.head.ops)))
  # Greedy per slot is exact: with widths and resolution fixed, a block's
  # MACs depend only on its own choice. Ties go to larger kernel/expansion/SE
  # for the largest, smaller for the smallest.
  blocks = [list(bs) for bs in arch.blocks]
  for s, st in enumerate(space.stages):
    for j in range(arch.depths[s]):
      options = [BlockChoice(t, k, e, se, st.activations[0], op)
                 for t in st.types_for(j) if t != "skip"
                 for k in st.kernels for e in st.expansions for se in st.se
                 for op in st.ops]
      if "skip" in st.types_for(j):
        options.append(dataclasses.replace(_default_block(st), type="skip"))

      def cost(o, s=s, j=j):
        trial = [list(bs) for bs in blocks]
        trial[s][j] = o
        spec = decode(space, dataclasses.replace(
            arch, blocks=tuple(tuple(bs) for bs in trial)))
        c = counting.count(spec)
        # `macs` counts shift-adds too; among equal MACs the largest
        # multiplies and the smallest shifts.
        return (c.macs, c.params, o.type != "skip", o.kernel, o.expansion,
                o.se, o.op == "mult")
      blocks[s][j] = sel(options, key=cost)
  return canonicalize(space, dataclasses.replace(
      arch, blocks=tuple(tuple(bs) for bs in blocks)))


def largest(space: SearchSpace) -> ArchChoice:
  """The architecture with the most MACs (max everything; sandwich top)."""
  return _extreme(space, largest=True)


def smallest(space: SearchSpace) -> ArchChoice:
  """The architecture with the fewest MACs (sandwich bottom)."""
  return _extreme(space, largest=False)


# -------------------------------------------------------------- encoding --

def _genes(space: SearchSpace):
  """(name, options) of every gene of the encoding, in order."""
  yield "resolution", space.resolutions
  for i, st in enumerate(space.stages):
    yield f"widths[{i}]", st.widths
    yield f"depths[{i}]", st.depths
  for s, st in enumerate(space.stages):
    for j in range(st.max_depth):
      k = f"blocks[{s}][{j}]"
      yield f"{k}.type", st.types_for(j)
      yield f"{k}.kernel", st.kernels
      yield f"{k}.expansion", st.expansions
      yield f"{k}.se", st.se
      yield f"{k}.activation", st.activations
      yield f"{k}.op", st.ops
  yield "stem_op", space.stem.ops      # after the blocks: spaces without a
  yield "head_op", space.head.ops      # choice encode as before


def encoding_size(space: SearchSpace) -> int:
  """Length of `encode`'s vector (genes with one option are left out)."""
  return sum(len(o) for _, o in _genes(space) if len(o) > 1)


def encode(space: SearchSpace, arch: ArchChoice) -> np.ndarray:
  """Fixed-length one-hot encoding for accuracy predictors (float32).

  Inactive slots are all zeros, and so are the non-type fields of skip
  blocks, so the encoding of a network does not depend on dead genes.
  """
  validate(space, arch)
  values = {"resolution": arch.resolution, "stem_op": arch.stem_op,
            "head_op": arch.head_op}
  for i in range(len(space.stages)):
    values[f"widths[{i}]"] = arch.widths[i]
    values[f"depths[{i}]"] = arch.depths[i]
  for s, d in enumerate(arch.depths):
    for j in range(d):
      b, k = arch.blocks[s][j], f"blocks[{s}][{j}]"
      values[f"{k}.type"] = b.type
      if b.type != "skip":
        for f in ("kernel", "expansion", "se", "activation", "op"):
          values[f"{k}.{f}"] = getattr(b, f)
  out = []
  for name, options in _genes(space):
    if len(options) > 1:
      v = values.get(name)
      out.extend(float(v is not None and o == v) for o in options)
  return np.asarray(out, np.float32)


# ------------------------------------------------------ serialization --

def to_dict(arch: ArchChoice, *, space: SearchSpace | None = None
            ) -> dict[str, Any]:
  """The JSON form. With `space` from a user's file (not a shipped space),
  its path and SHA-256 are recorded (`space_file`, `space_sha256`) so that
  `space_source` finds the file again without `--space`."""
  d = {
      "schema": _SCHEMA,
      "space": arch.space,
      "resolution": arch.resolution,
      "widths": list(arch.widths),
      "depths": list(arch.depths),
      "blocks": [[_block_dict(b) for b in bs] for bs in arch.blocks],
  }
  # Like a block's op: written only when it shifts, so choices of spaces
  # without the choice keep their JSON.
  for k in ("stem_op", "head_op"):
    if getattr(arch, k) != "mult":
      d[k] = getattr(arch, k)
  if space is not None and space.path and not _shipped(space.path):
    path = pathlib.Path(space.path).absolute()
    d.update(space_file=str(path), space_sha256=_sha256(path))
  return d


def _block_dict(b: BlockChoice) -> dict[str, Any]:
  # 'mult' is left out so that choices of spaces without ops keep the
  # JSON (and the history rows) they had before ops existed.
  d = dataclasses.asdict(b)
  if d["op"] == "mult":
    d.pop("op")
  return d


def _shipped(path: str) -> bool:
  from hwnas import resources  # pylint: disable=g-import-not-at-top
  p = pathlib.Path(path).absolute()
  return p.parent == resources.search_spaces_dir().absolute()


def _sha256(path: pathlib.Path) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  return hashlib.sha256(path.read_bytes()).hexdigest()


def space_source(d: Any, given: str | None = None, *,
                 where: str = "<arch>") -> str:
  """The space to load for an architecture's JSON dict: `given` (--space),
  else the user's space file it records (checked against its SHA-256), else
  the shipped space it names."""
  if given:
    return given
  if not isinstance(d, dict):
    return ""
  d = d["arch"] if isinstance(d.get("arch"), dict) else d
  f = d.get("space_file")
  if isinstance(f, str) and f:
    p = pathlib.Path(f)
    if not p.is_file():
      raise errors.SpaceError(
          f"{where}: space_file {f} no longer exists; pass --space FILE")
    if d.get("space_sha256") not in (None, _sha256(p)):
      raise errors.SpaceError(
          f"{where}: space_file {f} changed since this architecture was "
          "written (SHA-256 differs); pass --space FILE to use it anyway")
    return str(p)
  return str(d.get("space", ""))


def from_dict(d: Any, *, where: str = "<arch>") -> ArchChoice:
  if not isinstance(d, dict):
    raise errors.SpaceError(f"{where}: expected a JSON object")
  if "arch" in d and isinstance(d["arch"], dict):
    d = d["arch"]  # best.json and history rows wrap the choice
  if d.get("schema", _SCHEMA) != _SCHEMA:
    raise errors.SpaceError(f"{where}: schema {d.get('schema')!r} is not "
                            f"supported; expected {_SCHEMA!r}")
  need = ("space", "resolution", "widths", "depths", "blocks")
  for k in need:
    if k not in d:
      raise errors.SpaceError(f"{where}: missing key {k!r}")
  extra = sorted(set(d) - set(need) - {"schema", "space_file",
                                        "space_sha256", "stem_op",
                                        "head_op"})
  if extra:
    raise errors.SpaceError(f"{where}: unknown key(s) {extra}")
  _check_types(d, where)
  try:
    blocks = tuple(tuple(BlockChoice(**b) for b in bs) for bs in d["blocks"])
  except (TypeError, AttributeError) as e:
    raise errors.SpaceError(f"{where}: blocks: {e}") from None
  return ArchChoice(d["space"], d["resolution"], tuple(d["widths"]),
                    tuple(d["depths"]), blocks, d.get("stem_op", "mult"),
                    d.get("head_op", "mult"))


_BLOCK_TYPES = {"type": str, "kernel": int, "expansion": (int, float),
                "se": bool, "activation": str}


def _check_types(d: dict, where: str) -> None:
  """Each field of an architecture file of the right JSON type: integers
  are not floats (`kernel: 3.0`) nor booleans, lists are lists."""
  def fail(key, value, what):
    raise errors.SpaceError(
        f"{where}: {key} = {validate_lib.printable(value)!s} must be {what}")

  def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)
  if not isinstance(d["space"], str):
    fail("space", d["space"], "a space name")
  if not is_int(d["resolution"]):
    fail("resolution", d["resolution"], "an integer")
  for key in ("stem_op", "head_op"):
    if key in d and not isinstance(d[key], str):
      fail(key, d[key], "an op name (mult or shift)")
  for key in ("widths", "depths"):
    if not isinstance(d[key], list) or not all(is_int(v) for v in d[key]):
      fail(key, d[key], "a list of integers, one per stage")
  if not isinstance(d["blocks"], list) or not all(
      isinstance(bs, list) and all(isinstance(b, dict) for b in bs)
      for bs in d["blocks"]):
    fail("blocks", d["blocks"], "a list (per stage) of lists of blocks")
  for i, bs in enumerate(d["blocks"]):
    for j, b in enumerate(bs):
      for field, kind in _BLOCK_TYPES.items():
        v = b.get(field)
        bad = (field in b and (not isinstance(v, kind) or (
            kind is not bool and isinstance(v, bool))))
        if bad or (field == "expansion" and field in b and
                   not math.isfinite(v)):
          fail(f"blocks[{i}][{j}].{field}", v,
               {"type": "a block type name", "kernel": "an integer",
                "expansion": "a finite number", "se": "true or false",
                "activation": "an activation name"}[field])


def to_json(arch: ArchChoice, indent: int | None = None, *,
            space: SearchSpace | None = None) -> str:
  return json.dumps(to_dict(arch, space=space), indent=indent)


def _load_json(text: str, where: str) -> Any:
  try:
    return validate_lib.load_json(text, where)
  except errors.HwnasError as e:
    raise errors.SpaceError(str(e)) from None


def _read_json(path: str | os.PathLike[str]) -> tuple[pathlib.Path, Any]:
  p = pathlib.Path(path)
  if not p.is_file():
    raise errors.SpaceError(f"{p}: no such architecture file")
  text = errors.read_text(p, what="architecture JSON file")
  return p, _load_json(text, str(p))


def from_json(text: str, *, where: str = "<arch>") -> ArchChoice:
  return from_dict(_load_json(text, where), where=where)


def load(path: str | os.PathLike[str]) -> ArchChoice:
  p, d = _read_json(path)
  return from_dict(d, where=str(p))


def load_with_space(path: str | os.PathLike[str]) -> tuple[ArchChoice, str]:
  """An architecture file, read once: the choice and the space to load for
  it (`space_source`: the user's space file it records, else the shipped
  space it names)."""
  p, d = _read_json(path)
  return from_dict(d, where=str(p)), space_source(d, where=str(p))


_ACT_SHORT = {"relu": "r", "relu6": "r6", "hswish": "hs", "swish": "sw"}
_TYPE_SHORT = {"ibn": "", "fused_ibn": "F"}


def _fmt_num(x: float) -> str:
  return str(int(x)) if float(x).is_integer() else str(x)


def to_string(arch: ArchChoice) -> str:
  """Short human-readable form, e.g. 'r32 16:[k3e4r,Fk5e2r+se] 24:[...]'.

  Per stage `width:[blocks]`; a block is an optional type letter (F fused,
  none for ibn), kernel, expansion, activation, '+se', '+sh' (a shift
  block: power-of-two weights); '-' is a skip. A shift stem conv adds
  'stem:sh' after the resolution, a shift head conv 'head:sh' at the end.
  Inactive slots are not shown, so the string identifies the network.
  """
  parts = [f"r{arch.resolution}"]
  if arch.stem_op == "shift":
    parts.append("stem:sh")
  for w, d, bs in zip(arch.widths, arch.depths, arch.blocks):
    toks = []
    for b in bs[:d]:
      if b.type == "skip":
        toks.append("-")
      else:
        toks.append(f"{_TYPE_SHORT.get(b.type, b.type)}k{b.kernel}"
                    f"e{_fmt_num(b.expansion)}"
                    f"{_ACT_SHORT.get(b.activation, b.activation)}"
                    f"{'+se' if b.se else ''}"
                    f"{'+sh' if b.op == 'shift' else ''}")
    parts.append(f"{w}:[{','.join(toks)}]")
  if arch.head_op == "shift":
    parts.append("head:sh")
  return " ".join(parts)
