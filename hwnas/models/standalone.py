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
    """[B, H, W, C] float32 images -> [B, num_classes] logits."""
    expect = (self.spec.resolution, self.spec.resolution,
              self.spec.in_channels)
    if tuple(x.shape[1:]) != expect:
      raise ValueError(f"{self.spec.name}: input shape {x.shape[1:]} does not "
                       f"match the spec's {expect}")
    for layer in self.layers:
      x = layer(x, train)
    return x


def num_params(model: nnx.Module) -> int:
  """Number of trainable values (nnx.Param), BatchNorm scale/offset included."""
  return sum(int(jnp.size(v)) for v in
             jax.tree.leaves(nnx.state(model, nnx.Param)))
