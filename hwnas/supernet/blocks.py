"""One block slot of the supernet: its static shape and its branches.

`Slot` is the largest shape a slot of a space can take (`slots(space)`);
`SlotModule` holds its weights (one `BlockWeights` per block type) and runs
one branch of a `lax.switch` per call: the identity, or one (block type,
mid width) at exact shapes. `BlockWeights.__call__` is the one copy of a
block's forward pass: float (training and evaluation), BatchNorm-folded
float observing int8 ranges, and simulated int8, chosen by its
`hwnas.supernet.int8.Points` hook. `hwnas.supernet.model` (the module
docstring explains the design) chains the slots into the `Supernet`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from hwnas import errors
from hwnas.models import ops
from hwnas.models.deepshift import power_of_two
from hwnas.netspec import make_divisible
from hwnas.space import SearchSpace
from hwnas.supernet import int8
from hwnas.supernet.switch import switch_vjp
from hwnas.supernet.weights import (ConvBNWeights, MaskedBatchNorm,
                                    SEWeights, centre_taps)

# ----------------------------------------------------------- slot layout --


@dataclasses.dataclass(frozen=True)
class Slot:
  """Static (maximum) shape of one block slot of a space."""

  stage: int
  index: int                     # within the stage
  stride: int
  max_in: int
  max_out: int
  max_mid: int
  max_se: int                    # 0: SE never on
  max_kernel: int
  kernels: tuple[int, ...]       # kernel choices, ascending
  types: tuple[str, ...]         # non-skip types offered
  activations: tuple[str, ...]
  expand: str                    # 'always' | 'never' | 'dynamic'
  mids: tuple[int, ...] = ()     # every mid width an architecture can pick
  ops: tuple[str, ...] = ("mult",)  # 'mult' | 'shift' choices
  dims: int = 2                  # 1: a time-series slot (1 x k kernels)


def slots(space: SearchSpace) -> tuple[Slot, ...]:
  """The static maximum shapes of every block slot of `space`."""
  divisor, out = space.channel_divisor, []
  prev_widths = (space.stem.channels,)
  for stage_index, stage in enumerate(space.stages):
    for j in range(stage.max_depth):
      ins = prev_widths if j == 0 else stage.widths
      mids = {(c, make_divisible(c * e, divisor)) for c in ins
              for e in stage.expansions}
      has = {m != c for c, m in mids}
      max_mid = max(m for _, m in mids)
      expand = ("dynamic" if len(has) == 2 else
                "always" if True in has else "never")
      types = tuple(t for t in stage.types_for(j) if t != "skip")
      stride = stage.stride if j == 0 else 1
      if "fused_ibn" in types and expand == "dynamic" and stride != 1:
        raise errors.SpaceError(
            f"{space.path or space.name}: stages[{stage_index}]: a strided "
            "fused_ibn whose expansion conv is sometimes omitted (mid == in) "
            "is not supported by the supernet; drop expansion 1 from this "
            "stage")
      out.append(Slot(
          stage=stage_index, index=j, stride=stride, max_in=max(ins),
          max_out=max(stage.widths), max_mid=max_mid,
          max_se=(make_divisible(max_mid * space.se_ratio, divisor)
                  if True in stage.se else 0),
          max_kernel=max(stage.kernels),
          kernels=tuple(sorted(stage.kernels)), types=types,
          activations=tuple(stage.activations), expand=expand,
          mids=tuple(sorted({m for _, m in mids})), ops=tuple(stage.ops),
          dims=space.dims))
    prev_widths = stage.widths
  return tuple(out)


# ---------------------------------------------------------- primitives --


def channel_mask(n: jax.Array, size: int) -> jax.Array:
  """[size] float mask of the first `n` channels."""
  return (jnp.arange(size) < n).astype(jnp.float32)


def fit_channels(x: jax.Array, size: int) -> jax.Array:
  """Slices or zero-pads the channel (last) axis to `size`."""
  channels = x.shape[-1]
  if channels >= size:
    return x[..., :size]
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - channels)])


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, *,
           impl: str = "auto") -> jax.Array:
  """'SAME' convolution with an HWIO kernel (`hwnas.models.ops.conv2d`)."""
  return ops.conv2d(x, w, stride, impl=impl)


def choice_index(value: jax.Array, choices: tuple[int, ...]) -> jax.Array:
  """Index of traced `value` in the ascending static `choices` (int32)."""
  if len(choices) == 1:
    return jnp.zeros((), jnp.int32)
  return jnp.sum(value > jnp.asarray(choices[:-1])).astype(jnp.int32)


def elastic_conv(x: jax.Array, w: jax.Array, kernel: jax.Array,
                 sizes: tuple[int, ...], stride: int, *,
                 impl: str = "auto") -> jax.Array:
  """Dense conv with the centred k x k taps of `w` (k = `kernel`, traced,
  one of the ascending `sizes`): a `lax.switch` with one exact-size conv
  per size."""
  if len(sizes) == 1:
    return conv2d(x, centre_taps(w, sizes[0]), stride, impl=impl)
  return jax.lax.switch(choice_index(kernel, sizes), [
      functools.partial(lambda x, w, size: conv2d(
          x, centre_taps(w, size), stride, impl=impl), size=size)
      for size in sizes], x, w)


def _activation(points: int8.Points, name: str, z: jax.Array, act: str
                ) -> tuple[jax.Array, int8.Range]:
  """Activation `act` of conv output `z` with its quantisation points."""
  if act in ("relu", "relu6", "none"):   # fused into the conv
    return points(f"{name}.{act}", ops.activation(act)(z))
  z, _ = points(f"{name}.pre", z)
  if act == "hswish":                    # HARD_SWISH op
    return points(f"{name}.hswish", ops.hard_swish(z))
  if act == "swish":                     # LOGISTIC + MUL
    sigmoid, _ = points(f"{name}.sigmoid", jax.nn.sigmoid(z))
    return points(f"{name}.swish", z * sigmoid)
  raise ValueError(f"no int8 simulation of activation {act!r}")


def activate(points: int8.Points, name: str, z: jax.Array,
             names: tuple[str, ...], index: jax.Array | int
             ) -> tuple[jax.Array, int8.Range]:
  """Activation `names[index]` (traced index) of `z`: every offered one is
  computed and one selected. Returns (tensor, its int8 range or None)."""
  out = None
  for i, act in enumerate(names):
    y = _activation(points, name, z, act)
    out = y if out is None else int8.select(index == i, y, out)
  return out


def fold_and_quantize(points: int8.Points, w: jax.Array,
                       norm: MaskedBatchNorm, input_range: int8.Range,
                       in_mask: jax.Array | None = None,
                       depthwise: bool = False
                       ) -> tuple[jax.Array, jax.Array]:
  """Kernel `w` [..., n] with BatchNorm `norm`'s leading n channels folded
  in, quantised per output channel when `points` quantise."""
  w, b = int8.fold_batch_norm(w, *norm.leading(w.shape[-1]))
  return points.weights(w, b, input_range, in_mask, depthwise)


@dataclasses.dataclass(frozen=True)
class Context:
  """Per-call settings threaded through the blocks (not module state)."""

  train: bool
  momentum: Any = ops.BN_MOMENTUM   # float or traced scalar
  points: int8.Points = dataclasses.field(default_factory=int8.Points.none)


# -------------------------------------------------------------- modules --


class BlockWeights(nnx.Module):
  """Shared weights of one block type in one slot, at maximum size."""

  def __init__(self, slot: Slot, block_type: str, *, rngs: nnx.Rngs,
               depthwise: str, kernel_transform: bool = False):
    self.fused = block_type == "fused_ibn"
    self.slot = slot
    self.depthwise = depthwise
    k = slot.max_kernel
    smaller = (tuple(sorted((s for s in slot.kernels if s < k), reverse=True))
               if kernel_transform else ())
    self.expand = nnx.data(None if slot.expand == "never" else ConvBNWeights(
        slot.max_in, slot.max_mid, k if self.fused else 1, rngs=rngs,
        transforms=smaller if self.fused else (), dims=slot.dims))
    self.dw = nnx.data(None if self.fused else ConvBNWeights(
        slot.max_mid, slot.max_mid, k, rngs=rngs, depthwise=True,
        transforms=smaller, dims=slot.dims))
    self.se = nnx.data(SEWeights(slot.max_mid, slot.max_se, rngs=rngs)
                       if slot.max_se else None)
    self.project = ConvBNWeights(slot.max_mid, slot.max_out, 1, rngs=rngs)

  def __call__(self, x: jax.Array, x_range: int8.Range,
               arch: Mapping[str, jax.Array], ctx: Context, mid: int,
               points: int8.Points
               ) -> tuple[jax.Array, int8.Range, dict[str, Any]]:
    """The block at mid width `mid` (static; `arch["mid"] == mid`).

    Args:
      x: [B, H, W, max_in], zero beyond arch["in_ch"].
      x_range: x's int8 range (None unless `points` quantise).
      arch: the slot's entries of `arch_arrays` (traced scalars).
      ctx: train / eval settings.
      mid: the exact mid width: only `mid` channels are computed.
      points: the block's quantisation points (`Points.none()`: float).

    Returns:
      y [B, H', W', max_out] (zero beyond arch["out_ch"]), its int8 range
      (or None) and, in training, the batch statistics of each BatchNorm
      ({'expand' | 'dw' | 'project': (mean, var)}, zero-padded to the
      BatchNorm's size) for the caller to fold into the running
      statistics: nothing is written here, so the block can run inside
      `lax.switch`.
    """
    slot = self.slot
    stats = {}

    def conv_bn(name, weights, conv_fn, w, y, y_range, in_mask=None):
      """`conv_fn(y, w)` then BatchNorm (folded into w when observing or
      quantising)."""
      if not points.folds:
        out, batch_stats = weights.bn.apply(conv_fn(y, w), train=ctx.train)
        if batch_stats is not None:
          stats[name] = batch_stats
        return out
      w, b = fold_and_quantize(points, w, weights.bn, y_range, in_mask,
                                depthwise=name == "dw")
      return conv_fn(y, w) + b

    def act(name, z):
      return activate(points, name, z, slot.activations, arch["act"])

    if "shift" in slot.ops:   # same weights, as powers of two when op == 1
      op = lambda w: jnp.where(arch["op"] > 0, power_of_two(w), w)
    else:
      op = lambda w: w

    def kernel_conv(conv, stride):
      return lambda y, w: conv(y, w, arch["kernel"], slot.kernels, stride,
                               impl=self.depthwise)

    y = (fit_channels(x, mid), x_range)          # no expansion: mid == in
    if self.expand is not None:
      if self.fused:
        conv_fn = kernel_conv(elastic_conv, slot.stride)
        w = op(self.expand.elastic_kernel(arch["kernel"])[..., :mid])
      else:
        conv_fn, w = conv2d, op(self.expand.kernel[...][..., :mid])
      in_mask = (channel_mask(arch["in_ch"], slot.max_in)
                 if points.quantize else None)
      expanded = act("expand", conv_bn("expand", self.expand, conv_fn, w, x,
                                       x_range, in_mask))
      y = (expanded if slot.expand == "always" else
           int8.select(arch["expand"] > 0, expanded, y))
    if self.dw is not None:
      w = op(self.dw.elastic_kernel(arch["kernel"])[..., :mid])
      y = act("dw", conv_bn("dw", self.dw,
                            kernel_conv(ops.elastic_depthwise_conv,
                                        slot.stride), w, *y))
    if self.se is not None:
      y = self._squeeze_excite(*y, arch["se"], points)
    stride = slot.stride if (self.fused and self.expand is None) else 1
    out_mask = channel_mask(arch["out_ch"], slot.max_out)
    z = conv_bn("project", self.project,
                functools.partial(conv2d, stride=stride),
                op(self.project.kernel[...][:, :, :mid]), *y) * out_mask
    out = points("project", z)
    if slot.stride == 1:
      # The converter gives a conv that feeds a residual ADD the ADD's
      # output scale and zero point (its own range is not used).
      added = points("add", points.like("add", z) +
                     fit_channels(x, slot.max_out))
      out = int8.select(arch["residual"] > 0, added, out)
    return out[0], out[1], stats

  def _squeeze_excite(self, y: jax.Array, y_range: int8.Range,
                      se_channels: jax.Array, points: int8.Points
                      ) -> tuple[jax.Array, int8.Range]:
    """Gates y [..., mid] (mid <= the largest: leading channels) with the
    first `se_channels` hidden channels; identity where it is 0."""
    se, mid = self.se, y.shape[-1]
    se_mask = channel_mask(se_channels, se.reduce_bias.shape[-1])
    pooled = points.same(ops.global_avg_pool(y), y_range)
    w, b = points.weights(se.reduce_kernel[...][:, :, :mid],
                          se.reduce_bias[...], y_range)
    hidden, hidden_range = points(
        "se.reduce", jax.nn.relu(conv2d(pooled, w) + b) * se_mask)
    # hard_sigmoid(z) = relu6(z + 3) / 6, the +3 in the bias (as exported).
    w, b = points.weights(se.expand_kernel[...][..., :mid],
                          se.expand_bias[...][:mid] + 3.0, hidden_range,
                          se_mask if points.quantize else None)
    gate, _ = points("se.gate6", jax.nn.relu6(conv2d(hidden, w) + b))
    gate, _ = points("se.gate", gate * (1.0 / 6.0))
    return int8.select(se_channels > 0, points("se.out", y * gate),
                       (y, y_range))

  def batch_norms(self) -> dict[str, MaskedBatchNorm]:
    """{'expand' | 'dw' | 'project': BatchNorm} of the convs present."""
    out = {"project": self.project.bn}
    if self.expand is not None:
      out["expand"] = self.expand.bn
    if self.dw is not None:
      out["dw"] = self.dw.bn
    return out


class SlotModule(nnx.Module):
  """One block slot: weights per offered type; identity when inactive.

  The slot runs ONE branch of a `lax.switch`: identity (inactive slot or
  `skip`) or one (type, mid width) pair at exact shapes, so an architecture
  costs its own compute (see the module docstring).
  """

  def __init__(self, slot: Slot, *, rngs: nnx.Rngs, depthwise: str,
               kernel_transform: bool = False):
    self.slot = slot
    self.blocks = nnx.List([BlockWeights(slot, t, rngs=rngs,
                                         depthwise=depthwise,
                                         kernel_transform=kernel_transform)
                            for t in slot.types])

  def __call__(self, x: jax.Array, x_range: int8.Range,
               arch: Mapping[str, jax.Array], ctx: Context, name: str
               ) -> tuple[jax.Array, int8.Range, dict[str, jax.Array]]:
    """(y, y's int8 range or None, ranges observed in the slot, named
    `name.<type index>.<point>`)."""
    slot = self.slot
    # The first slot of a stage is always active (depth >= 1, never skip).
    always = slot.index == 0
    norms = [b.batch_norms() for b in self.blocks]

    def full_stats(taken, stats):
      """Every block's BN statistics (zeros except type `taken`'s)."""
      if not ctx.train:
        return {}
      return {(t, bn_name): (stats[bn_name] if t == taken else
                             (jnp.zeros(norm.mean.value.shape),) * 2)
              for t, by_name in enumerate(norms)
              for bn_name, norm in by_name.items()}

    graphdef, weights = nnx.split(self)

    def run(x, weights, arch, block_type, mid):
      slot_module = nnx.merge(graphdef, weights, copy=True)
      points = ctx.points.scoped(f"{name}.{block_type}")
      y, y_range, stats = slot_module.blocks[block_type](
          x, x_range, arch, ctx, mid, points)
      return y, (full_stats(block_type, stats), y_range, points.seen)

    def identity(x, weights, arch):
      del weights, arch
      return fit_channels(x, slot.max_out), (full_stats(None, {}), x_range,
                                             {})

    branches = [] if always else [identity]
    branches += [functools.partial(run, block_type=t, mid=m)
                 for t in range(len(self.blocks)) for m in slot.mids]
    if ctx.points.observing and len(branches) > 1:
      branches = _same_points(branches, x, weights, arch)
    index = arch["type"] * len(slot.mids) + choice_index(arch["mid"],
                                                         slot.mids)
    if not always:
      index = jnp.where(arch["active"] > 0, index + 1, 0)
    arch = dict(arch)
    if len(branches) == 1:
      y, aux = branches[0](x, weights, arch)
    elif ctx.train:
      y, aux = switch_vjp(index, branches, x, weights, arch)
    else:
      y, aux = jax.lax.switch(index, branches, x, weights, arch)
    stats, y_range, seen = aux
    if ctx.train:
      active = arch["active"] > 0
      for t, by_name in enumerate(norms):
        on = active & (arch["type"] == t)
        for bn_name, norm in by_name.items():
          n = arch["out_ch"] if bn_name == "project" else arch["mid"]
          mask = on & (jnp.arange(norm.mean.value.shape[0]) < n)
          if bn_name == "expand" and slot.expand == "dynamic":
            mask = mask & (arch["expand"] > 0)
          norm.update(stats[(t, bn_name)], ctx.momentum, mask)
    return y, y_range, seen


def _same_points(branches, x, weights, arch):
  """The branches with every branch's observed ranges under one set of
  names (a switch's branches must return the same structure; a range a
  branch does not observe is [0, 0])."""
  names = set()
  for branch in branches:
    names |= set(jax.eval_shape(branch, x, weights, arch)[1][2])
  zero = jnp.zeros((2,), jnp.float32)

  def padded(x, weights, arch, branch):
    y, (stats, y_range, seen) = branch(x, weights, arch)
    return y, (stats, y_range, {n: seen.get(n, zero) for n in sorted(names)})

  return [functools.partial(padded, branch=b) for b in branches]


