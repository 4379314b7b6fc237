"""Simulated int8 accuracy of supernet subnets (TFLite full-int8, faked).

The Edge TPU and phone NPUs run full-int8 networks, and post-training
quantisation does not cost every architecture the same. This module
evaluates any architecture of a trained supernet as the TFLite converter
would quantise its exported network, without exporting it:

* BatchNorm folded into the conv: `w' = w * g / sqrt(v + eps)` per output
  channel, `b' = beta - mean * g / sqrt(v + eps)`;
* weights per output channel, symmetric: `scale = max|w'| / 127` over the
  channel's active taps and input channels, int8 values in [-127, 127];
* biases int32 with scale `input_scale * weight_scale`;
* activations per tensor, asymmetric int8 (zero point in [-128, 127], 0
  exactly representable, the range widened to contain 0), with ranges
  calibrated as the converter's representative dataset does: the float
  (BN-folded) network runs over calibration images and each quantised
  tensor keeps its min and max over all of them.

Where a tensor is quantised follows the operators of an exported int8
model (read with the LiteRT flatbuffer schema from a tiny-space network
with SE and hard-swish blocks): the input; every CONV_2D /
DEPTHWISE_CONV_2D output after its fused ReLU/ReLU6 (or before the
activation, for hard-swish, whose HARD_SWISH output is a second tensor);
the projection conv output, except that a projection feeding a residual
ADD takes the ADD output's scale and zero point (as the converter assigns
them); each residual ADD output; in squeeze-excite
the AVERAGE_POOL_2D output (same scale and zero point as its input), the
reduce conv + ReLU, the expand conv with the +3 of the hard sigmoid folded
into its bias and ReLU6 fused, the MUL by 1/6 and the gating MUL; the head
conv; the global AVERAGE_POOL_2D (same parameters as its input); the
FULLY_CONNECTED logits (per-channel weights too).

The architecture is traced data (`model.arch_arrays`), exactly as in float
evaluation, so evaluating any number of architectures compiles once per
resolution. The forward pass is written here over the supernet's modules
rather than inside `Supernet.__call__`: it reads the parameters
(`stem`, `slots[i].blocks[t].{expand, dw, se, project}`, `head_conv`,
`feature`, `classifier`, each conv's `kernel` / `elastic_kernel(k)` and
`bn.{scale, bias, mean, var}`), the slot layout (`model.slots`) and the
masking primitives of `hwnas.supernet.model`, and BatchNorm recalibration
from `hwnas.supernet.train`, and mirrors the masked float forward.

>>> from hwnas.supernet import quant
>>> fn = quant.make_evaluator("runs/supernet")     # doctest: +SKIP
>>> fn([arch_a, arch_b])                            # doctest: +SKIP
[0.96, 0.91]
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from hwnas import arch as arch_lib
from hwnas.models import layers as L
from hwnas.models.deepshift import power_of_two
from hwnas.supernet import evaluate as evaluate_lib
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib

Range = jax.Array | None   # [2] (lo, hi) of a quantised tensor, or None
QMIN, QMAX = -128, 127     # int8 activations
WMAX = 127                 # int8 weights: [-127, 127] (symmetric)
ACCURACY_KINDS = ("float", "int8")


# ------------------------------------------------------- quantisation --


def act_params(r: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(scale, zero point) of int8 range `r` = [lo, hi], as TFLite nudges it.

  The range is widened to contain 0; the zero point is rounded to an
  integer in [-128, 127], so real 0 is exact (padding, masked channels).
  """
  lo = jnp.minimum(r[0], 0.0)
  hi = jnp.maximum(r[1], 0.0)
  scale = jnp.maximum((hi - lo) / (QMAX - QMIN), 1e-12)
  zp = jnp.clip(jnp.round(QMIN - lo / scale), QMIN, QMAX)
  return scale, zp


def fake_quant(x: jax.Array, r: jax.Array) -> jax.Array:
  """x quantised to int8 with range `r` and dequantised."""
  scale, zp = act_params(r)
  q = jnp.clip(jnp.round(x / scale) + zp, QMIN, QMAX)
  return (q - zp) * scale


def quant_weights(w: jax.Array, b: jax.Array, r_in: jax.Array,
                  in_mask: jax.Array | None, depthwise: bool = False
                  ) -> tuple[jax.Array, jax.Array]:
  """Per-output-channel symmetric int8 weights and int32 biases.

  Args:
    w: [..., cin, cout] (HWIO conv or [cin, cout] dense) folded weights.
    b: [cout] folded bias.
    r_in: range of the input tensor (its scale sets the bias scale).
    in_mask: [cin] mask of the input channels the layer really has (the
      scale is taken over those only); None: all.
    depthwise: `w` is [k, k, 1, C] (scale per channel C).
  """
  wm = w if (in_mask is None or depthwise) else w * in_mask[:, None]
  axes = tuple(range(w.ndim - 1))
  s = jnp.max(jnp.abs(wm), axis=axes) / WMAX
  s = jnp.where(s > 0, s, 1.0)
  wq = jnp.clip(jnp.round(wm / s), -WMAX, WMAX) * s
  sb = act_params(r_in)[0] * s
  return wq, jnp.round(b / sb) * sb


class Points:
  """Quantisation points of one forward pass.

  Observing (`ranges=None`): each point records [min, max] of its tensor
  and passes it through. Quantising: each point fake-quantises its tensor
  with the calibrated range and returns it with that range.
  """

  def __init__(self, ranges: Mapping[str, jax.Array] | None = None):
    self.ranges = ranges
    self.seen: dict[str, jax.Array] = {}

  @property
  def quantize(self) -> bool:
    return self.ranges is not None

  def __call__(self, name: str, x: jax.Array) -> tuple[jax.Array, Range]:
    if self.ranges is None:
      self.seen[name] = jnp.stack([jnp.min(x), jnp.max(x)])
      return x, None
    r = self.ranges[name]
    return fake_quant(x, r), r

  def like(self, name: str, x: jax.Array) -> jax.Array:
    """`x` quantised with point `name`'s range (not observed)."""
    return x if self.ranges is None else fake_quant(x, self.ranges[name])


def _select(cond, a: tuple[jax.Array, Range], b: tuple[jax.Array, Range]
            ) -> tuple[jax.Array, Range]:
  x = jnp.where(cond, a[0], b[0])
  if a[1] is None or b[1] is None:
    return x, None
  return x, jnp.where(cond, a[1], b[1])


def _same(P: Points, x: jax.Array, r: Range) -> jax.Array:
  """Re-quantised with the input's own parameters (AVERAGE_POOL_2D)."""
  return fake_quant(x, r) if P.quantize else x


# ------------------------------------------------------------- layers --


def _fold(w: jax.Array, bn) -> tuple[jax.Array, jax.Array]:
  mul = jax.lax.rsqrt(bn.var[...] + L.BN_EPSILON) * bn.scale[...]
  return w * mul, bn.bias[...] - bn.mean[...] * mul


def _conv(P: Points, x, r_in, w, b, *, stride=1, in_mask=None):
  if P.quantize:
    w, b = quant_weights(w, b, r_in, in_mask)
  return model_lib.conv2d(x, w, stride) + b


def _conv_bn(P: Points, x, r_in, w, bn, *, stride=1, in_mask=None):
  w, b = _fold(w, bn)
  return _conv(P, x, r_in, w, b, stride=stride, in_mask=in_mask)


def _dense(P: Points, x, r_in, dense, in_mask=None):
  w, b = dense.kernel[...], dense.bias[...]
  if P.quantize:
    w, b = quant_weights(w, b, r_in, in_mask)
  return x @ w + b


def _act(P: Points, name: str, z: jax.Array, act: str
         ) -> tuple[jax.Array, Range]:
  """Activation `act` of conv output `z` with its quantisation points."""
  if act in ("relu", "relu6", "none"):   # fused into the conv
    return P(f"{name}.{act}", L.activation(act)(z))
  z, _ = P(f"{name}.pre", z)
  if act == "hswish":                    # HARD_SWISH op
    return P(f"{name}.hswish", L.hard_swish(z))
  if act == "swish":                     # LOGISTIC + MUL
    s, _ = P(f"{name}.sigmoid", jax.nn.sigmoid(z))
    return P(f"{name}.swish", z * s)
  raise ValueError(f"no int8 simulation of activation {act!r}")


def _act_choice(P: Points, name: str, z, names, index):
  out = None
  for i, act in enumerate(names):
    y = _act(P, name, z, act)
    out = y if out is None else _select(index == i, y, out)
  return out


def _se(P: Points, name, se, y, r, se_n, mid_mask):
  se_mask = model_lib.channel_mask(se_n, se.reduce_bias.shape[-1])
  s = _same(P, L.global_avg_pool(y), r)
  h = _conv(P, s, r, se.reduce_kernel[...], se.reduce_bias[...],
            in_mask=mid_mask) * se_mask
  h, rh = P(f"{name}.reduce", jax.nn.relu(h))
  g = _conv(P, h, rh, se.expand_kernel[...], se.expand_bias[...] + 3.0,
            in_mask=se_mask)
  g, _ = P(f"{name}.gate6", jax.nn.relu6(g) * mid_mask)
  g, _ = P(f"{name}.gate", g * (1.0 / 6.0))
  return _select(se_n > 0, P(f"{name}.out", y * g), (y, r))


def _block(P: Points, name, bw, x, r, a):
  """One block type of one slot (mirrors `model.BlockWeights`)."""
  sl = bw.slot
  in_mask = model_lib.channel_mask(a["in_ch"], sl.max_in)
  mid_mask = model_lib.channel_mask(a["mid"], sl.max_mid)
  # Shift blocks: the same weights as powers of two (then BN-folded and
  # quantised, as the exported TFLite model has them).
  op = ((lambda w: jnp.where(a["op"] > 0, power_of_two(w), w))
        if "shift" in sl.ops else (lambda w: w))
  y = (model_lib.fit_channels(x, sl.max_mid), r)   # no expansion: mid == in
  if bw.expand is not None:
    w = op(bw.expand.elastic_kernel(a["kernel"]) if bw.fused
           else bw.expand.kernel[...])
    z = _conv_bn(P, x, r, w, bw.expand.bn,
                 stride=sl.stride if bw.fused else 1, in_mask=in_mask)
    e = _act_choice(P, f"{name}.expand", z * mid_mask, sl.activations,
                    a["act"])
    y = e if sl.expand == "always" else _select(a["expand"] > 0, e, y)
  if bw.dw is not None:
    w, b = _fold(op(bw.dw.elastic_kernel(a["kernel"])), bw.dw.bn)
    if P.quantize:
      w, b = quant_weights(w, b, y[1], None, depthwise=True)
    z = L.elastic_depthwise_conv(y[0], w, a["kernel"], sl.kernels, sl.stride,
                                 impl=bw.depthwise) + b
    y = _act_choice(P, f"{name}.dw", z * mid_mask, sl.activations, a["act"])
  if bw.se is not None:
    y = _se(P, f"{name}.se", bw.se, y[0], y[1], a["se"], mid_mask)
  stride = sl.stride if (bw.fused and bw.expand is None) else 1
  out_mask = model_lib.channel_mask(a["out_ch"], sl.max_out)
  z = _conv_bn(P, y[0], y[1], op(bw.project.kernel[...]), bw.project.bn,
               stride=stride, in_mask=mid_mask)
  z = z * out_mask
  p = P(f"{name}.project", z)
  if sl.stride != 1:
    return p
  # The converter gives a conv that feeds a residual ADD the ADD's output
  # scale and zero point (its own range is not used).
  add = P(f"{name}.add", P.like(f"{name}.add", z) +
          model_lib.fit_channels(x, sl.max_out))
  return _select(a["residual"] > 0, add, p)


def _slot(P: Points, name, slot, x, r, a):
  active = a["active"] > 0
  out = (None if slot.slot.index == 0 else
         (model_lib.fit_channels(x, slot.slot.max_out), r))
  for t, block in enumerate(slot.blocks):
    y = _block(P, f"{name}.{t}", block, x, r, a)
    out = y if out is None else _select(active & (a["type"] == t), y, out)
  return out


def forward(net: model_lib.Supernet, x: jax.Array,
            arch: Mapping[str, jax.Array], P: Points) -> jax.Array:
  """Eval-mode logits of `arch` with the quantisation points `P`.

  With an observing `P` this is the float network with BatchNorm folded
  (equal to `net(x, arch)` up to float rounding) and `P.seen` holds every
  point's range; with calibrated ranges it is the simulated int8 network.
  """
  space = net.space
  x, r = P("input", x)
  z = _conv_bn(P, x, r, net.stem.kernel[...], net.stem.bn,
               stride=space.stem.stride)
  x, r = _act(P, "stem", z, space.stem.activation)
  for i, slot in enumerate(net.slots):
    x, r = _slot(P, f"slot{i}", slot, x, r,
                 {k: v[i] for k, v in arch.items()})
  last = max(i for i, s in enumerate(net.slot_info)
             if s.stage == len(space.stages) - 1 and s.index == 0)
  width_mask = model_lib.channel_mask(arch["out_ch"][last], x.shape[-1])
  head = space.head
  if net.head_conv is not None:
    z = _conv_bn(P, x, r, net.head_conv.kernel[...], net.head_conv.bn,
                 in_mask=width_mask)
    x, r = _act(P, "head", z, head.activation)
    width_mask = None
  x = _same(P, L.global_avg_pool(x), r).reshape(x.shape[0], -1)
  if net.feature is not None:
    z = _dense(P, x, r, net.feature, width_mask)
    x, r = _act(P, "feature", z, head.activation)
    width_mask = None
  logits, _ = P("logits", _dense(P, x, r, net.classifier, width_mask))
  return logits


def calibrate(net: model_lib.Supernet, calib: jax.Array,
              arch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Ranges of every quantisation point over calibration images.

  Args:
    net: the supernet (BatchNorm statistics of `arch`).
    calib: [n, B, R, R, C] images (the representative dataset).
    arch: `model.arch_arrays` of one architecture.

  Returns:
    {point name: [min, max]} over all n batches.
  """
  def observe(x):
    P = Points()
    forward(net, x, arch, P)
    return P.seen

  seen = jax.lax.map(observe, calib)
  return {k: jnp.stack([jnp.min(v[:, 0]), jnp.max(v[:, 1])])
          for k, v in seen.items()}


# --------------------------------------------------------- evaluation --


@functools.lru_cache(maxsize=8)
def _accuracy_fn(graphdef, kinds: tuple[str, ...]) -> Callable:
  """jit(params, stats, arch, calib, images, labels, mask) -> [accuracy]
  per kind in `kinds` ('float', 'int8'), sharing one BN recalibration."""

  def fn(params, stats, arch, calib, images, labels, mask):
    state = train_lib.recalibrate({"params": params, "stats": stats}, calib,
                                  arch, graphdef=graphdef)
    ranges = None
    if "int8" in kinds:
      ranges = calibrate(train_lib.merge(graphdef, state), calib, arch)

    def body(carry, xs):
      x, y, m = xs
      net = train_lib.merge(graphdef, state)
      out = []
      for kind in kinds:
        logits = (net(x, arch, train=False) if kind == "float"
                  else forward(net, x, arch, Points(ranges)))
        out.append(jnp.sum((jnp.argmax(logits, -1) == y) * m))
      return carry + jnp.stack(out), None

    correct, _ = jax.lax.scan(body, jnp.zeros(len(kinds)),
                              (images, labels, mask))
    return correct / jnp.maximum(jnp.sum(mask), 1.0)

  return jax.jit(fn)


@functools.lru_cache(maxsize=8)
def _ranges_fn(graphdef) -> Callable:
  def fn(params, stats, arch, calib):
    state = train_lib.recalibrate({"params": params, "stats": stats}, calib,
                                  arch, graphdef=graphdef)
    return calibrate(train_lib.merge(graphdef, state), calib, arch)
  return jax.jit(fn)


class Evaluator(evaluate_lib.Evaluator):
  """`evaluator(archs) -> accuracies` by float or simulated int8 accuracy.

  Same data and compilation rule as `hwnas.supernet.evaluate.Evaluator`
  (BN recalibrated per architecture on `data`'s calibration images, which
  are also the int8 calibration images; one compilation per resolution).

  Args:
    graphdef, state, space, data: as `evaluate.Evaluator`.
    accuracy: 'int8' (rank by simulated int8 accuracy) or 'float'.
    also: further kinds computed in the same call (e.g. ('float',) with
      accuracy='int8'); all are kept in `last_metrics`.

  Attributes:
    last_metrics: one dict per architecture of the last call, e.g.
      `{"accuracy_float": 0.97, "accuracy_int8": 0.96}`.
  """

  def __init__(self, graphdef, state: Mapping[str, Any], space, data, *,
               accuracy: str = "int8", also: Sequence[str] = ()):
    super().__init__(graphdef, state, space, data)
    if accuracy not in ACCURACY_KINDS or set(also) - set(ACCURACY_KINDS):
      raise ValueError(f"accuracy kinds are {ACCURACY_KINDS}; got "
                       f"{accuracy!r}, {tuple(also)!r}")
    self.accuracy = accuracy
    self.kinds = (accuracy,) + tuple(k for k in dict.fromkeys(also)
                                     if k != accuracy)
    self.last_metrics: list[dict[str, float]] = []

  def __call__(self, archs: Sequence[arch_lib.ArchChoice]) -> list[float]:
    fn = _accuracy_fn(self.graphdef, self.kinds)
    out = []
    for a in archs:
      d = self.data.at(a.resolution)
      out.append(fn(self.params, self.stats,
                    model_lib.arch_arrays(self.space, a), d.calib, d.images,
                    d.labels, d.mask))
    rows = jax.device_get(out)
    self.last_metrics = [{f"accuracy_{k}": float(v)
                          for k, v in zip(self.kinds, row)} for row in rows]
    return [float(row[0]) for row in rows]

  def ranges(self, arch: arch_lib.ArchChoice) -> dict[str, Any]:
    """The calibrated [min, max] of every quantisation point of `arch`."""
    d = self.data.at(arch.resolution)
    return jax.device_get(_ranges_fn(self.graphdef)(
        self.params, self.stats, model_lib.arch_arrays(self.space, arch),
        d.calib))


def make_evaluator(workdir: str | os.PathLike[str], space=None, *,
                   dataset: str | None = None, accuracy: str = "int8",
                   also: Sequence[str] = ()) -> Evaluator:
  """`evaluate.make_evaluator` ranking by `accuracy` ('int8' or 'float').

  Args:
    workdir: a `hwnas supernet train` workdir.
    space: if given, must be the workdir's space.
    dataset: evaluate on another dataset with the same classes.
    accuracy: the accuracy returned (and ranked by in search).
    also: other kinds computed in the same pass (see `Evaluator`).
  """
  base = evaluate_lib.make_evaluator(workdir, space, dataset=dataset)
  return Evaluator(base.graphdef, {"params": base.params,
                                   "stats": base.stats}, base.space,
                   base.data, accuracy=accuracy, also=also)
