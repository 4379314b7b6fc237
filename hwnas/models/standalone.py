"""The standalone network of a NetSpec: only its layers, exact shapes.

`Network(spec, rngs=...)` is what a decoded architecture (or a reference
network) runs as after search: for training from scratch, for exporting to
TFLite (with `depthwise='lax'`, see `hwnas.models.ops`) and as the
target that `hwnas.supernet` copies shared weights into.

>>> from flax import nnx
>>> from hwnas import arch, space
>>> s = space.load("tiny")
>>> net = Network(arch.decode(s, arch.smallest(s)), rngs=nnx.Rngs(0))
>>> net(jnp.zeros((2, 24, 24, 3))).shape
(2, 10)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from hwnas.models import deepshift
from hwnas.models import layers as layers_lib
from hwnas.models import ops
from hwnas.netspec import NetSpec


class Network(nnx.Module):
  """A NetSpec as a Flax NNX module.

  Attributes:
    spec: the NetSpec it computes.
    layers: one module per `spec.layers` entry (see `layers.build_layer`).
  """

  def __init__(self, spec: NetSpec, *, rngs: nnx.Rngs,
               depthwise: str = "auto"):
    self.spec = spec
    self.layers = nnx.List([
        layers_lib.build_layer(l, rngs=rngs, depthwise=depthwise)
        for l in spec.layers])

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """[B, H, W, C] float32 images -> [B, num_classes] logits.

    A time-series network (`spec.dims == 1`) takes windows [B, T, C] or
    [B, 1, T, C] (how it computes them: 1-D as a height-1 image).
    """
    expect = self.spec.input_shape
    if self.spec.dims == 1 and x.ndim == 3:
      x = x[:, None]
    if tuple(x.shape[1:]) != expect:
      raise ValueError(f"{self.spec.name}: input shape {x.shape[1:]} does not "
                       f"match the spec's {expect}")
    for layer in self.layers:
      x = layer(x, train)
    return x


def bake_shift_weights(model: nnx.Module) -> int:
  """Rounds the kernels of every shift conv of `model` to their powers of
  two in place and makes them ordinary convs (for export: the exported
  graph is a plain convolution whose weights are exactly signed powers of
  two, with no rounding ops). The outputs do not change (the rounding is
  idempotent). Returns the number of convs baked."""
  n = 0
  for _, m in model.iter_modules():
    if getattr(m, "shift", False) and isinstance(
        m, (layers_lib.ConvBN, layers_lib.DepthwiseConv)):
      var = m.conv.kernel if isinstance(m, layers_lib.ConvBN) else m.kernel
      var.value = deepshift.power_of_two(var.value)
      m.shift = False
      n += 1
  return n


def shift_kernels(model: nnx.Module) -> list[tuple[str, jax.Array]]:
  """(path, kernel) of every conv of a shift layer of `model` (baked or
  not): what must be exactly signed powers of two after export."""
  out = []
  for i, layer in enumerate(model.spec.layers):
    if layer.op != "shift":
      continue
    for path, v in nnx.iter_graph(model.layers[i]):
      if isinstance(v, nnx.Param) and path and path[-1] == "kernel" and (
          "se" not in path):
        out.append((f"layers[{i}]." + ".".join(map(str, path)), v.value))
  return out


def num_params(model: nnx.Module) -> int:
  """Number of trainable values (nnx.Param), BatchNorm scale/offset included."""
  return sum(int(jnp.size(v)) for v in
             jax.tree.leaves(nnx.state(model, nnx.Param)))
