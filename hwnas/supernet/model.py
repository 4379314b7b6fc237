"""The weight-sharing supernet of a search space (Flax NNX).

One set of weights serves every architecture of a `SearchSpace`:

* elastic kernel: a block holds the space's largest kernel; a smaller kernel
  is its centre crop, or with `kernel_transform=True` Once-for-All's learned
  kernel transform of it (see `ConvBNWeights.elastic_kernel`);
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
  branch by a traced flag (no extra branch, no extra weights);
* elastic resolution: any input size (one compilation per resolution).

How an architecture reaches the compiled code: branching
---------------------------------------------------------
The architecture enters `Supernet.__call__` as a small dict of int/bool
arrays (`arch_arrays`, one entry per block slot), never as Python values, so
ONE compilation of a train or eval step serves every architecture of a
resolution (tests/supernet_test.py counts compilations). Inside, every slot
is one `lax.switch` whose branches are the identity (an inactive slot or
`skip`) and one branch per (block type, mid width) the slot offers, each at
exact shapes: the chosen mid channels only (the leading ones, sorted by
importance, `hwnas.supernet.channels`), and in the depthwise (and fused)
convolution only the chosen kernel's taps (a nested switch,
`hwnas.models.layers.elastic_depthwise_conv`). So an architecture costs its
own compute, not the largest one's. What stays masked is cheap or absent
in the shipped spaces: output widths below a stage's largest (zero
channels carried between blocks), SE's hidden width and on/off, the
activation (all offered ones computed, one selected).

Two conditions make branching pay on XLA, both tested:
* the arch reaches the switch as non-batched scalars (a `lax.scan` or an
  unrolled loop over the sandwich's architectures, never `vmap`: under
  `vmap` a switch becomes a select that runs every branch);
* every convolution inside a branch stays on XLA:CPU's fast path: XLA:CPU
  rewrites a weight-gradient convolution into a canonical one only at a
  computation's top level, not inside conditional or loop bodies, where it
  ran ~50x slower; `hwnas.models.layers.conv2d` writes that backward pass
  in canonical form itself (this was also why a `lax.scan` over the
  sandwich and a `lax.switch` over block types had looked slow).

Differentiating a plain `lax.switch` would make its forward pass output the
intermediate values of every branch, zero-filled where not taken; the
slots' switches have a custom VJP instead (`switch_vjp`) whose backward
pass reruns the taken branch's forward pass from the switch's inputs.

The costs: one extra forward pass per block in the backward pass, and the
compiled step holds one copy of a block per (type, mid width), so it
compiles several times longer than a masked one did.
`extract_subnet` / `subnet` build the exact standalone `Network`
(hwnas.models) of one architecture for export and fine-tuning;
benchmarks/results/supernet.md measures the supernet step against it.

BatchNorm: `MaskedBatchNorm` normalises with batch statistics in training and
updates running statistics only for active blocks and channels, with a
momentum that can be traced (`recalibrate` in hwnas.supernet.train uses a
cumulative average, Once-for-All's BN recalibration).

Size: one module (about 850 lines) on purpose: the slot switch, its custom
VJP, the masked BatchNorm and the standalone extraction share private
shape conventions (slot info, mid buckets, channel order) that a split
would have to make public; `channels`, `train`, `evaluate` and `quant`
already live beside it.
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
from hwnas.models import layers as L
from hwnas.models.deepshift import power_of_two
from hwnas.models.standalone import Network
from hwnas.netspec import NetSpec, make_divisible
from hwnas.space import SearchSpace

ArchArrays = Mapping[str, jax.Array]
# Keys of `arch_arrays`, each [num_slots] (or [N, num_slots] for a batch).
ARCH_KEYS = ("active", "type", "kernel", "mid", "se", "act", "in_ch",
             "out_ch", "expand", "residual", "op")

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


def slots(space: SearchSpace) -> tuple[Slot, ...]:
  """The static maximum shapes of every block slot of `space`."""
  div, out = space.channel_divisor, []
  prev_widths = (space.stem.channels,)
  for s, st in enumerate(space.stages):
    for j in range(st.max_depth):
      ins = prev_widths if j == 0 else st.widths
      mids = {(c, make_divisible(c * e, div)) for c in ins
              for e in st.expansions}
      has = {m != c for c, m in mids}
      max_mid = max(m for _, m in mids)
      expand = ("dynamic" if len(has) == 2 else
                "always" if True in has else "never")
      types = tuple(t for t in st.types_for(j) if t != "skip")
      stride = st.stride if j == 0 else 1
      if "fused_ibn" in types and expand == "dynamic" and stride != 1:
        raise errors.SpaceError(
            f"{space.path or space.name}: stages[{s}]: a strided fused_ibn "
            "whose expansion conv is sometimes omitted (mid == in) is not "
            "supported by the supernet; drop expansion 1 from this stage")
      out.append(Slot(
          stage=s, index=j, stride=stride, max_in=max(ins),
          max_out=max(st.widths), max_mid=max_mid,
          max_se=(make_divisible(max_mid * space.se_ratio, div)
                  if True in st.se else 0),
          max_kernel=max(st.kernels), kernels=tuple(sorted(st.kernels)),
          types=types,
          activations=tuple(st.activations), expand=expand,
          mids=tuple(sorted({m for _, m in mids})), ops=tuple(st.ops)))
    prev_widths = st.widths
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
  for i, ((s, j), sl) in enumerate(zip(space.slots(), slots(space))):
    b = arch.blocks[s][j]
    if j >= arch.depths[s] or b.type == "skip":
      continue
    layer = next(blocks)
    out["active"][i] = 1
    out["type"][i] = sl.types.index(layer.type)
    out["kernel"][i] = layer.kernel
    out["mid"][i] = layer.mid_channels
    out["se"][i] = layer.se_channels
    out["act"][i] = sl.activations.index(layer.activation)
    out["in_ch"][i] = layer.in_channels
    out["out_ch"][i] = layer.out_channels
    out["expand"][i] = int(layer.has_expand)
    out["residual"][i] = int(layer.residual)
    out["op"][i] = int(layer.op == "shift")
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
  c = x.shape[-1]
  if c >= size:
    return x[..., :size]
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - c)])


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, *,
           impl: str = "auto") -> jax.Array:
  """'SAME' convolution with an HWIO kernel (`hwnas.models.layers.conv2d`)."""
  return L.conv2d(x, w, stride, impl=impl)


def choice_index(value: jax.Array, choices: tuple[int, ...]) -> jax.Array:
  """Index of traced `value` in the ascending static `choices` (int32)."""
  if len(choices) == 1:
    return jnp.zeros((), jnp.int32)
  return jnp.sum(value > jnp.asarray(choices[:-1])).astype(jnp.int32)


def elastic_conv(x: jax.Array, w: jax.Array, k: jax.Array,
                 sizes: tuple[int, ...], stride: int, *,
                 impl: str = "auto") -> jax.Array:
  """Dense conv with the centred k x k taps of `w` (k traced, one of the
  ascending `sizes`): a `lax.switch` with one exact-size conv per size."""
  if len(sizes) == 1:
    return conv2d(x, _crop(w, sizes[0]), stride, impl=impl)
  return jax.lax.switch(choice_index(k, sizes), [
      functools.partial(lambda x, w, s: conv2d(x, _crop(w, s), stride,
                                               impl=impl), s=s)
      for s in sizes], x, w)


def select_activation(x: jax.Array, names: tuple[str, ...],
                      index: jax.Array) -> jax.Array:
  out = L.activation(names[0])(x)
  for i, name in enumerate(names[1:], 1):
    out = jnp.where(index == i, L.activation(name)(x), out)
  return out


def _pack(leaves, size: int) -> jax.Array:
  """Leaves (float32, int32 or bool) flattened into one float32 [size]."""
  flat = []
  for v in leaves:
    v = jnp.ravel(v)
    if v.dtype == jnp.bool_:
      v = v.astype(jnp.float32)
    elif v.dtype != jnp.float32:
      v = jax.lax.bitcast_convert_type(v.astype(jnp.int32), jnp.float32)
    flat.append(v)
  n = sum(int(v.size) for v in flat)
  buf = jnp.concatenate(flat) if flat else jnp.zeros((0,), jnp.float32)
  return jnp.pad(buf, (0, size - n))


def _unpack(buf: jax.Array, avals) -> list[jax.Array]:
  out, pos = [], 0
  for a in avals:
    n = int(np.prod(a.shape))
    v = buf[pos:pos + n].reshape(a.shape)
    pos += n
    if a.dtype == jnp.bool_:
      v = v > 0.5
    elif a.dtype != jnp.float32:
      v = jax.lax.bitcast_convert_type(v, jnp.int32).astype(a.dtype)
    out.append(v)
  return out


# How `switch_vjp`'s reverse pass gets a branch's intermediate values:
# 'packed' keeps them (the taken branch's only, packed into one buffer),
# 'recompute' keeps only the switch's inputs and reruns the taken branch's
# forward pass in the backward one (no residual traffic, one more forward).
# 'recompute' was faster in every measurement (benchmarks/results/
# supernet.md); 'packed' is kept for that comparison only: with the batch
# sharded over two devices its parameter update differed from the one-
# device update by 5e-3 (tests/supernet_test.py's two-device check), so do
# not train with it.
SWITCH_RESIDUALS = "recompute"


def switch_vjp(index: jax.Array, branches, x: jax.Array, params, arch):
  """`lax.switch(index, branches, x, params, arch)`, differentiable in x and
  params, whose reverse pass keeps only the taken branch's residuals.

  Each branch returns (y, aux); aux gets no gradient. Differentiating a
  plain `lax.switch` makes its forward pass output the residuals of EVERY
  branch (zero-filled where not taken): with one branch per mid width that
  was gigabytes of zeros written per step. Here each branch packs its own
  residuals (`jax.vjp`) into one float32 buffer sized for the largest
  branch, and the backward switch unpacks the taken branch's.
  """
  if SWITCH_RESIDUALS == "recompute":
    return _switch_recompute(index, branches, x, params, arch)
  layouts = [None] * len(branches)   # (treedef, avals) per branch, at trace

  def vjp_of(b, x, params, arch):
    y, vjp_fn, aux = jax.vjp(lambda x, p: b(x, p, arch), x, params,
                             has_aux=True)
    return y, aux, vjp_fn

  sizes = []
  for i, b in enumerate(branches):
    box = {}

    def leaves_of(x, params, arch, b=b, box=box):
      _, _, vjp_fn = vjp_of(b, x, params, arch)
      leaves, box["treedef"] = jax.tree_util.tree_flatten(vjp_fn)
      return leaves

    avals = jax.eval_shape(leaves_of, x, params, arch)
    layouts[i] = (box["treedef"], avals)
    sizes.append(sum(int(np.prod(a.shape)) for a in avals))
  size = max(sizes)

  @jax.custom_vjp
  def run(index, x, params, arch):
    return jax.lax.switch(index, branches, x, params, arch)

  def run_fwd(index, x, params, arch):
    def fwd_branch(x, params, arch, b):
      y, aux, vjp_fn = vjp_of(b, x, params, arch)
      return (y, aux), _pack(jax.tree_util.tree_leaves(vjp_fn), size)
    out, buf = jax.lax.switch(
        index, [functools.partial(fwd_branch, b=b) for b in branches],
        x, params, arch)
    return out, (index, buf)

  def run_bwd(res, g):
    index, buf = res
    gy, _ = g

    def bwd_branch(buf, gy, i):
      treedef, avals = layouts[i]
      vjp_fn = jax.tree_util.tree_unflatten(treedef, _unpack(buf, avals))
      return vjp_fn(gy)

    dx, dp = jax.lax.switch(
        index, [functools.partial(bwd_branch, i=i)
                for i in range(len(branches))], buf, gy)
    return None, dx, dp, None

  run.defvjp(run_fwd, run_bwd)
  return run(index, x, params, arch)


def _switch_recompute(index, branches, x, params, arch):
  """`switch_vjp` that saves only its inputs (see SWITCH_RESIDUALS)."""

  @jax.custom_vjp
  def run(index, x, params, arch):
    return jax.lax.switch(index, branches, x, params, arch)

  def run_fwd(index, x, params, arch):
    return run(index, x, params, arch), (index, x, params, arch)

  def run_bwd(res, g):
    index, x, params, arch = res
    gy, _ = g

    def bwd_branch(x, params, arch, gy, b):
      _, vjp_fn, _ = jax.vjp(lambda x, p: b(x, p, arch), x, params,
                             has_aux=True)
      return vjp_fn(gy)

    dx, dp = jax.lax.switch(
        index, [functools.partial(bwd_branch, b=b) for b in branches],
        x, params, arch, gy)
    return None, dx, dp, None

  run.defvjp(run_fwd, run_bwd)
  return run(index, x, params, arch)


@dataclasses.dataclass(frozen=True)
class Context:
  """Per-call settings threaded through the blocks (not module state)."""

  train: bool
  momentum: Any = L.BN_MOMENTUM   # float or traced scalar


# -------------------------------------------------------------- modules --


def _param(rngs: nnx.Rngs, shape) -> nnx.Param:
  """LeCun-normal (truncated at 2 sigma) weights, drawn on the host.

  Host-side numpy draws (seeded from the `rngs` key) avoid one XLA
  compilation per parameter shape, which made eager construction of a
  supernet take tens of seconds on this CPU.
  """
  seed = np.asarray(jax.random.key_data(rngs.params())).ravel().tolist()
  rng = np.random.default_rng(seed)
  fan_in = int(np.prod(shape[:-1]))
  w = rng.standard_normal(shape)
  while np.any(np.abs(w) > 2):
    bad = np.abs(w) > 2
    w[bad] = rng.standard_normal(int(bad.sum()))
  std = np.sqrt(1.0 / fan_in) / .87962566103423978
  return nnx.Param(jnp.asarray(w * std, jnp.float32))


def _const(value: float, n: int) -> jax.Array:
  return jnp.asarray(np.full(n, value, np.float32))


class MaskedBatchNorm(nnx.Module):
  """BatchNorm whose running statistics update only where `active`."""

  def __init__(self, channels: int):
    self.scale = nnx.Param(_const(1.0, channels))
    self.bias = nnx.Param(_const(0.0, channels))
    self.mean = nnx.BatchStat(_const(0.0, channels))
    self.var = nnx.BatchStat(_const(1.0, channels))

  def apply(self, x: jax.Array, ctx: Context
            ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Normalises x [..., n] (n <= channels: the leading channels) without
    touching the running statistics; returns (y, (batch mean, batch var)
    zero-padded to all channels) in training, (y, None) in eval."""
    n, size = x.shape[-1], self.scale.value.shape[0]
    scale, bias = self.scale[...][:n], self.bias[...][:n]
    if ctx.train:
      mean = jnp.mean(x, axis=(0, 1, 2))
      var = jnp.maximum(
          jnp.mean(jnp.square(x), axis=(0, 1, 2)) - jnp.square(mean), 0.0)
      stats = (jnp.pad(mean, (0, size - n)), jnp.pad(var, (0, size - n)))
    else:
      mean, var, stats = self.mean[...][:n], self.var[...][:n], None
    mul = jax.lax.rsqrt(var + L.BN_EPSILON) * scale
    return (x - mean) * mul + bias, stats

  def update(self, stats: tuple[jax.Array, jax.Array], ctx: Context,
             active: jax.Array) -> None:
    """Running-average update with batch `stats` where `active` ([C])."""
    m = ctx.momentum
    mean, var = stats
    self.mean[...] = jnp.where(active, m * self.mean[...] + (1 - m) * mean,
                               self.mean[...])
    self.var[...] = jnp.where(active, m * self.var[...] + (1 - m) * var,
                              self.var[...])

  def __call__(self, x: jax.Array, ctx: Context, active: jax.Array
               ) -> jax.Array:
    """`active`: bool scalar or [C] mask of channels whose stats update."""
    if ctx.train:
      # Var = E[x^2] - E[x]^2 in one pass (one XLA fusion), clipped at 0:
      # what nnx.BatchNorm (use_fast_variance) and so the standalone
      # Network compute in training.
      mean = jnp.mean(x, axis=(0, 1, 2))
      var = jnp.maximum(
          jnp.mean(jnp.square(x), axis=(0, 1, 2)) - jnp.square(mean), 0.0)
      m = ctx.momentum
      self.mean[...] = jnp.where(active, m * self.mean[...] + (1 - m) * mean,
                                 self.mean[...])
      self.var[...] = jnp.where(active, m * self.var[...] + (1 - m) * var,
                                self.var[...])
    else:
      mean, var = self.mean[...], self.var[...]
    mul = jax.lax.rsqrt(var + L.BN_EPSILON) * self.scale[...]
    return (x - mean) * mul + self.bias[...]


def _crop(w, k: int):
  """The centred k x k taps of an HWIO kernel (numpy or jax)."""
  lo = (w.shape[0] - k) // 2
  return w[lo:lo + k, lo:lo + k]


def _transform(w: jax.Array, t: jax.Array) -> jax.Array:
  """Mixes the k*k taps of HWIO kernel `w` with (I + t), t [k*k, k*k]."""
  flat = w.reshape(w.shape[0] * w.shape[1], -1)
  return (flat + t @ flat).reshape(w.shape)


class ConvBNWeights(nnx.Module):
  """A conv kernel [k, k, cin, cout] (no bias) and its BatchNorm.

  With `transforms` (smaller kernel sizes, descending), the kernel is
  elastic as in Once-for-All's "kernel transformation": the size-s kernel
  is the centre s x s of the next larger (already transformed) kernel, its
  s*s taps mixed by a learned matrix shared by all channels. The matrix is
  held as a residual on the identity (zeros at initialisation), so training
  starts from the plain centre crop and weight decay pulls towards it.
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, rngs: nnx.Rngs,
               depthwise: bool = False, transforms: tuple[int, ...] = ()):
    shape = (kernel, kernel, 1 if depthwise else cin, cout)
    self.kernel = _param(rngs, shape)
    self.bn = MaskedBatchNorm(cout)
    self.transform_sizes = tuple(transforms)
    self.transforms = nnx.data(
        nnx.List([nnx.Param(jnp.zeros((k * k, k * k), jnp.float32))
                  for k in transforms]) if transforms else None)

  def kernel_at(self, k: int) -> jax.Array:
    """The exact k x k kernel of choice `k` (a Python int)."""
    w = self.kernel[...]
    for size, t in zip(self.transform_sizes, self.transforms or ()):
      if size < k:
        break
      w = _transform(_crop(w, size), t[...])
    return _crop(w, k)

  def elastic_kernel(self, k: jax.Array) -> jax.Array:
    """The kernel of traced choice `k`, zero-padded to the largest size."""
    w = self.kernel[...]
    size = w.shape[0]
    out = w * L.kernel_mask(k, size)
    cur = w
    for s, t in zip(self.transform_sizes, self.transforms or ()):
      cur = _transform(_crop(cur, s), t[...])
      pad = [((size - s) // 2,) * 2] * 2 + [(0, 0)] * 2
      out = jnp.where(k == s, jnp.pad(cur, pad), out)
    return out


class DenseWeights(nnx.Module):
  """Dense layer [cin, cout] with bias (inputs beyond a width are zero)."""

  def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
    self.kernel = _param(rngs, (cin, cout))
    self.bias = nnx.Param(_const(0.0, cout))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ self.kernel[...] + self.bias[...]


class SEWeights(nnx.Module):

  def __init__(self, mid: int, se: int, *, rngs: nnx.Rngs):
    self.reduce_kernel = _param(rngs, (1, 1, mid, se))
    self.reduce_bias = nnx.Param(_const(0.0, se))
    self.expand_kernel = _param(rngs, (1, 1, se, mid))
    self.expand_bias = nnx.Param(_const(0.0, mid))

  def __call__(self, y: jax.Array, se_n: jax.Array) -> jax.Array:
    """Gates y [..., mid] (mid <= the largest: leading channels) with the
    first `se_n` hidden channels; identity where `se_n == 0`."""
    mid = y.shape[-1]
    s = L.global_avg_pool(y)
    s = jax.nn.relu(conv2d(s, self.reduce_kernel[...][:, :, :mid]) +
                    self.reduce_bias[...])
    s = s * channel_mask(se_n, s.shape[-1])
    g = L.hard_sigmoid(conv2d(s, self.expand_kernel[...][..., :mid]) +
                       self.expand_bias[...][:mid])
    return jnp.where(se_n > 0, y * g, y)


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

  def __call__(self, x: jax.Array, a: Mapping[str, jax.Array], ctx: Context,
               mid: int) -> tuple[jax.Array, dict[str, Any]]:
    """The block at mid width `mid` (static; `a["mid"] == mid`).

    Args:
      x: [B, H, W, max_in], zero beyond a["in_ch"].
      a: the slot's entries of `arch_arrays` (traced scalars).
      ctx: train / eval settings.
      mid: the exact mid width: only `mid` channels are computed.

    Returns:
      y [B, H', W', max_out] (zero beyond a["out_ch"]) and, in training,
      the batch statistics of each BatchNorm ({'expand' | 'dw' | 'project':
      (mean, var)}, zero-padded to the BatchNorm's size) for the caller to
      fold into the running statistics: nothing is written here, so the
      block can run inside `lax.switch`.
    """
    sl = self.slot
    stats = {}
    act = lambda y: select_activation(y, sl.activations, a["act"])
    if "shift" in sl.ops:   # same weights, as powers of two when a["op"]
      op = lambda w: jnp.where(a["op"] > 0, power_of_two(w), w)
    else:
      op = lambda w: w

    def bn(name, weights, y):
      y, st = weights.bn.apply(y, ctx)
      if st is not None:
        stats[name] = st
      return y

    y = fit_channels(x, mid)          # no expansion: mid == in
    if self.expand is not None:
      if self.fused:
        e = elastic_conv(
            x, op(self.expand.elastic_kernel(a["kernel"])[..., :mid]),
            a["kernel"], sl.kernels, sl.stride, impl=self.depthwise)
      else:
        e = conv2d(x, op(self.expand.kernel[...][..., :mid]))
      e = act(bn("expand", self.expand, e))
      y = e if sl.expand == "always" else jnp.where(a["expand"] > 0, e, y)
    if self.dw is not None:
      w = op(self.dw.elastic_kernel(a["kernel"])[..., :mid])
      y = L.elastic_depthwise_conv(y, w, a["kernel"], sl.kernels, sl.stride,
                                   impl=self.depthwise)
      y = act(bn("dw", self.dw, y))
    if self.se is not None:
      y = self.se(y, a["se"])
    stride = sl.stride if (self.fused and self.expand is None) else 1
    out_mask = channel_mask(a["out_ch"], sl.max_out)
    y = bn("project", self.project,
           conv2d(y, op(self.project.kernel[...][:, :, :mid]), stride)
           ) * out_mask
    if sl.stride == 1:
      y = jnp.where(a["residual"] > 0, y + fit_channels(x, sl.max_out), y)
    return y, stats

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

  def __call__(self, x: jax.Array, a: Mapping[str, jax.Array],
               ctx: Context) -> jax.Array:
    sl = self.slot
    # The first slot of a stage is always active (depth >= 1, never skip).
    always = sl.index == 0
    norms = [b.batch_norms() for b in self.blocks]

    def full_stats(t, stats):
      """Every block's BN statistics (zeros except type t's)."""
      if not ctx.train:
        return {}
      return {(u, name): (stats[name] if u == t else
                          (jnp.zeros(bn.mean.value.shape),) * 2)
              for u, ns in enumerate(norms) for name, bn in ns.items()}

    graphdef, weights = nnx.split(self)

    def identity(x, weights, a):
      del weights, a
      return fit_channels(x, sl.max_out), full_stats(None, {})

    def run(x, weights, a, t, mid):
      slot = nnx.merge(graphdef, weights, copy=True)
      y, stats = slot.blocks[t](x, a, ctx, mid)
      return y, full_stats(t, stats)

    branches = [] if always else [identity]
    branches += [functools.partial(run, t=t, mid=m)
                 for t in range(len(self.blocks)) for m in sl.mids]
    index = a["type"] * len(sl.mids) + choice_index(a["mid"], sl.mids)
    if not always:
      index = jnp.where(a["active"] > 0, index + 1, 0)
    a = dict(a)
    if len(branches) == 1:
      y, stats = branches[0](x, weights, a)
    elif ctx.train:
      y, stats = switch_vjp(index, branches, x, weights, a)
    else:
      y, stats = jax.lax.switch(index, branches, x, weights, a)
    if ctx.train:
      active = a["active"] > 0
      for t, ns in enumerate(norms):
        on = active & (a["type"] == t)
        for name, bn in ns.items():
          n = a["out_ch"] if name == "project" else a["mid"]
          mask = on & (jnp.arange(bn.mean.value.shape[0]) < n)
          if name == "expand" and sl.expand == "dynamic":
            mask = mask & (a["expand"] > 0)
          bn.update(stats[(t, name)], ctx, mask)
    return y


class Supernet(nnx.Module):
  """Shared weights of every architecture of `space` (see module doc).

  Call as `supernet(x, arch, train=False)` with x [B, R, R, C] and `arch`
  from `arch_arrays` (one architecture, arrays [num_slots]).
  `kernel_transform=True` adds Once-for-All's learned kernel transforms to
  every elastic-kernel conv (see `ConvBNWeights`); `depthwise` picks the
  depthwise implementation (`hwnas.models.layers`).
  """

  def __init__(self, space: SearchSpace, *, rngs: nnx.Rngs,
               num_classes: int | None = None, depthwise: str = "auto",
               dropout: float = 0.0, kernel_transform: bool = False):
    self.space = space
    self.num_classes = num_classes or space.num_classes
    self.dropout = dropout
    self.slot_info = slots(space)
    self.depthwise = depthwise
    st = space.stem
    self.stem = ConvBNWeights(space.input_channels, st.channels, st.kernel,
                              rngs=rngs)
    self.slots = nnx.List([SlotModule(s, rngs=rngs, depthwise=depthwise,
                                      kernel_transform=kernel_transform)
                           for s in self.slot_info])
    head, ch = space.head, max(space.stages[-1].widths)
    self.head_conv = nnx.data(ConvBNWeights(ch, head.expand_channels, 1,
                                            rngs=rngs)
                              if head.expand_channels else None)
    ch = head.expand_channels or ch
    self.feature = nnx.data(DenseWeights(ch, head.feature_channels, rngs=rngs)
                            if head.feature_channels else None)
    ch = head.feature_channels or ch
    self.classifier = DenseWeights(ch, self.num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, arch: ArchArrays, *, train: bool = False,
               momentum: Any = L.BN_MOMENTUM,
               dropout_key: jax.Array | None = None) -> jax.Array:
    """[B, R, R, C] images -> [B, num_classes] logits of `arch`.

    Args:
      x: input images.
      arch: `arch_arrays` of one architecture.
      train: batch statistics (and running-statistics updates) for BN.
      momentum: BN running-average momentum (traced for recalibration).
      dropout_key: key for dropout before the classifier (train only).
    """
    ctx = Context(train=train, momentum=momentum)
    space = self.space
    on = jnp.asarray(True)
    x = conv2d(x, self.stem.kernel[...], space.stem.stride,
               impl=self.depthwise)
    x = L.activation(space.stem.activation)(self.stem.bn(x, ctx, on))
    for i, slot in enumerate(self.slots):
      x = slot(x, {k: v[i] for k, v in arch.items()}, ctx)
    head = space.head
    if self.head_conv is not None:
      x = conv2d(x, self.head_conv.kernel[...])
      x = L.activation(head.activation)(self.head_conv.bn(x, ctx, on))
    x = L.global_avg_pool(x).reshape(x.shape[0], -1)
    if self.feature is not None:
      x = L.activation(head.activation)(self.feature(x))
    if train and self.dropout > 0 and dropout_key is not None:
      keep = jax.random.bernoulli(dropout_key, 1 - self.dropout, x.shape)
      x = jnp.where(keep, x / (1 - self.dropout), 0.0)
    return self.classifier(x)


# ----------------------------------------------- exact standalone subnet --


def _set(var: nnx.Variable, value) -> None:
  value = jnp.asarray(value)
  if tuple(var.value.shape) != tuple(value.shape):
    raise ValueError(f"shape {value.shape} does not fit {var.value.shape}")
  var.value = value


def _copy_bn(dst: nnx.BatchNorm, src: MaskedBatchNorm, n: int) -> None:
  _set(dst.scale, src.scale[...][:n])
  _set(dst.bias, src.bias[...][:n])
  _set(dst.mean, src.mean[...][:n])
  _set(dst.var, src.var[...][:n])


def _copy_convbn(dst: L.ConvBN, src: ConvBNWeights, cin: int, cout: int,
                 k: int) -> None:
  _set(dst.conv.kernel, src.kernel_at(k)[:, :, :cin, :cout])
  _copy_bn(dst.bn, src.bn, cout)


def _copy_block(dst: L.InvertedBottleneck, src: BlockWeights, layer) -> None:
  cin, mid, cout, k = (layer.in_channels, layer.mid_channels,
                       layer.out_channels, layer.kernel)
  if dst.expand is not None:
    _copy_convbn(dst.expand, src.expand, cin, mid, k if src.fused else 1)
  if dst.dw is not None:
    _set(dst.dw.conv.kernel, src.dw.kernel_at(k)[:, :, :, :mid])
    _copy_bn(dst.dw.bn, src.dw.bn, mid)
  if dst.se is not None:
    se = layer.se_channels
    _set(dst.se.reduce.kernel, src.se.reduce_kernel[...][:, :, :mid, :se])
    _set(dst.se.reduce.bias, src.se.reduce_bias[...][:se])
    _set(dst.se.expand.kernel, src.se.expand_kernel[...][:, :, :se, :mid])
    _set(dst.se.expand.bias, src.se.expand_bias[...][:mid])
  _copy_convbn(dst.project, src.project, mid, cout, 1)


def _copy_dense(dst: L.Dense, src: DenseWeights, cin: int) -> None:
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
    depthwise: depthwise implementation of the result ('lax' for export).
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
  layers = list(zip(spec.layers, net.layers))
  stem_layer, stem = layers[0]
  _copy_convbn(stem.body, supernet.stem, stem_layer.in_channels,
               stem_layer.out_channels, stem_layer.kernel)
  pos = 1
  for i, (s, j) in enumerate(space.slots()):
    b = arch.blocks[s][j]
    if j >= arch.depths[s] or b.type == "skip":
      continue
    layer, dst = layers[pos]
    pos += 1
    slot = supernet.slots[i]
    src = slot.blocks[slot.slot.types.index(layer.type)]
    _copy_block(dst, src, layer)
  for layer, dst in layers[pos:]:
    if layer.type == "conv":
      _copy_convbn(dst.body, supernet.head_conv, layer.in_channels,
                   layer.out_channels, 1)
    elif layer.type == "fc":
      src = (supernet.feature if (supernet.feature is not None and
                                  layer is not spec.layers[-1])
             else supernet.classifier)
      _copy_dense(dst, src, layer.in_channels)
  return net
