"""The weight-sharing supernet of a search space (Flax NNX).

One set of weights serves every architecture of a `SearchSpace`:

* elastic kernel: a block holds the space's largest kernel; a smaller kernel
  is its centre crop, or with `kernel_transform=True` Once-for-All's learned
  kernel transform of it (`hwnas.supernet.weights.ConvBNWeights`);
* elastic expansion and width: a block holds the largest mid / output
  channels; a smaller choice uses the leading channels (sorted by
  importance when progressive shrinking reaches the expansion phase,
  `hwnas.supernet.channels`);
* elastic depth: a stage runs its first `d` block slots; inactive slots and
  `skip` blocks are the identity;
* block type: separate weights per type (`ibn`, `fused_ibn`) in every slot;
* squeeze-excite on/off and the activation per block;
* elastic resolution: any input size (one compilation per resolution).

How an architecture reaches the compiled code: branching
---------------------------------------------------------
The architecture enters `Supernet.__call__` as a small dict of int/bool
arrays (`arch_arrays`, one entry per block slot), never as Python values, so
ONE compilation of a train or eval step serves every architecture of a
resolution (tests/supernet_test.py counts compilations). Inside, every slot
is one `lax.switch` whose branches are the identity (an inactive slot or
`skip`) and one branch per (block type, mid width) the slot offers, each at
exact shapes: the chosen mid channels only (the leading ones), and in the
depthwise (and fused) convolution only the chosen kernel's taps (a nested
switch, `hwnas.models.ops.elastic_depthwise_conv`). So an architecture
costs its own compute, not the largest one's. What is computed at a
slot's largest size and then masked is cheap or absent in the shipped
spaces: output widths below a stage's largest (zero channels carried
between blocks), SE's hidden width and on/off, the activation (all offered
ones computed, one selected).

Two conditions make branching pay on XLA, both tested:
* the arch reaches the switch as non-batched scalars (a `lax.scan` or an
  unrolled loop over the sandwich's architectures, never `vmap`: under
  `vmap` a switch becomes a select that runs every branch);
* every convolution inside a branch stays on XLA:CPU's fast path
  (`hwnas.models.ops.conv2d` writes its backward pass in the canonical
  form XLA:CPU only produces itself at a computation's top level).

In training the slots' switches are `hwnas.supernet.switch.switch_vjp`,
whose backward pass reruns the taken branch's forward pass instead of
storing every branch's intermediate values. The compiled step holds one
copy of a block per (type, mid width), so it compiles several times longer
than one network does.

One forward pass for float and int8: the blocks take an
`hwnas.supernet.int8.Points` hook. `Points.none()` is the float network
(training and evaluation); `Supernet.observe` runs the BatchNorm-folded
float network recording every quantisation point's range; and
`Supernet.__call__(..., int8_ranges=...)` the simulated full-int8 network
(`hwnas.supernet.quant` evaluates architectures with it).

BatchNorm: `MaskedBatchNorm` (`hwnas.supernet.weights`) normalises with
batch statistics in training; the slots update running statistics only
for active blocks and channels, with a momentum that can be traced
(`recalibrate` in hwnas.supernet.train uses a cumulative average,
Once-for-All's BN recalibration). `hwnas.supernet.extract` builds the
exact standalone `Network` of one architecture from these weights.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.models import ops
from hwnas.netspec import make_divisible
from hwnas.space import SearchSpace
from hwnas.supernet import int8
from hwnas.supernet.switch import switch_vjp
from hwnas.supernet.weights import (ConvBNWeights, DenseWeights,
                                    MaskedBatchNorm, SEWeights, centre_taps)

ArchArrays = Mapping[str, jax.Array]
# Keys of `arch_arrays`, each [num_slots] (or [N, num_slots] for a batch).
ARCH_KEYS = ("active", "type", "kernel", "mid", "se", "act", "in_ch",
             "out_ch", "expand", "residual")

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
          mids=tuple(sorted({m for _, m in mids}))))
    prev_widths = stage.widths
  return tuple(out)


def arch_arrays(space: SearchSpace, arch: arch_lib.ArchChoice
                ) -> dict[str, np.ndarray]:
  """The architecture as int32 arrays of length `space.num_slots`.

  Values come from `arch.decode`, so channel counts round exactly as in the
  standalone network. Inactive and skip slots have `active == 0`.
  """
  spec = arch_lib.decode(space, arch)
  blocks = iter(spec.blocks)
  n = space.num_slots
  out = {k: np.zeros(n, np.int32) for k in ARCH_KEYS}
  for i, ((stage, j), slot) in enumerate(zip(space.slots(), slots(space))):
    if j >= arch.depths[stage] or arch.blocks[stage][j].type == "skip":
      continue
    layer = next(blocks)
    out["active"][i] = 1
    out["type"][i] = slot.types.index(layer.type)
    out["kernel"][i] = layer.kernel
    out["mid"][i] = layer.mid_channels
    out["se"][i] = layer.se_channels
    out["act"][i] = slot.activations.index(layer.activation)
    out["in_ch"][i] = layer.in_channels
    out["out_ch"][i] = layer.out_channels
    out["expand"][i] = int(layer.has_expand)
    out["residual"][i] = int(layer.residual)
  return out


def stack_arch_arrays(space: SearchSpace, archs) -> dict[str, np.ndarray]:
  """`arch_arrays` of several architectures stacked to [N, num_slots]."""
  rows = [arch_arrays(space, a) for a in archs]
  return {k: np.stack([r[k] for r in rows]) for k in ARCH_KEYS}


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


def _fold_and_quantize(points: int8.Points, w: jax.Array,
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
        transforms=smaller if self.fused else ()))
    self.dw = nnx.data(None if self.fused else ConvBNWeights(
        slot.max_mid, slot.max_mid, k, rngs=rngs, depthwise=True,
        transforms=smaller))
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
      w, b = _fold_and_quantize(points, w, weights.bn, y_range, in_mask,
                                depthwise=name == "dw")
      return conv_fn(y, w) + b

    def act(name, z):
      return activate(points, name, z, slot.activations, arch["act"])

    def kernel_conv(conv, stride):
      return lambda y, w: conv(y, w, arch["kernel"], slot.kernels, stride,
                               impl=self.depthwise)

    y = (fit_channels(x, mid), x_range)          # no expansion: mid == in
    if self.expand is not None:
      if self.fused:
        conv_fn = kernel_conv(elastic_conv, slot.stride)
        w = self.expand.elastic_kernel(arch["kernel"])[..., :mid]
      else:
        conv_fn, w = conv2d, self.expand.kernel[...][..., :mid]
      in_mask = (channel_mask(arch["in_ch"], slot.max_in)
                 if points.quantize else None)
      expanded = act("expand", conv_bn("expand", self.expand, conv_fn, w, x,
                                       x_range, in_mask))
      y = (expanded if slot.expand == "always" else
           int8.select(arch["expand"] > 0, expanded, y))
    if self.dw is not None:
      w = self.dw.elastic_kernel(arch["kernel"])[..., :mid]
      y = act("dw", conv_bn("dw", self.dw,
                            kernel_conv(ops.elastic_depthwise_conv,
                                        slot.stride), w, *y))
    if self.se is not None:
      y = self._squeeze_excite(*y, arch["se"], points)
    stride = slot.stride if (self.fused and self.expand is None) else 1
    out_mask = channel_mask(arch["out_ch"], slot.max_out)
    z = conv_bn("project", self.project,
                functools.partial(conv2d, stride=stride),
                self.project.kernel[...][:, :, :mid], *y) * out_mask
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


class Supernet(nnx.Module):
  """Shared weights of every architecture of `space` (see module doc).

  Call as `supernet(x, arch, train=False)` with x [B, R, R, C] and `arch`
  from `arch_arrays` (one architecture, arrays [num_slots]).
  `kernel_transform=True` adds Once-for-All's learned kernel transforms to
  every elastic-kernel conv (see `ConvBNWeights`); `depthwise` picks the
  convolutions' implementation (`hwnas.models.ops`).
  """

  def __init__(self, space: SearchSpace, *, rngs: nnx.Rngs,
               num_classes: int | None = None, depthwise: str = "auto",
               dropout: float = 0.0, kernel_transform: bool = False):
    self.space = space
    self.num_classes = num_classes or space.num_classes
    self.dropout = dropout
    self.slot_info = slots(space)
    self.depthwise = depthwise
    stem = space.stem
    self.stem = ConvBNWeights(space.input_channels, stem.channels,
                              stem.kernel, rngs=rngs)
    self.slots = nnx.List([SlotModule(s, rngs=rngs, depthwise=depthwise,
                                      kernel_transform=kernel_transform)
                           for s in self.slot_info])
    head, channels = space.head, max(space.stages[-1].widths)
    self.head_conv = nnx.data(ConvBNWeights(channels, head.expand_channels,
                                            1, rngs=rngs)
                              if head.expand_channels else None)
    channels = head.expand_channels or channels
    self.feature = nnx.data(DenseWeights(channels, head.feature_channels,
                                         rngs=rngs)
                            if head.feature_channels else None)
    channels = head.feature_channels or channels
    self.classifier = DenseWeights(channels, self.num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, arch: ArchArrays, *, train: bool = False,
               momentum: Any = ops.BN_MOMENTUM,
               dropout_key: jax.Array | None = None,
               int8_ranges: Mapping[str, jax.Array] | None = None
               ) -> jax.Array:
    """[B, R, R, C] images -> [B, num_classes] logits of `arch`.

    Args:
      x: input images.
      arch: `arch_arrays` of one architecture.
      train: batch statistics (and running-statistics updates) for BN.
      momentum: BN running-average momentum (traced for recalibration).
      dropout_key: key for dropout before the classifier (train only).
      int8_ranges: the ranges `observe` calibrated: the simulated full-int8
        network instead of the float one (eval only).
    """
    if int8_ranges is None:
      points = int8.Points.none()
    elif train:
      raise ValueError("simulated int8 is an evaluation (train=False)")
    else:
      points = int8.Points.int8(int8_ranges)
    ctx = Context(train=train, momentum=momentum, points=points)
    return self._forward(x, arch, ctx, dropout_key)[0]

  def observe(self, x: jax.Array, arch: ArchArrays
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Eval-mode logits of the BatchNorm-folded float network of `arch`
    (equal to `self(x, arch)` up to float rounding) and the [min, max] of
    every int8 quantisation point on `x`."""
    return self._forward(x, arch, Context(train=False,
                                          points=int8.Points.observe()))

  def _forward(self, x, arch, ctx: Context, dropout_key=None):
    space, points = self.space, ctx.points
    on = jnp.asarray(True)

    def conv_bn_act(name, weights, x, x_range, act, stride=1, in_mask=None):
      w = weights.kernel[...]
      conv = functools.partial(conv2d, stride=stride, impl=self.depthwise)
      if points.folds:
        w, b = _fold_and_quantize(points, w, weights.bn, x_range, in_mask)
        z = conv(x, w) + b
      else:
        z = weights.bn(conv(x, w), on, train=ctx.train,
                       momentum=ctx.momentum)
      return activate(points, name, z, (act,), 0)

    def dense(weights, x, x_range, in_mask):
      w, b = points.weights(weights.kernel[...], weights.bias[...], x_range,
                            in_mask)
      return x @ w + b

    x, x_range = points("input", x)
    x, x_range = conv_bn_act("stem", self.stem, x, x_range,
                             space.stem.activation, space.stem.stride)
    seen = {}
    for i, slot in enumerate(self.slots):
      x, x_range, slot_seen = slot(x, x_range, {k: v[i] for k, v in
                                                arch.items()},
                                   ctx, f"slot{i}")
      seen.update(slot_seen)
    # Channels beyond the last stage's width are zero; int8 weight scales
    # are taken over the real ones only.
    width_mask = None
    if points.quantize:
      last = max(i for i, s in enumerate(self.slot_info)
                 if s.stage == len(space.stages) - 1 and s.index == 0)
      width_mask = channel_mask(arch["out_ch"][last], x.shape[-1])
    head = space.head
    if self.head_conv is not None:
      x, x_range = conv_bn_act("head", self.head_conv, x, x_range,
                               head.activation, in_mask=width_mask)
      width_mask = None
    x = points.same(ops.global_avg_pool(x), x_range).reshape(x.shape[0], -1)
    if self.feature is not None:
      x, x_range = activate(points, "feature",
                            dense(self.feature, x, x_range, width_mask),
                            (head.activation,), 0)
      width_mask = None
    if ctx.train and self.dropout > 0 and dropout_key is not None:
      keep = jax.random.bernoulli(dropout_key, 1 - self.dropout, x.shape)
      x = jnp.where(keep, x / (1 - self.dropout), 0.0)
    logits, _ = points("logits", dense(self.classifier, x, x_range,
                                       width_mask))
    seen.update(points.seen)
    return logits, seen
