"""Published reference networks, written as NetSpecs.

Each builder follows the official definition named in its docstring. The
shipped files `search_spaces/references/<name>.json` are generated from
these builders (`python scripts/make_references.py`), and a test checks that
the files and the builders agree. Users load references by name:

>>> from hwnas import references
>>> spec = references.load("mobilenet_v2_1.0")
"""

from __future__ import annotations

import math
import pathlib

from hwnas import errors, netspec, resources
from hwnas.netspec import Layer, NetSpec, make_divisible

_NUM_CLASSES = 1000


class _Builder:
  """Chains layers, tracking the current feature-map size and channels."""

  def __init__(self, resolution: int, in_channels: int = 3):
    self.size, self.ch, self.layers = resolution, in_channels, []

  def add(self, type_: str, out: int, **kw) -> None:
    layer = Layer(type_, self.size, self.ch, out, **kw)
    self.layers.append(layer)
    self.size, self.ch = layer.output_size, out

  def conv(self, out, k, s, act):
    self.add("conv", out, kernel=k, stride=s, activation=act)

  def block(self, type_, out, *, mid, k, s, act, se=0, residual=None):
    if residual is None:
      residual = s == 1 and self.ch == out
    self.add(type_, out, mid_channels=mid, kernel=k, stride=s,
             se_channels=se, activation=act, residual=residual)

  def head(self, *, expand, feature, act, num_classes):
    if expand:
      self.conv(expand, 1, 1, act)
    self.add("pool", self.ch)
    if feature:
      self.add("fc", feature, activation=act)
    self.add("fc", num_classes)

  def spec(self, name, resolution, in_channels=3) -> NetSpec:
    return NetSpec(name, resolution, in_channels, tuple(self.layers))


def mobilenet_v1(width: float = 1.0, resolution: int = 224) -> NetSpec:
  """MobileNetV1 (Howard et al. 2017, TF-slim `mobilenet_v1.py`).

  Channels are `max(int(c * width), 8)` as in slim's `depth()`; ReLU6.
  """
  ch = lambda c: max(int(c * width), 8)
  b = _Builder(resolution)
  b.conv(ch(32), 3, 2, "relu6")
  for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
               (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
               (1024, 1)]:
    b.add("dsc", ch(c), kernel=3, stride=s, activation="relu6")
  b.head(expand=0, feature=0, act="none", num_classes=_NUM_CLASSES)
  return b.spec(f"mobilenet_v1_{width}", resolution)


def mobilenet_v2(resolution: int = 224) -> NetSpec:
  """MobileNetV2 1.0 (Sandler et al. 2018, Table 2; torchvision/slim)."""
  b = _Builder(resolution)
  b.conv(32, 3, 2, "relu6")
  for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                     (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                     (6, 320, 1, 1)]:
    for i in range(n):
      b.block("ibn", c, mid=make_divisible(b.ch * t), k=3,
              s=s if i == 0 else 1, act="relu6")
  b.head(expand=1280, feature=0, act="relu6", num_classes=_NUM_CLASSES)
  return b.spec("mobilenet_v2_1.0", resolution)


# MobileNetV3 rows: kernel, expanded channels, out, SE, activation, stride
# (Howard et al. 2019, Tables 1-2; identical to slim V3_LARGE / V3_SMALL).
_V3_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1), (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
]
_V3_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1), (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2), (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
]


def _mobilenet_v3(name, rows, expand, feature, resolution) -> NetSpec:
  b = _Builder(resolution)
  b.conv(16, 3, 2, "hswish")
  for k, mid, out, se, act, s in rows:
    b.block("ibn", out, mid=mid, k=k, s=s, act=act,
            se=make_divisible(mid / 4) if se else 0)
  b.head(expand=expand, feature=feature, act="hswish",
         num_classes=_NUM_CLASSES)
  return b.spec(name, resolution)


def mobilenet_v3_large(resolution: int = 224) -> NetSpec:
  """MobileNetV3-Large 1.0 (slim `V3_LARGE`; SE squeeze = mid/4 -> x8)."""
  return _mobilenet_v3("mobilenet_v3_large_1.0", _V3_LARGE, 960, 1280,
                       resolution)


def mobilenet_v3_small(resolution: int = 224) -> NetSpec:
  """MobileNetV3-Small 1.0 (slim `V3_SMALL`, no SE on the last 1x1 conv)."""
  return _mobilenet_v3("mobilenet_v3_small_1.0", _V3_SMALL, 576, 1024,
                       resolution)


def mobilenet_edgetpu(resolution: int = 224) -> NetSpec:
  """MobileNet-EdgeTPU 1.0 (TF-slim `mobilenet_v3.V3_EDGETPU`).

  Slim's `expanded_conv` skips the expansion when the expanded size does not
  exceed the input, so the first fused block (expansion 1) is a bare 1x1
  projection 32 -> 16; we keep that quirk to match the official graph.
  Expanded sizes are `make_divisible(in * t, 8)`; ReLU; no SE.
  """
  rows = ([("fused_ibn", 3, 1, 1, 16)] +
          [("fused_ibn", 3, s, t, 32) for s, t in
           [(2, 8), (1, 4), (1, 4), (1, 4)]] +
          [("fused_ibn", 3, s, t, 48) for s, t in
           [(2, 8), (1, 4), (1, 4), (1, 4)]] +
          [("ibn", 3, s, t, 96) for s, t in
           [(2, 8), (1, 4), (1, 4), (1, 4), (1, 8), (1, 4), (1, 4), (1, 4)]] +
          [("ibn", 5, s, t, 160) for s, t in
           [(2, 8), (1, 4), (1, 4), (1, 4)]] +
          [("ibn", 3, 1, 8, 192)])
  b = _Builder(resolution)
  b.conv(32, 3, 2, "relu")
  for i, (type_, k, s, t, out) in enumerate(rows):
    residual = False if i == 13 else None   # slim: residual=False there
    b.block(type_, out, mid=make_divisible(b.ch * t), k=k, s=s, act="relu",
            residual=residual)
  b.head(expand=1280, feature=0, act="relu", num_classes=_NUM_CLASSES)
  return b.spec("mobilenet_edgetpu_1.0", resolution)


# EfficientNet-EdgeTPU block strings (tensorflow/tpu
# models/official/efficientnet/edgetpu/efficientnet_edgetpu_builder.py):
# repeats, kernel, stride, expand, in, out, fused ('c1'), skip.
_EFFNET_EDGETPU = [
    (1, 3, 1, 4, 24, 24, True, False), (2, 3, 2, 8, 24, 32, True, True),
    (4, 3, 2, 8, 32, 48, True, True), (5, 5, 2, 8, 48, 96, False, True),
    (4, 5, 1, 8, 96, 144, False, True), (2, 5, 2, 8, 144, 192, False, True),
]
_EFFNET_EDGETPU_SCALING = {  # width, depth, resolution
    "S": (1.0, 1.0, 224), "M": (1.0, 1.1, 240), "L": (1.2, 1.4, 300)}


def efficientnet_edgetpu(variant: str = "S",
                         resolution: int | None = None) -> NetSpec:
  """EfficientNet-EdgeTPU S/M/L (tensorflow/tpu efficientnet_edgetpu_builder).

  `round_filters`/`round_repeats` as in `efficientnet_builder`; the expand
  width is `input_filters * expand_ratio` of the block string (the first
  block expands the 32-channel stem to 24 * 4 = 96, as in the official
  graph); ReLU; no SE; `noskip` drops the first block's residual.
  """
  width, depth, default_res = _EFFNET_EDGETPU_SCALING[variant]
  resolution = resolution or default_res
  rf = lambda f: make_divisible(f * width, 8)
  b = _Builder(resolution)
  b.conv(rf(32), 3, 2, "relu")
  for repeats, k, s, e, cin, cout, fused, skip in _EFFNET_EDGETPU:
    cin, cout = rf(cin), rf(cout)
    for i in range(int(math.ceil(depth * repeats))):
      b.block("fused_ibn" if fused else "ibn", cout,
              mid=(cin if i == 0 else cout) * e, k=k, s=s if i == 0 else 1,
              act="relu", residual=None if skip else False)
  b.head(expand=rf(1280), feature=0, act="relu", num_classes=_NUM_CLASSES)
  return b.spec(f"efficientnet_edgetpu_{variant}", resolution)


BUILDERS = {
    "mobilenet_v1_0.25": lambda: mobilenet_v1(0.25),
    "mobilenet_v1_0.5": lambda: mobilenet_v1(0.5),
    "mobilenet_v1_0.75": lambda: mobilenet_v1(0.75),
    "mobilenet_v1_1.0": lambda: mobilenet_v1(1.0),
    "mobilenet_v2_1.0": mobilenet_v2,
    "mobilenet_v3_large_1.0": mobilenet_v3_large,
    "mobilenet_v3_small_1.0": mobilenet_v3_small,
    "mobilenet_edgetpu_1.0": mobilenet_edgetpu,
    "efficientnet_edgetpu_S": lambda: efficientnet_edgetpu("S"),
    "efficientnet_edgetpu_M": lambda: efficientnet_edgetpu("M"),
    "efficientnet_edgetpu_L": lambda: efficientnet_edgetpu("L"),
}

# Published figures (MACs, params) the counts are tested against, with the
# source of each. None: not published as a number we could verify.
# MobileNetV1: MACs from the paper (Howard et al. 2017, Table 6), params
# from slim's mobilenet_v1.md, which gives two decimals where the paper
# rounds to 0.1M. The two disagree only on the 0.75 MACs (paper 325M, slim
# 317M); we follow the paper, whose layer table our count reproduces.
PUBLISHED = {
    "mobilenet_v1_1.0": (569e6, 4.24e6),
    "mobilenet_v1_0.75": (325e6, 2.59e6),
    "mobilenet_v1_0.5": (149e6, 1.34e6),
    "mobilenet_v1_0.25": (41e6, 0.47e6),
    "mobilenet_v2_1.0": (300e6, 3.47e6),    # Sandler et al. 2018, Table 4
    "mobilenet_v3_large_1.0": (219e6, 5.4e6),  # Howard et al. 2019, Table 3
    "mobilenet_v3_small_1.0": (56e6, 2.5e6),   # Howard et al. 2019, Table 3
    "mobilenet_edgetpu_1.0": (990e6, 4.0e6),   # slim mobilenet README
}


def names() -> list[str]:
  return sorted(BUILDERS)


def references_dir() -> pathlib.Path:
  return resources.search_spaces_dir() / "references"


def load(name: str, *, resolution: int | None = None,
         num_classes: int | None = None) -> NetSpec:
  """Loads a shipped reference network by name (see `names()`)."""
  path = references_dir() / f"{name}.json"
  if not path.is_file():
    raise errors.SpecError(
        f"unknown reference network {name!r}; available: {', '.join(names())}")
  spec = netspec.load(path)
  if resolution:
    spec = netspec.with_resolution(spec, resolution)
  if num_classes:
    spec = netspec.with_num_classes(spec, num_classes)
  return spec
