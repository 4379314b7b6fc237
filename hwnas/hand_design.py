"""Hand-designed networks of a space: the baselines a search must beat.

A person targeting a latency budget takes a published design and scales it,
the way MobileNetV2 and MobileNetV3 scale themselves: by a width multiplier
(the same for every stage) and by the input resolution, picking the largest
member that fits. `templates(space)` writes two such designs *in the
space's own blocks*, so they are members of the space and get the same
latency table, training recipe and evaluation as a search result:

- `mobilenetv2`: MobileNetV2's block everywhere: inverted bottleneck
  (`ibn`), kernel 3, expansion 6, no squeeze-excite, ReLU; every stage at
  its deepest.
- `mobilenetv3`: MobileNetV3-Small's published block pattern: the first
  stage kernel 3 with squeeze-excite and ReLU and a small expansion; the
  second kernel 3, ReLU, no squeeze-excite, expansion about 4.5; every
  later stage kernel 5 with squeeze-excite, hard-swish and expansion 6;
  every stage at its deepest.

A choice the space lacks becomes the nearest one it has (e.g. expansion 6
where the space offers {4, 8} becomes 4, ties going to the smaller).
`scaled(space, template, multiplier_index, resolution)` is one member of a
family; `largest_under(space, template, cost, target)` the member with the
highest cost at or under the target (a person spends the budget), or None
when even the smallest is over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hwnas import arch as arch_lib
from hwnas.errors import HwnasError
from hwnas.space import SearchSpace, Stage

ArchChoice = arch_lib.ArchChoice
BlockChoice = arch_lib.BlockChoice

# (type, kernel, expansion, se, activation) wanted per stage, as a function
# of the stage index and the number of stages.
Pattern = Callable[[int, int], tuple[str, int, float, bool, str]]


def _mobilenetv2(i: int, n: int) -> tuple[str, int, float, bool, str]:
  del i, n
  return ("ibn", 3, 6.0, False, "relu")


def _mobilenetv3(i: int, n: int) -> tuple[str, int, float, bool, str]:
  del n
  if i == 0:
    return ("ibn", 3, 1.0, True, "relu")
  if i == 1:
    return ("ibn", 3, 4.5, False, "relu")
  return ("ibn", 5, 6.0, True, "hswish")


TEMPLATES: dict[str, Pattern] = {"mobilenetv2": _mobilenetv2,
                                 "mobilenetv3": _mobilenetv3}


def _nearest(options: Sequence, want):
  if want in options:
    return want
  if isinstance(want, str) or isinstance(want, bool):
    return options[0]
  return min(options, key=lambda o: (abs(o - want), o))


def _block(st: Stage, j: int, want) -> BlockChoice:
  kind, kernel, expansion, se, act = want
  types = [t for t in st.types_for(j) if t != "skip"]
  if act not in st.activations and act == "hswish":
    act = "swish" if "swish" in st.activations else st.activations[0]
  return BlockChoice(type=_nearest(types, kind),
                     kernel=_nearest(st.kernels, kernel),
                     expansion=_nearest(st.expansions, expansion),
                     se=_nearest(st.se, se),
                     activation=_nearest(st.activations, act))


def scaled(space: SearchSpace, template: str, multiplier_index: int,
           resolution: int) -> ArchChoice:
  """The member of `template`'s family with every stage at its
  `multiplier_index`-th smallest width, at `resolution`."""
  if template not in TEMPLATES:
    raise HwnasError(f"template {template!r}: use one of {list(TEMPLATES)}")
  pattern, n = TEMPLATES[template], len(space.stages)
  widths, blocks = [], []
  for i, st in enumerate(space.stages):
    ws = sorted(st.widths)
    widths.append(ws[min(multiplier_index, len(ws) - 1)])
    blocks.append(tuple(_block(st, j, pattern(i, n))
                        for j in range(st.max_depth)))
  a = ArchChoice(space=space.name, resolution=int(resolution),
                 widths=tuple(widths),
                 depths=tuple(st.max_depth for st in space.stages),
                 blocks=tuple(blocks))
  a = arch_lib.canonicalize(space, a)
  arch_lib.validate(space, a)
  return a


def family(space: SearchSpace, template: str) -> list[ArchChoice]:
  """Every width multiplier x resolution member of `template`."""
  n = max(len(st.widths) for st in space.stages)
  return [scaled(space, template, m, r) for m in range(n)
          for r in sorted(space.resolutions)]


def largest_under(space: SearchSpace, template: str,
                  cost: Callable[[ArchChoice], float],
                  target: float) -> ArchChoice | None:
  """The member of `template`'s family with the highest cost <= `target`
  (ties: the higher resolution), or None if none fits."""
  fits = [(cost(a), a.resolution, a) for a in family(space, template)]
  fits = [f for f in fits if f[0] <= target]
  if not fits:
    return None
  return max(fits, key=lambda f: (f[0], f[1]))[2]


def describe(arch: ArchChoice, space: SearchSpace) -> str:
  """'width 2/4, 24 px': which width choice and resolution a member has."""
  i = sorted(space.stages[0].widths).index(arch.widths[0])
  return (f"width {i + 1}/{len(space.stages[0].widths)}, "
          f"{arch.resolution} px")
