"""Every layer a search space can produce, and a fast cost function.

A layer of a decoded network depends only on its position and a few local
choices: the stem on the resolution; the block in slot `j` of stage `s` on
the resolution (its input size), the widths of the previous and its own
stage (in/out channels) and its `BlockChoice`; the head on the resolution and
the last stage's width; the stem and head also on their op where the space
offers a choice (`ArchChoice.stem_op` / `head_op`). `slot_layers` walks
those positions directly, so
covering a space costs (resolutions x widths x block choices) per position,
never the (astronomical) number of architectures.

`make_cost_fn` turns the same positions into a lookup plan, so predicting an
architecture's latency is a few dictionary look-ups per block with no
`decode`: hundreds of thousands of predictions per second, as search needs.
The plan mirrors `hwnas.arch.decode`; tests check they agree.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator

from hwnas import arch as arch_lib
from hwnas.arch import ArchChoice, BlockChoice
from hwnas.netspec import Layer, NetSpec, conv_out_size, make_divisible
from hwnas.space import SearchSpace


@dataclasses.dataclass(frozen=True)
class Origin:
  """Where a layer appears in a space (for coverage reports)."""

  resolution: int
  position: str                     # 'stem', 'head', 's2[0]', ...
  choice: str = ""                  # 'w24->40 ibn k5 e6 se relu'

  def __str__(self) -> str:
    return f"r{self.resolution} {self.position}" + (
        f" {self.choice}" if self.choice else "")


def _block_choices(space: SearchSpace, s: int, j: int
                   ) -> Iterator[BlockChoice]:
  st = space.stages[s]
  for t, k, e, se, act, op in itertools.product(
      [t for t in st.types_for(j) if t != "skip"], st.kernels,
      st.expansions, st.se, st.activations, st.ops):
    yield BlockChoice(t, k, e, se, act, op)


def block_layer(space: SearchSpace, size: int, cin: int, width: int,
                stride: int, b: BlockChoice) -> Layer:
  """The Layer `hwnas.arch.decode` builds for one block (not skip)."""
  div = space.channel_divisor
  mid = make_divisible(cin * b.expansion, div)
  se = make_divisible(mid * space.se_ratio, div) if b.se else 0
  return Layer(b.type, size, cin, width, mid_channels=mid, kernel=b.kernel,
               stride=stride, se_channels=se, activation=b.activation,
               residual=stride == 1 and cin == width, op=b.op,
               dims=space.dims)


def stem_layer(space: SearchSpace, resolution: int,
               op: str | None = None) -> Layer:
  """The stem conv (`op`: the architecture's; default the space's first)."""
  st = space.stem
  return Layer("conv", resolution, space.input_channels, st.channels,
               kernel=st.kernel, stride=st.stride, activation=st.activation,
               op=op or st.ops[0], dims=space.dims)


def stage_input_sizes(space: SearchSpace, resolution: int) -> list[int]:
  """Input size of every stage, plus the size after the last stage."""
  size = conv_out_size(resolution, space.stem.stride)
  out = [size]
  for st in space.stages:
    size = conv_out_size(size, st.stride)
    out.append(size)
  return out


def head_layers(space: SearchSpace, size: int, cin: int,
                num_classes: int | None = None, op: str | None = None
                ) -> list[Layer]:
  """Head conv, pool, feature fc and classifier after the last stage
  (`op`: the head conv's, as for `stem_layer`)."""
  h, out, ch, dims = space.head, [], cin, space.dims
  if h.expand_channels:
    out.append(Layer("conv", size, ch, h.expand_channels,
                     activation=h.activation, op=op or h.ops[0], dims=dims))
    ch = h.expand_channels
  out.append(Layer("pool", size, ch, ch, dims=dims))
  if h.feature_channels:
    out.append(Layer("fc", 1, ch, h.feature_channels,
                     activation=h.activation, dims=dims))
    ch = h.feature_channels
  out.append(Layer("fc", 1, ch, num_classes or space.num_classes, dims=dims))
  return out


def slot_layers(space: SearchSpace, resolutions: tuple[int, ...] | None = None
                ) -> Iterator[tuple[tuple, Layer, Origin]]:
  """Yields (plan key, Layer, Origin) for every reachable layer instance.

  Plan keys: ('stem', r, op), ('head', r, w_last, op) with Layer lists
  flattened as ('head', r, w_last, op, i), and ('block', s, j, r, w_in,
  w_out, BlockChoice).
  """
  for r in resolutions or space.resolutions:
    sizes = stage_input_sizes(space, r)
    for op in space.stem.ops:
      yield (("stem", r, op), stem_layer(space, r, op),
             Origin(r, "stem", "shift" if op == "shift" else ""))
    prev_widths = (space.stem.channels,)
    for s, st in enumerate(space.stages):
      name = st.name or f"stages[{s}]"
      for j in range(st.max_depth):
        size = sizes[s] if j == 0 else sizes[s + 1]
        stride = st.stride if j == 0 else 1
        ins = prev_widths if j == 0 else st.widths
        for w_out in st.widths:
          for w_in in (ins if j == 0 else (w_out,)):
            for b in _block_choices(space, s, j):
              layer = block_layer(space, size, w_in, w_out, stride, b)
              yield (("block", s, j, r, w_in, w_out, b), layer,
                     Origin(r, f"{name}[{j}]",
                            f"w{w_in}->{w_out} {b.type} k{b.kernel} "
                            f"e{b.expansion:g}{' se' if b.se else ''} "
                            f"{b.activation}"
                            f"{' shift' if b.op == 'shift' else ''}"))
      prev_widths = st.widths
    for w in space.stages[-1].widths:
      for op in space.head.ops:
        for i, layer in enumerate(head_layers(space, sizes[-1], w, op=op)):
          yield (("head", r, w, op, i), layer,
                 Origin(r, "head",
                        f"w{w}{' shift' if op == 'shift' else ''}"))


def enumerate_layers(space: SearchSpace,
                     resolutions: tuple[int, ...] | None = None
                     ) -> set[Layer]:
  """All distinct Layers reachable in `space` (optionally some resolutions)."""
  return {layer for _, layer, _ in slot_layers(space, resolutions)}


def layer_origins(space: SearchSpace,
                  resolutions: tuple[int, ...] | None = None
                  ) -> dict[Layer, list[Origin]]:
  """Every distinct Layer with the positions and choices that produce it."""
  out: dict[Layer, list[Origin]] = {}
  for _, layer, origin in slot_layers(space, resolutions):
    out.setdefault(layer, []).append(origin)
  return out


# ---------------------------------------------------------- cost function --

class _Plan:
  """Per-position latency look-ups for one (table, space)."""

  def __init__(self, table, space: SearchSpace):
    self.space = space
    self.stem: dict[tuple[int, str], float] = {}     # (r, op)
    self.head: dict[tuple[int, int, str], float] = {}  # (r, w_last, op)
    # blocks[s][j][(r, w_in, w_out, BlockChoice)] -> ms
    self.blocks = [[{} for _ in range(st.max_depth)] for st in space.stages]
    # The same positions' Layers, to build NetSpecs without `decode`.
    self.stem_layer: dict[tuple[int, str], Layer] = {}
    self.head_layers: dict[tuple[int, int, str], list[Layer]] = {}
    self.block_layers = [[{} for _ in range(st.max_depth)]
                         for st in space.stages]
    by = table.by_layer
    for key, layer, _ in slot_layers(space):
      ms = by.get(layer)
      if key[0] == "stem":
        self.stem_layer[key[1:]] = layer
        if ms is not None:
          self.stem[key[1:]] = ms
      elif key[0] == "head":
        hk = key[1:4]
        self.head_layers.setdefault(hk, []).append(layer)
        self.head[hk] = self.head.get(hk, 0.0) + (ms or 0.0)
      else:
        _, s, j, r, w_in, w_out, b = key
        bk = (r, w_in, w_out, b.type, b.kernel, b.expansion, b.se,
              b.activation, b.op)
        self.block_layers[s][j][bk] = layer
        if ms is not None:
          self.blocks[s][j][bk] = ms
    # Head sums are only valid when every head layer has an entry.
    for r in space.resolutions:
      size = stage_input_sizes(space, r)[-1]
      for w in space.stages[-1].widths:
        for op in space.head.ops:
          if any(l not in by for l in head_layers(space, size, w, op=op)):
            self.head.pop((r, w, op), None)
    w0 = space.stages[-1].widths[0]
    self.fixed_layers = 1 + len(head_layers(space, 1, w0))  # stem + head

  def complete(self) -> bool:
    """Whether the table has an entry for every layer of the space."""
    return (len(self.stem) == len(self.stem_layer) and
            len(self.head) == len(self.head_layers) and
            all(len(b) == len(l) for bs, ls in zip(self.blocks,
                                                   self.block_layers)
                for b, l in zip(bs, ls)))

  def layer_sum(self, a: ArchChoice) -> tuple[float, int]:
    """(sum of entries, number of layers); KeyError when one is missing
    (callers fall back to the slow path for the error)."""
    r = a.resolution
    total = self.stem[(r, a.stem_op)]
    n = self.fixed_layers
    w_in = self.space.stem.channels
    # Keys spell out the BlockChoice fields: hashing a flat tuple is several
    # times cheaper than the dataclass's own __hash__ (search calls this
    # hundreds of thousands of times).
    for s_blocks, w, d, bs in zip(self.blocks, a.widths, a.depths, a.blocks):
      for j in range(d):
        b = bs[j]
        t = b.type
        if t != "skip":
          total += s_blocks[j][(r, w_in if j == 0 else w, w, t, b.kernel,
                                b.expansion, b.se, b.activation, b.op)]
          n += 1
      w_in = w
    return total + self.head[(r, w_in, a.head_op)], n

  def spec(self, a: ArchChoice) -> NetSpec:
    """`decode(space, a)` from precomputed Layers (KeyError if `a` is not
    in the space; callers fall back to `decode` for the error)."""
    r, sp = a.resolution, self.space
    layers = [self.stem_layer[(r, a.stem_op)]]
    w_in = sp.stem.channels
    for s_layers, w, d, bs in zip(self.block_layers, a.widths, a.depths,
                                  a.blocks):
      for j in range(d):
        b = bs[j]
        if b.type != "skip":
          layers.append(s_layers[j][(r, w_in if j == 0 else w, w, b.type,
                                     b.kernel, b.expansion, b.se,
                                     b.activation, b.op)])
      w_in = w
    layers += self.head_layers[(r, w_in, a.head_op)]
    return NetSpec(f"{sp.name}:{arch_lib.to_string(a)}", r,
                   sp.input_channels, tuple(layers))


_INF = float("inf")


def make_cost_fn(table, space: SearchSpace, *, cache_size: int = 1_000_000
                 ) -> Callable[[ArchChoice], float]:
  """`fn(arch) -> ms` for search: the table's prediction of `decode(arch)`.

  Tables without a network model use the per-position plan (no decode);
  with one, the spec is assembled from the plan's precomputed Layers (equal
  to `decode`'s), predicted, and the result cached by architecture. A
  missing entry or an architecture outside the space raises
  the same one-line HwnasError as `table.predict(decode(space, arch))`.
  """
  from hwnas.latency import table as tbl  # pylint: disable=g-import-not-at-top
  plan = _Plan(table, space)
  if not tbl.covers_space(table, space.name) and not plan.complete():
    raise tbl.TableError(tbl.wrong_space_message(table, space.name))
  slow = lambda a: table.predict(arch_lib.decode(space, a))
  if table.network_model is not None:
    cache: dict[ArchChoice, float] = {}

    def cached(a: ArchChoice) -> float:
      v = cache.get(a)
      if v is None:
        v = table.predict(_spec(plan, space, a))
        if len(cache) < cache_size:
          cache[a] = v
      return v
    return cached

  cal = table.calibration
  a_, b_, c_ = ((cal["a"], cal["b"], cal.get("c_per_layer", 0.0)) if cal
                else (1.0, 0.0, 0.0))

  def fast(a: ArchChoice) -> float:
    if a.space != space.name:
      return slow(a)  # raises the foundation's clear error
    try:
      total, n = plan.layer_sum(a)
    except (KeyError, IndexError, TypeError):
      return slow(a)  # raises a clear error (or covers odd input)
    ms = a_ * total + b_ + c_ * n
    if not 0 <= ms < _INF:  # also NaN
      tbl.checked_ms(table, ms, arch_lib.to_string(a))
    return ms
  return fast


def _spec(plan: "_Plan", space: SearchSpace, a: ArchChoice):
  """`a`'s NetSpec from the plan's cached layers, or by `decode` (which
  raises the clear error for an architecture of another space or shape)."""
  try:
    if a.space != space.name:
      raise KeyError(a.space)
    return plan.spec(a)
  except (KeyError, IndexError, TypeError):
    return arch_lib.decode(space, a)


def make_band_fn(table, space: SearchSpace
                 ) -> Callable[[ArchChoice], tuple[float, float]] | None:
  """`fn(arch) -> (low, high) ms`, the table's uncertainty band of
  `decode(arch)` (cached by architecture), or None when the table has no
  band (measured tables)."""
  nm = table.network_model
  if nm is None or not nm.get("band"):
    return None
  plan = _Plan(table, space)
  cache: dict[ArchChoice, tuple[float, float]] = {}

  def band(a: ArchChoice) -> tuple[float, float]:
    v = cache.get(a)
    if v is None:
      spec = _spec(plan, space, a)
      got = table.predict_band(spec)
      v = got if got is not None else (table.predict(spec),) * 2
      cache[a] = v
    return v
  return band


def describe_missing(table, space: SearchSpace,
                     resolutions: tuple[int, ...] | None = None
                     ) -> dict[str, Any]:
  """Coverage of `space` by `table`: counts and missing layers with origins.

  Returns:
    {"total": n distinct layers, "covered": n, "missing": {key: [origin
    strings]}, "by_type": {type: n missing}}.
  """
  origins = layer_origins(space, resolutions)
  missing = {l: o for l, o in origins.items() if l not in table}
  by_type: dict[str, int] = {}
  for l in missing:
    by_type[l.type] = by_type.get(l.type, 0) + 1
  return {"total": len(origins), "covered": len(origins) - len(missing),
          "missing": {l.key(): [str(o) for o in os_]
                      for l, os_ in sorted(missing.items())},
          "by_type": by_type}
