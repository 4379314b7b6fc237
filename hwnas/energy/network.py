"""Energy of a `NetSpec`'s layers: each layer as the convolutions it runs.

A layer is split into the convolutions the accelerator runs one after the
other, each mapped on its own (`rowstationary.map_conv`) with its ifmap read
from and its ofmap written to DRAM (Eyeriss runs a network layer by layer;
nothing stays on chip between convolutions):

A time-series (1-D) layer runs the same convolutions with height 1: input
1 x T, kernels 1 x k (`ConvShape` with h = r = 1, w = T, s = k).

* `conv`: one full convolution; `fc`: a 1x1 convolution of a 1x1 input.
* `ibn`: 1x1 expand (when mid != in), k x k depthwise (groups = mid),
  squeeze-excite (two fc layers), 1x1 project.
* `fused_ibn`: k x k full convolution in -> mid (when mid != in), SE,
  1x1 project (with stride s when the expansion is omitted, as counted by
  `hwnas.counting`).
* `dsc`: k x k depthwise, 1x1 pointwise.
* `pool`: no MACs; its ifmap is read from DRAM once.

A `shift` layer (op 'shift': power-of-two weights) runs every one of its
convolutions except squeeze-excite's as shift-adds: their shapes carry
`op="shift"`, which the MAC level charges at `ops.shift` instead of
`ops.mac` (`Accelerator.op_cost`). Memory traffic is charged as for the
multiply layer (the weights are counted at the full word width; a shift
weight needs fewer bits, so this overestimates a shift layer's filter
traffic).

Element-wise work is charged as DRAM traffic only: squeeze-excite's
pooling and gate read the mid tensor once more, a residual add reads the
block input once more. Activations, BatchNorm (folded) and biases cost
nothing. Energies are in microjoules (`Accelerator.mac_pj`).
"""

from __future__ import annotations

import dataclasses
import math

from hwnas.energy.accelerator import LEVELS, Accelerator
from hwnas.energy.rowstationary import ConvEnergy, ConvShape, map_conv
from hwnas.netspec import Layer, NetSpec


@dataclasses.dataclass(frozen=True)
class LayerEnergy:
  """A layer's energy by level (µJ), its parts, MACs and cycles."""

  layer: Layer
  by_level_uj: dict[str, float]         # dram, glb, noc, rf, mac
  parts: tuple[tuple[str, ConvEnergy], ...]
  extra_dram_words: float
  macs: int
  cycles: float

  @property
  def total_uj(self) -> float:
    return math.fsum(self.by_level_uj.values())

  def to_extras(self) -> dict[str, float]:
    """The per-level split and cycles, for a table entry's `extras`."""
    out = {f"{k}_uj": _round(v) for k, v in self.by_level_uj.items()}
    out["cycles"] = _round(self.cycles)
    out["macs"] = self.macs
    return out


def _round(x: float) -> float:
  return float(f"{x:.6g}")


def layer_convs(layer: Layer, batch: int = 1
                ) -> tuple[list[tuple[str, ConvShape]], float]:
  """(named convolutions of `layer`, extra element-wise DRAM words)."""
  t, k, s = layer.type, layer.kernel, layer.stride
  cin, cout, mid = layer.in_channels, layer.out_channels, layer.mid_channels
  h, e = layer.input_size, layer.output_size

  def shape(g, m, c, hh, kk, ss):
    if layer.dims == 1:   # 1 x T input, 1 x k kernel (H = R = E = 1)
      return ConvShape(batch, g, m, c, 1, 1, ss, w=hh, s=kk)
    return ConvShape(batch, g, m, c, hh, kk, ss)

  full = lambda ci, co, hh, kk, ss: shape(1, co, ci, hh, kk, ss)
  dw = lambda ch, hh: shape(ch, 1, 1, hh, k, s)
  fc = lambda ci, co: ConvShape(batch, 1, co, ci, 1, 1, 1)
  extra = 0.0
  if t == "conv":
    convs = [("conv", full(cin, cout, h, k, s))]
  elif t == "fc":
    convs = [("fc", fc(cin, cout))]
  elif t == "pool":
    convs, extra = [], float(batch * cin * layer.input_positions)
  elif t == "dsc":
    convs = [("depthwise", dw(cin, h)), ("pointwise", full(cin, cout, e, 1,
                                                           1))]
  elif t in ("ibn", "fused_ibn"):
    convs = []
    if t == "ibn":
      if layer.has_expand:
        convs.append(("expand", full(cin, mid, h, 1, 1)))
      convs.append(("depthwise", dw(mid, h)))
      project = full(mid, cout, e, 1, 1)
    elif layer.has_expand:
      convs.append(("fused", full(cin, mid, h, k, s)))
      project = full(mid, cout, e, 1, 1)
    else:  # no k x k conv: the project conv carries the stride
      project = full(mid, cout, h, 1, s)
    if layer.se_channels:
      convs += [("se_reduce", fc(mid, layer.se_channels)),
                ("se_expand", fc(layer.se_channels, mid))]
      extra += 2.0 * batch * mid * layer.output_positions  # pool + gate
    convs.append(("project", project))
    if layer.residual:
      extra += float(batch * cin * layer.input_positions)
  else:
    raise ValueError(f"unknown layer type {t!r}")
  if layer.op != "mult":
    convs = [(n, c if n.startswith("se_") else
              dataclasses.replace(c, op=layer.op)) for n, c in convs]
  return convs, extra


def layer_energy(layer: Layer, acc: Accelerator) -> LayerEnergy:
  """Energy of one layer at `acc.batch`, per image (µJ)."""
  convs, extra = layer_convs(layer, acc.batch)
  parts = tuple((name, map_conv(shape, acc)) for name, shape in convs)
  costs = acc.costs
  units = {lv: 0.0 for lv in LEVELS}
  for _, ce in parts:
    for lv, v in ce.energy.items():
      units[lv] += v
  units["dram"] += costs["dram"] * extra
  scale = acc.mac_pj * 1e-6 / acc.batch   # normalised units -> µJ / image
  return LayerEnergy(
      layer, {lv: v * scale for lv, v in units.items()}, parts, extra,
      sum(ce.macs for _, ce in parts) // acc.batch,
      sum(ce.cycles for _, ce in parts) / acc.batch)


def network_energy(spec: NetSpec, acc: Accelerator) -> list[LayerEnergy]:
  """Every layer's energy (µJ per image); the network's is their sum."""
  cache: dict[Layer, LayerEnergy] = {}
  out = []
  for layer in spec.layers:
    if layer not in cache:
      cache[layer] = layer_energy(layer, acc)
    out.append(cache[layer])
  return out


def total_uj(spec: NetSpec, acc: Accelerator) -> float:
  return math.fsum(le.total_uj for le in network_energy(spec, acc))
