"""The exact standalone network of one architecture, cut out of a supernet.

`subnet(supernet, arch)` builds the `hwnas.models.Network` of `arch` with
only the chosen blocks, channels and kernel taps, and copies the shared
weights into it: the centre crops of the kernels (learned kernel
transforms applied), the leading channels, the BatchNorm statistics. In
eval mode it computes what `supernet(x, arch)` computes; export and
fine-tuning start from it. It reads only the supernet's public
attributes (`stem`, `slots[i].blocks[t]`, `head_conv`, `feature`,
`classifier`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.models import layers
from hwnas.models.standalone import Network
from hwnas.netspec import Layer, NetSpec
from hwnas.supernet.blocks import BlockWeights
from hwnas.supernet.model import Supernet
from hwnas.supernet.weights import (ConvBNWeights, DenseWeights,
                                    MaskedBatchNorm)


def _set(var: nnx.Variable, value) -> None:
  value = jnp.asarray(value)
  if tuple(var.value.shape) != tuple(value.shape):
    raise ValueError(f"shape {value.shape} does not fit {var.value.shape}")
  var.value = value


def _copy_bn(dst: nnx.BatchNorm, src: MaskedBatchNorm, n: int) -> None:
  for name, value in zip(("scale", "bias", "mean", "var"), src.leading(n)):
    _set(getattr(dst, name), value)


def _copy_convbn(dst: layers.ConvBN, src: ConvBNWeights, cin: int,
                 cout: int, kernel: int) -> None:
  _set(dst.conv.kernel, src.kernel_at(kernel)[:, :, :cin, :cout])
  _copy_bn(dst.bn, src.bn, cout)


def _copy_block(dst: layers.InvertedBottleneck, src: BlockWeights,
                layer: Layer) -> None:
  cin, mid, cout, kernel = (layer.in_channels, layer.mid_channels,
                            layer.out_channels, layer.kernel)
  if dst.expand is not None:
    _copy_convbn(dst.expand, src.expand, cin, mid, kernel if src.fused else 1)
  if dst.dw is not None:
    _set(dst.dw.conv.kernel, src.dw.kernel_at(kernel)[:, :, :, :mid])
    _copy_bn(dst.dw.bn, src.dw.bn, mid)
  if dst.se is not None:
    se = layer.se_channels
    _set(dst.se.reduce.kernel, src.se.reduce_kernel[...][:, :, :mid, :se])
    _set(dst.se.reduce.bias, src.se.reduce_bias[...][:se])
    _set(dst.se.expand.kernel, src.se.expand_kernel[...][:, :, :se, :mid])
    _set(dst.se.expand.bias, src.se.expand_bias[...][:mid])
  _copy_convbn(dst.project, src.project, mid, cout, 1)


def _copy_dense(dst: layers.Dense, src: DenseWeights, cin: int) -> None:
  _set(dst.linear.kernel, src.kernel[...][:cin])
  _set(dst.linear.bias, src.bias[...])


def subnet(supernet: Supernet, arch: arch_lib.ArchChoice, *,
           spec: NetSpec | None = None, depthwise: str = "auto") -> Network:
  """The standalone `Network` of `arch` with the supernet's shared weights.

  Exact shapes: only the chosen blocks, channels and kernel taps (centre
  crops, learned kernel transforms applied, and leading channels of the
  shared weights), BatchNorm statistics included, so in eval mode it
  computes what `supernet(x, arch)` computes.

  Args:
    supernet: the trained supernet.
    arch: an architecture of `supernet.space`.
    spec: the network to fill; default `arch.decode(space, arch)` (with the
      supernet's classes). It may differ in input resolution only.
    depthwise: the convolutions' implementation in the result ('lax' for
      export; see `hwnas.models.ops`).
  """
  space = supernet.space
  ref = arch_lib.decode(space, arch, num_classes=supernet.num_classes)
  spec = spec or ref
  if [dataclasses.replace(l, input_size=1) for l in spec.layers] != [
      dataclasses.replace(l, input_size=1) for l in ref.layers]:
    raise errors.SpecError(
        f"{spec.name}: is not the network of architecture "
        f"{arch_lib.to_string(arch)} in space {space.name} (only the input "
        "resolution may differ); decode the architecture instead")
  net = nnx.eval_shape(lambda: Network(spec, rngs=nnx.Rngs(0),
                                       depthwise=depthwise))
  pairs = list(zip(spec.layers, net.layers))
  stem_layer, stem = pairs[0]
  _copy_convbn(stem.body, supernet.stem, stem_layer.in_channels,
               stem_layer.out_channels, stem_layer.kernel)
  pos = 1
  for i, (stage, j) in enumerate(space.slots()):
    if j >= arch.depths[stage] or arch.blocks[stage][j].type == "skip":
      continue
    layer, dst = pairs[pos]
    pos += 1
    slot = supernet.slots[i]
    _copy_block(dst, slot.blocks[slot.slot.types.index(layer.type)], layer)
  for layer, dst in pairs[pos:]:
    if layer.type == "conv":
      _copy_convbn(dst.body, supernet.head_conv, layer.in_channels,
                   layer.out_channels, 1)
    elif layer.type == "fc":
      src = (supernet.feature if (supernet.feature is not None and
                                  layer is not spec.layers[-1])
             else supernet.classifier)
      _copy_dense(dst, src, layer.in_channels)
  return net
