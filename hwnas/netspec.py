"""Network specs: the concrete, shape-complete description of one network.

A `NetSpec` is the phenotype: a flat tuple of `Layer`s with every shape
fixed (input size, channels, mid channels, kernel, stride, SE, activation,
residual). A search space decodes an architecture choice into a NetSpec;
reference networks (MobileNetV2/V3, MobileNet-EdgeTPU, ...) are NetSpecs
written directly. Everything downstream (MAC/param counting, latency tables,
the standalone Flax model, export) reads NetSpecs and nothing else.

Layer types and what they compute (NHWC, `H` = `input_size`):

A layer has `dims` 2 (an image: H x H, k x k kernels, stride s in both
directions) or 1 (a time series of `input_size` samples: computed as an
image of height 1, [B, 1, T, C], with 1 x k kernels and stride 1 x s). A 1-D
network's layers all have `dims` 1; its key starts `t{T}x{C}` instead of
`i{H}x{H}x{C}`, so a 1-D layer never shares a latency-table entry with a
2-D one. JSON written before `dims` existed loads as images.

* `conv`: k x k convolution, stride s, BatchNorm, activation (stem, head).
* `ibn`: inverted bottleneck. 1x1 expand conv in -> mid (omitted when
  mid == in, as in the first MobileNetV2 block), BN, act; k x k depthwise
  conv with stride s, BN, act; optional squeeze-excite on mid channels
  (avg-pool, 1x1 conv mid -> se, ReLU, 1x1 conv se -> mid, hard-sigmoid,
  multiply); 1x1 project conv mid -> out, BN (linear); residual add.
* `fused_ibn`: fused inverted bottleneck (EfficientNet-EdgeTPU). k x k full
  conv in -> mid with stride s, BN, act (omitted when mid == in, following
  the TF-slim `expanded_conv` it comes from); optional SE; 1x1 project,
  BN (linear); residual add.
* `dsc`: depthwise-separable conv (MobileNetV1): k x k depthwise, BN, act,
  1x1 pointwise in -> out, BN, act.
* `pool`: global average pooling to 1 x 1.
* `fc`: dense layer with bias (no BN), optional activation. Used for the
  MobileNetV3 1x1 "feature" conv after pooling and for the classifier.

Every convolution layer (`conv`, `ibn`, `fused_ibn`, `dsc`) has an `op`:
`mult` (ordinary weights, the default) or `shift` (DeepShift: the weights
of its convolutions, expand, depthwise, fused and project, are signed
powers of two, so each multiply is a bit shift; see
`hwnas.models.deepshift`). Squeeze-excite's two small dense layers and
`fc` layers always multiply.

Squeeze-excite follows MobileNetV3 (ReLU inside, hard-sigmoid gate) for
every activation choice; it is the gate the Edge TPU and TFLite map.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Iterator

from hwnas import errors, validate

LAYER_TYPES = ("conv", "ibn", "fused_ibn", "dsc", "pool", "fc")
BLOCK_TYPES = ("ibn", "fused_ibn", "dsc")
ACTIVATIONS = ("relu", "relu6", "hswish", "swish", "none")
OPS = ("mult", "shift")
SHIFT_TYPES = ("conv", "ibn", "fused_ibn", "dsc")  # layers that may shift

_SCHEMA = "hwnas/netspec@1"


def make_divisible(value: float, divisor: int = 8,
                   min_value: int | None = None) -> int:
  """Rounds channels to a multiple of `divisor`, never below 90% of `value`.

  The rule of the TF-slim / torchvision MobileNet code, so that reference
  networks and decoded spaces agree with the published channel counts.
  """
  min_value = divisor if min_value is None else min_value
  new = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if new < 0.9 * value:
    new += divisor
  return new


def conv_out_size(size: int, stride: int) -> int:
  """Output size of a 'SAME'-padded convolution."""
  return int(math.ceil(size / stride))


@dataclasses.dataclass(frozen=True, order=True)
class Layer:
  """One layer or block of a network, with all shapes fixed.

  Fields that do not apply to a type are left at their defaults (0, 1,
  'none', False); `__post_init__` enforces that, so equal networks always
  have equal Layers and Layers can key latency tables directly.
  """

  type: str
  input_size: int            # H == W of the input feature map
  in_channels: int
  out_channels: int
  mid_channels: int = 0      # ibn / fused_ibn only
  kernel: int = 1
  stride: int = 1
  se_channels: int = 0       # 0: no squeeze-excite
  activation: str = "none"
  residual: bool = False
  op: str = "mult"           # 'mult' | 'shift' (conv layers and blocks)
  dims: int = 2              # 2: H x H image; 1: 1 x T time series

  def __post_init__(self):
    t = self.type
    if self.dims not in (1, 2) or isinstance(self.dims, bool):
      raise errors.SpecError(f"{t}: dims must be 1 (time series) or 2 "
                             f"(image), got {self.dims!r}")
    if self.op not in OPS:
      raise errors.SpecError(
          f"{t}: op {self.op!r} is unknown; allowed: {', '.join(OPS)}")
    if self.op != "mult" and t not in SHIFT_TYPES:
      raise errors.SpecError(
          f"{t}: op {self.op!r} applies to {', '.join(SHIFT_TYPES)} only; "
          "leave it 'mult'")
    if t not in LAYER_TYPES:
      raise errors.SpecError(
          f"layer type {t!r} is unknown; allowed: {', '.join(LAYER_TYPES)}")
    if self.activation not in ACTIVATIONS:
      raise errors.SpecError(
          f"{t}: activation {self.activation!r} is unknown; allowed: "
          f"{', '.join(ACTIVATIONS)}")
    for name in ("input_size", "in_channels", "out_channels"):
      if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
        raise errors.SpecError(f"{t}: {name} must be a positive integer, got "
                               f"{getattr(self, name)!r}")
    if self.kernel <= 0 or self.stride <= 0:
      raise errors.SpecError(f"{t}: kernel and stride must be positive")
    if t in ("ibn", "fused_ibn"):
      if self.mid_channels <= 0:
        raise errors.SpecError(f"{t}: mid_channels must be positive")
    elif self.mid_channels:
      raise errors.SpecError(f"{t}: mid_channels applies to ibn/fused_ibn "
                             "only; leave it 0")
    if t not in ("ibn", "fused_ibn") and self.se_channels:
      raise errors.SpecError(f"{t}: se_channels applies to ibn/fused_ibn only")
    if t in ("pool", "fc") and (self.kernel != 1 or self.stride != 1):
      raise errors.SpecError(f"{t}: kernel and stride must be 1")
    if t == "pool" and self.in_channels != self.out_channels:
      raise errors.SpecError("pool: in_channels must equal out_channels")
    if t == "fc" and self.input_size != 1:
      raise errors.SpecError("fc: input_size must be 1 (it follows a pool)")
    if self.residual and (self.stride != 1 or
                          self.in_channels != self.out_channels or
                          t not in BLOCK_TYPES):
      raise errors.SpecError(
          f"{t}: a residual needs stride 1 and in_channels == out_channels")

  @property
  def output_size(self) -> int:
    if self.type == "pool":
      return 1
    return conv_out_size(self.input_size, self.stride)

  @property
  def input_hw(self) -> tuple[int, int]:
    """(height, width) of the input: (1, T) for a time series."""
    return (1, self.input_size) if self.dims == 1 else (self.input_size,) * 2

  @property
  def output_hw(self) -> tuple[int, int]:
    """(height, width) of the output: (1, T') for a time series."""
    o = self.output_size
    return (1, o) if self.dims == 1 else (o, o)

  @property
  def input_positions(self) -> int:
    """Spatial positions of the input (H * W, or T)."""
    h, w = self.input_hw
    return h * w

  @property
  def output_positions(self) -> int:
    """Spatial positions of the output (H' * W', or T')."""
    h, w = self.output_hw
    return h * w

  @property
  def has_expand(self) -> bool:
    """Whether an ibn/fused_ibn has its expansion conv (mid != in)."""
    return (self.type in ("ibn", "fused_ibn") and
            self.mid_channels != self.in_channels)

  def key(self) -> str:
    """Canonical signature string, e.g. 'ibn-i56x56x24-o24-m72-k3-s1-...'.

    Stable across versions: latency tables are keyed by it. A `shift`
    layer's key ends in '-shift' (a `mult` layer's has no op part, as
    before ops existed).
    """
    s = self.input_size
    shape = (f"t{s}x{self.in_channels}" if self.dims == 1 else
             f"i{s}x{s}x{self.in_channels}")
    parts = [self.type, shape, f"o{self.out_channels}"]
    if self.type in ("ibn", "fused_ibn"):
      parts.append(f"m{self.mid_channels}")
    if self.type not in ("pool", "fc"):
      parts += [f"k{self.kernel}", f"s{self.stride}"]
    if self.type in ("ibn", "fused_ibn"):
      parts.append(f"se{self.se_channels}")
    if self.type != "pool":
      parts.append(self.activation)
    if self.type in BLOCK_TYPES:
      parts.append("res" if self.residual else "nores")
    if self.op != "mult":
      parts.append(self.op)
    return "-".join(parts)

  def as_mult(self) -> "Layer":
    """The same layer with ordinary multiplies (what latency tables time
    for a shift layer)."""
    return dataclasses.replace(self, op="mult") if self.op != "mult" else self

  def to_dict(self) -> dict[str, Any]:
    """Only the fields that apply (defaults dropped), for readable JSON."""
    out = {}
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if f.name in ("type", "input_size", "in_channels", "out_channels") or (
          v != f.default):
        out[f.name] = v
    return out

  @classmethod
  def from_dict(cls, d: dict[str, Any], *, where: str = "") -> "Layer":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise errors.SpecError(
          f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    try:
      return cls(**d)
    except TypeError as e:
      raise errors.SpecError(f"{where}: {e}") from None
    except errors.SpecError as e:
      raise errors.SpecError(f"{where}: {e}") from None


@dataclasses.dataclass(frozen=True)
class NetSpec:
  """A whole network: input shape plus a chain of layers.

  The layers must chain: each layer's input size and channels equal the
  previous layer's output. The last layer is the classifier (`fc` with
  `num_classes` outputs).
  """

  name: str
  resolution: int
  in_channels: int
  layers: tuple[Layer, ...]
  num_classes: int = dataclasses.field(init=False)

  def __post_init__(self):
    if not self.layers:
      raise errors.SpecError(f"{self.name}: a network needs layers")
    size, ch = self.resolution, self.in_channels
    dims = self.layers[0].dims
    for i, layer in enumerate(self.layers):
      if layer.dims != dims:
        raise errors.SpecError(
            f"{self.name}: layers[{i}] ({layer.type}) has dims {layer.dims} "
            f"but layers[0] has {dims}; a network is all 1-D or all 2-D")
      if (layer.input_size, layer.in_channels) != (size, ch):
        shape = lambda n, c: f"{n}x{c}" if dims == 1 else f"{n}x{n}x{c}"
        raise errors.SpecError(
            f"{self.name}: layers[{i}] ({layer.type}) expects input "
            f"{shape(layer.input_size, layer.in_channels)} but receives "
            f"{shape(size, ch)}")
      size, ch = layer.output_size, layer.out_channels
    if self.layers[-1].type != "fc":
      raise errors.SpecError(f"{self.name}: the last layer must be an fc "
                             "classifier")
    object.__setattr__(self, "layers", tuple(self.layers))
    object.__setattr__(self, "num_classes", ch)

  @property
  def dims(self) -> int:
    """1 for a time-series network, 2 for an image network."""
    return self.layers[0].dims

  @property
  def kind(self) -> str:
    """'timeseries' or 'image' (the input kind of `hwnas.data`)."""
    return "timeseries" if self.dims == 1 else "image"

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """(H, W, C) the network computes on: (1, T, C) for a time series."""
    if self.dims == 1:
      return (1, self.resolution, self.in_channels)
    return (self.resolution, self.resolution, self.in_channels)

  @property
  def blocks(self) -> tuple[Layer, ...]:
    return tuple(l for l in self.layers if l.type in BLOCK_TYPES)

  def __iter__(self) -> Iterator[Layer]:
    return iter(self.layers)

  def to_dict(self) -> dict[str, Any]:
    return {
        "schema": _SCHEMA,
        "name": self.name,
        "resolution": self.resolution,
        "in_channels": self.in_channels,
        "num_classes": self.num_classes,
        "layers": [l.to_dict() for l in self.layers],
    }

  def to_json(self, indent: int | None = 1) -> str:
    return json.dumps(self.to_dict(), indent=indent)

  @classmethod
  def from_dict(cls, d: dict[str, Any], *, where: str = "<netspec>"
                ) -> "NetSpec":
    if not isinstance(d, dict):
      raise errors.SpecError(f"{where}: expected a JSON object")
    if d.get("schema", _SCHEMA) != _SCHEMA:
      raise errors.SpecError(f"{where}: schema {d.get('schema')!r} is not "
                             f"supported; expected {_SCHEMA!r}")
    allowed = {"schema", "name", "resolution", "in_channels", "num_classes",
               "layers", "description", "source"}
    unknown = sorted(set(d) - allowed)
    if unknown:
      raise errors.SpecError(
          f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for k in ("name", "resolution", "in_channels", "layers"):
      if k not in d:
        raise errors.SpecError(f"{where}: missing key {k!r}")
    layers = tuple(Layer.from_dict(l, where=f"{where}: layers[{i}]")
                   for i, l in enumerate(d["layers"]))
    try:
      spec = cls(name=d["name"], resolution=d["resolution"],
                 in_channels=d["in_channels"], layers=layers)
    except errors.SpecError as e:
      raise errors.SpecError(f"{where}: {e}") from None
    if "num_classes" in d and d["num_classes"] != spec.num_classes:
      raise errors.SpecError(
          f"{where}: num_classes is {d['num_classes']} but the classifier has "
          f"{spec.num_classes} outputs")
    return spec

  @classmethod
  def from_json(cls, text: str, *, where: str = "<netspec>") -> "NetSpec":
    try:
      d = validate.load_json(text, where)
    except errors.HwnasError as e:
      raise errors.SpecError(str(e)) from None
    return cls.from_dict(d, where=where)


def load(path: str | os.PathLike[str]) -> NetSpec:
  """Loads a network-spec JSON file (or `{"netspec": ...}` wrapper)."""
  p = pathlib.Path(path)
  if not p.is_file():
    raise errors.SpecError(f"{p}: no such network-spec file")
  try:
    d = validate.load_json(errors.read_text(p, what="network spec JSON"),
                           str(p))
  except errors.HwnasError as e:
    raise errors.SpecError(str(e)) from None
  if isinstance(d, dict) and "netspec" in d:
    d = d["netspec"]
  return NetSpec.from_dict(d, where=str(p))


def save(spec: NetSpec, path: str | os.PathLike[str]) -> None:
  pathlib.Path(path).write_text(spec.to_json() + "\n")


def with_resolution(spec: NetSpec, resolution: int) -> NetSpec:
  """Re-derives every layer's input size for another input resolution."""
  size, layers = resolution, []
  for l in spec.layers:
    l = dataclasses.replace(l, input_size=size)
    layers.append(l)
    size = l.output_size
  return NetSpec(spec.name, resolution, spec.in_channels, tuple(layers))


def with_num_classes(spec: NetSpec, num_classes: int) -> NetSpec:
  """Replaces the classifier's output width."""
  last = dataclasses.replace(spec.layers[-1], out_channels=num_classes)
  return NetSpec(spec.name, spec.resolution, spec.in_channels,
                 spec.layers[:-1] + (last,))
