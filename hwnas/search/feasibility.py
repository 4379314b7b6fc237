"""Feasibility under a hard cost target: the fastest reachable architecture,
an up-front impossible-target check, and a bounded repair.

Latency from a table need not be monotone in MACs, so `smallest()` (fewest
MACs) is only a starting point. `fastest` runs coordinate descent over every
gene (exact for a cost that is additive per slot with resolution and widths
fixed, and in practice for table sums) plus a bounded random and mutation
probe for black-box costs, and reports the best architecture it found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.arch import ArchChoice
from hwnas.space import SearchSpace

Gene = tuple  # ("resolution",) | ("widths", i) | ("depths", i) |
              # ("block", stage, slot, field) | ("stem_op",) | ("head_op",)
_FIELDS = ("type", "kernel", "expansion", "se", "activation", "op")


def genes(space: SearchSpace) -> list[Gene]:
  """Every gene of the space, in a fixed order."""
  out: list[Gene] = [("resolution",)]
  for i in range(len(space.stages)):
    out += [("widths", i), ("depths", i)]
  for s, st in enumerate(space.stages):
    for j in range(st.max_depth):
      # No op gene where a stage offers one op: spaces without `ops` keep
      # the gene list (and so the random descent order) they had before.
      out += [("block", s, j, f) for f in _FIELDS
              if f != "op" or len(st.ops) > 1]
  # Likewise the stem / head op, a gene only where the space offers both.
  out += [(g,) for g, ops in (("stem_op", space.stem.ops),
                              ("head_op", space.head.ops)) if len(ops) > 1]
  return out


def options(space: SearchSpace, gene: Gene) -> tuple:
  """The allowed values of a gene."""
  if gene[0] == "resolution":
    return space.resolutions
  if gene[0] in ("stem_op", "head_op"):
    return (space.stem if gene[0] == "stem_op" else space.head).ops
  st = space.stages[gene[1]]
  if gene[0] in ("widths", "depths"):
    return getattr(st, gene[0])
  field = gene[3]
  if field == "type":
    return st.types_for(gene[2])
  return {"kernel": st.kernels, "expansion": st.expansions, "se": st.se,
          "activation": st.activations, "op": st.ops}[field]


def get(arch: ArchChoice, gene: Gene):
  """The value of a gene in an architecture."""
  if gene[0] in ("resolution", "stem_op", "head_op"):
    return getattr(arch, gene[0])
  if gene[0] in ("widths", "depths"):
    return getattr(arch, gene[0])[gene[1]]
  return getattr(arch.blocks[gene[1]][gene[2]], gene[3])


def set_gene(space: SearchSpace, arch: ArchChoice, gene: Gene,
             value) -> ArchChoice:
  """A canonical copy of `arch` with one gene replaced."""
  if gene[0] in ("resolution", "stem_op", "head_op"):
    return dataclasses.replace(arch, **{gene[0]: value})
  if gene[0] in ("widths", "depths"):
    vals = list(getattr(arch, gene[0]))
    vals[gene[1]] = value
    return arch_lib.canonicalize(
        space, dataclasses.replace(arch, **{gene[0]: tuple(vals)}))
  _, s, j, field = gene
  blocks = [list(bs) for bs in arch.blocks]
  b = blocks[s][j]
  if field == "type" and b.type == "skip" and value != "skip":
    st = space.stages[s]
    b = arch_lib.BlockChoice(value, st.kernels[0], st.expansions[0],
                             st.se[0], st.activations[0], st.ops[0])
  else:
    b = dataclasses.replace(b, **{field: value})
  blocks[s][j] = b
  return arch_lib.canonicalize(space, dataclasses.replace(
      arch, blocks=tuple(tuple(bs) for bs in blocks)))


def neighbours(space: SearchSpace, arch: ArchChoice) -> Iterator[ArchChoice]:
  """All architectures that differ from `arch` in exactly one live gene."""
  seen = {arch}
  for g in genes(space):
    for v in options(space, g):
      if v != get(arch, g):
        n = set_gene(space, arch, g, v)
        if n not in seen:
          seen.add(n)
          yield n


def fastest(space: SearchSpace, cost_fn: Callable[[ArchChoice], float],
            rng: np.random.Generator, *, passes: int = 4,
            probe: int = 200) -> tuple[ArchChoice, float]:
  """The lowest-cost architecture found (see the module docstring).

  Args:
    space: the search space.
    cost_fn: architecture -> cost (e.g. latency in ms).
    rng: generator for the random and mutation probes.
    passes: maximum coordinate-descent sweeps.
    probe: random samples, and as many mutations of the incumbent.

  Returns:
    (architecture, its cost).
  """
  best = arch_lib.smallest(space)
  best_cost = float(cost_fn(best))
  for _ in range(probe):
    a = arch_lib.sample(rng, space)
    c = float(cost_fn(a))
    if c < best_cost:
      best, best_cost = a, c
  for _ in range(probe):
    a = arch_lib.mutate(rng, space, best, 0.1)
    c = float(cost_fn(a))
    if c < best_cost:
      best, best_cost = a, c
  for _ in range(passes):
    improved = False
    for n in neighbours(space, best):
      c = float(cost_fn(n))
      if c < best_cost:
        best, best_cost, improved = n, c, True
    if not improved:
      break
  return best, best_cost


def repair(rng: np.random.Generator, space: SearchSpace, arch: ArchChoice,
           anchor: ArchChoice,
           ok_fn: Callable[[ArchChoice], bool]) -> ArchChoice | None:
  """Moves `arch` gene by gene (random order) towards a feasible `anchor`.

  Returns the first architecture on the way for which `ok_fn` holds, or
  None. Terminates after at most one step per gene; the last step reaches
  `anchor` itself.
  """
  gs = genes(space)
  for k in rng.permutation(len(gs)):
    g = gs[int(k)]
    if get(arch, g) != get(anchor, g):
      arch = set_gene(space, arch, g, get(anchor, g))
      if ok_fn(arch):
        return arch
  return arch if ok_fn(arch) else None


def check_target(space: SearchSpace, name: str, target: float,
                 cost_fn: Callable[[ArchChoice], float],
                 rng: np.random.Generator) -> tuple[ArchChoice, float]:
  """Raises HwnasError if no architecture found meets `cost <= target`.

  `fastest` is exact for per-slot additive costs and a search otherwise,
  so the message speaks of the lowest cost *found*.

  Returns:
    The fastest architecture found and its cost.
  """
  a, c = fastest(space, cost_fn, rng)
  if c > target:
    u = name.rsplit("_", 1)[1] if "_" in name else name
    what = "latency" if "latency" in name else name
    flag = ("the target (CLI: --target-ms; Python API: target=)"
            if "latency" in name else
            f"the target on {name} (CLI: --target; Python API: target=)")
    if name.startswith("energy_uj"):
      what, u, flag = "energy", "µJ", "the target (CLI: --target-uj; Python API: target_uj=)"
    raise errors.HwnasError(
        f"target {target:g} {u} is below the lowest {what} found in "
        f"space {space.id} ({c:.4g} {u}, arch {arch_lib.to_string(a)}); "
        f"raise {flag}")
  return a, c
