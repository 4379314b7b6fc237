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
* the op per block (`mult` / `shift`): a shift block uses the same weights
  as signed powers of two (`hwnas.models.deepshift`), selected inside the
  branch by a traced flag (no extra branch, no extra weights); the stem
  and head convs round their weights the same way: by a traced flag
  (`arch_arrays`' scalar `stem_op` / `head_op`) where the space searches
  their op, statically where it fixes `op: shift`;
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

Where the parts live: a slot's static shape, its switch and the one copy
of a block's forward pass are `hwnas.supernet.blocks`; the shared
parameters `hwnas.supernet.weights`; this module turns an architecture
into arrays and chains stem, slots and head.

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

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hwnas import arch as arch_lib
from hwnas.models import ops
from hwnas.models.deepshift import power_of_two
from hwnas.space import SearchSpace
from hwnas.supernet import int8
from hwnas.supernet.blocks import (Context, SlotModule, activate,
                                   channel_mask, conv2d, fold_and_quantize,
                                   slots)
from hwnas.supernet.weights import ConvBNWeights, DenseWeights

ArchArrays = Mapping[str, jax.Array]
# Keys of `arch_arrays`, each [num_slots] (or [N, num_slots] for a batch).
ARCH_KEYS = ("active", "type", "kernel", "mid", "se", "act", "in_ch",
             "out_ch", "expand", "residual", "op")
# Scalars (or [N]), present only where the space offers the choice, so the
# arrays of every other space are as before.
PART_KEYS = ("stem_op", "head_op")


def _part_keys(space: SearchSpace) -> tuple[str, ...]:
  return tuple(k for k, part in zip(PART_KEYS, (space.stem, space.head))
               if len(part.ops) > 1)


def arch_arrays(space: SearchSpace, arch: arch_lib.ArchChoice
                ) -> dict[str, np.ndarray]:
  """The architecture as int32 arrays of length `space.num_slots`.

  Values come from `arch.decode`, so channel counts round exactly as in the
  standalone network. Inactive and skip slots have `active == 0`. Where the
  space searches the stem / head op, `stem_op` / `head_op` are scalars
  (1: shift).
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
    out["op"][i] = int(layer.op == "shift")
  for k in _part_keys(space):
    out[k] = np.asarray(int(getattr(arch, k) == "shift"), np.int32)
  return out


def stack_arch_arrays(space: SearchSpace, archs) -> dict[str, np.ndarray]:
  """`arch_arrays` of several architectures stacked to [N, num_slots]."""
  rows = [arch_arrays(space, a) for a in archs]
  return {k: np.stack([r[k] for r in rows])
          for k in ARCH_KEYS + _part_keys(space)}


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
                              stem.kernel, rngs=rngs, dims=space.dims)
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
      x: input images; for a time-series space windows [B, T, C] (or
        [B, 1, T, C], how they are computed).
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
    if space.dims == 1 and x.ndim == 3:
      x = x[:, None]   # [B, T, C] -> [B, 1, T, C]: 1-D as height-1 2-D

    def conv_bn_act(name, weights, x, x_range, act, stride=1, in_mask=None,
                    ops=("mult",), flag=None):
      w = weights.kernel[...]
      if len(ops) > 1:      # searched: the traced flag picks the rounding
        w = jnp.where(flag > 0, power_of_two(w), w)
      elif ops == ("shift",):   # the space's fixed op (static)
        w = power_of_two(w)
      conv = functools.partial(conv2d, stride=stride, impl=self.depthwise)
      if points.folds:
        w, b = fold_and_quantize(points, w, weights.bn, x_range, in_mask)
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
                             space.stem.activation, space.stem.stride,
                             ops=space.stem.ops, flag=arch.get("stem_op"))
    seen = {}
    for i, slot in enumerate(self.slots):
      x, x_range, slot_seen = slot(x, x_range, {k: arch[k][i] for k in
                                                ARCH_KEYS},
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
                               head.activation, in_mask=width_mask,
                               ops=head.ops, flag=arch.get("head_op"))
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
