"""Where the smallest subnet's training step spends its time.

  python benchmarks/profile_small_subnet.py [--space mobilenetv3]
      [--resolution 64] [--batch 64] [--repeats 10] [--no-supernet]

Times, jitted, forward + backward (gradients of the input and the
weights), each piece of the smallest architecture's network on its own at
its exact shapes, and sums them by kind: the 3x3 stem convolution, the 1x1
convolutions (expand, project, head), the depthwise convolutions (the
shift-add hwnas uses on CPU and XLA's grouped convolution), BatchNorm in
training mode with its activation, squeeze-excite, the dense layers. Then
the whole step: the exact-shape standalone network (`hwnas.models.Network`)
and, unless `--no-supernet`, the supernet's one-architecture step with the
smallest architecture. The whole step minus the sum of its pieces is what
the pieces do not explain (the optimiser, the loss, fusion boundaries,
dispatch). Also: the standalone step's compiled HLO (instructions of the
entry computation by kind: each is one dispatched kernel) and XLA:CPU's
cost of one dispatched op (a chain of small dependent matrix products).
Prints a markdown section (benchmarks/RESULTS.md holds runs).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import space as space_lib
from hwnas.configs.supernet import get_config
from hwnas.latency.backends import cpu_model
from hwnas.models import layers
from hwnas.models.standalone import Network
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib


def _median_ms(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return float(np.median(times)) * 1e3


def _fwd_bwd(f):
  """jit of (x, w) -> grads of sum(f(x, w)) in x and w."""
  return jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w)), argnums=(0, 1)))


def _bn_act(act):
  def f(x, scale):
    mean = jnp.mean(x, (0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), (0, 1, 2))
    y = (x - mean) * jax.lax.rsqrt(var + layers.BN_EPSILON) * scale
    return layers.activation(act)(y)
  return f


def _pieces(spec, batch):
  """[(kind, fwd+bwd fn, (x, w))] of every piece of `spec`'s layers."""
  key = jax.random.key(0)
  out = []

  def rand(*shape):
    return jax.random.normal(key, shape, jnp.float32)

  def add(kind, f, x_shape, w_shape):
    out.append((kind, _fwd_bwd(f), (rand(*x_shape), rand(*w_shape))))

  conv = lambda stride: lambda x, w: layers.conv2d(x, w, stride)
  dw = lambda stride, impl: lambda x, w: layers.depthwise_conv(
      x, w, stride, impl=impl)
  for layer in spec.layers:
    h, cin, cout = layer.input_size, layer.in_channels, layer.out_channels
    ho = -(-h // layer.stride)
    if layer.type == "conv":
      add("stem 3x3 conv" if layer.kernel > 1 else "1x1 conv",
          conv(layer.stride), (batch, h, h, cin),
          (layer.kernel, layer.kernel, cin, cout))
      add("BatchNorm + activation", _bn_act(layer.activation),
          (batch, ho, ho, cout), (cout,))
    elif layer.type == "ibn":
      mid, k = layer.mid_channels, layer.kernel
      if mid != cin:
        add("1x1 conv", conv(1), (batch, h, h, cin), (1, 1, cin, mid))
        add("BatchNorm + activation", _bn_act(layer.activation),
            (batch, h, h, mid), (mid,))
      for impl in ("shift", "lax"):
        add(f"depthwise ({impl})", dw(layer.stride, impl),
            (batch, h, h, mid), (k, k, 1, mid))
      add("BatchNorm + activation", _bn_act(layer.activation),
          (batch, ho, ho, mid), (mid,))
      if layer.se_channels:
        se = layer.se_channels
        add("squeeze-excite", lambda x, w: x * layers.hard_sigmoid(
            jax.nn.relu(jnp.mean(x, (1, 2)) @ w) @ w.T)[:, None, None, :],
            (batch, ho, ho, mid), (mid, se))
      add("1x1 conv", conv(1), (batch, ho, ho, mid), (1, 1, mid, cout))
      add("BatchNorm + activation", _bn_act("none"), (batch, ho, ho, cout),
          (cout,))
    elif layer.type == "fc":
      add("dense", lambda x, w: x @ w, (batch, cin), (cin, cout))
  return out


def _standalone(spec, x, labels):
  net = Network(spec, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(net, nnx.Param, ...)
  tx = optax.sgd(0.1, momentum=0.9, nesterov=True)

  def step(params, rest, opt):
    def loss_fn(p):
      m = nnx.merge(graphdef, p, rest, copy=True)
      logits = m(x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, labels).mean(), nnx.state(m, nnx.BatchStat)
    (_, new_rest), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), new_rest, opt

  return jax.jit(step), (params, rest, tx.init(params))


def _entry_ops(compiled_text: str) -> collections.Counter:
  """Instructions of the ENTRY computation by opcode."""
  entry = compiled_text[compiled_text.index("\nENTRY"):]
  entry = entry[:entry.index("\n}")]
  ops = re.findall(r"=\s*\S+\s+([a-z][a-z0-9-]*)\(", entry)
  return collections.Counter(ops)


def _dispatch_floor_us(repeats):
  """Microseconds per op of a chain of 200 dependent 8x8 matmuls."""
  n = 200

  def chain(a):
    for _ in range(n):
      a = jnp.tanh(a @ a)   # a dot each: not fused into one kernel
    return a
  return _median_ms(jax.jit(chain), (jnp.eye(8) * 0.5,), repeats) * 1e3 / n


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--space", default="mobilenetv3")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--no-supernet", action="store_true")
  a = p.parse_args()
  t0 = time.time()
  space = dataclasses.replace(space_lib.load(a.space),
                              resolutions=(a.resolution,), num_classes=10)
  small = arch_lib.smallest(space)
  spec = arch_lib.decode(space, small)
  sums, counts = collections.defaultdict(float), collections.Counter()
  for kind, fn, args in _pieces(spec, a.batch):
    sums[kind] += _median_ms(fn, args, a.repeats)
    counts[kind] += 1
  x = jax.random.normal(jax.random.key(1),
                        (a.batch, a.resolution, a.resolution, 3))
  labels = jnp.arange(a.batch) % 10
  step, state = _standalone(spec, x, labels)
  whole = {"standalone step (exact shapes)": _median_ms(step, state,
                                                        a.repeats)}
  ops = _entry_ops(step.lower(*state).compile().as_text())
  if not a.no_supernet:
    cfg = get_config()
    net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
    tx = train_lib.make_optimizer(cfg, 1000)
    graphdef, sn_state = train_lib.create_state(net, tx)
    sn_step = jax.jit(functools.partial(
        train_lib.train_step, graphdef=graphdef, tx=tx,
        resolution=a.resolution))
    arrays = model_lib.stack_arch_arrays(space, [small])
    whole["supernet step, smallest architecture"] = _median_ms(
        sn_step, (sn_state, {"image": x, "label": labels},
                  jax.random.key(0), arrays), a.repeats)
  floor = _dispatch_floor_us(a.repeats)
  load = os.getloadavg()

  print(f"### Smallest subnet, {a.space} at {a.resolution} px, batch "
        f"{a.batch}: where the step's time goes\n")
  print(f"{cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__}; "
        f"medians of {a.repeats} calls; load average {load[0]:.1f} at the "
        f"end; wall {time.time() - t0:.0f} s. Arch "
        f"`{arch_lib.to_string(small)}`.\n")
  print("| piece (forward + backward, alone) | count | sum of medians ms |")
  print("|---|---:|---:|")
  for kind in sorted(sums, key=lambda k: -sums[k]):
    print(f"| {kind} | {counts[kind]} | {sums[kind]:.1f} |")
  pieces = sum(v for k, v in sums.items() if k != "depthwise (lax)")
  print(f"| **sum with the shift-add depthwise** | | **{pieces:.1f}** |\n")
  print("| whole step | ms | pieces / whole |\n|---|---:|---:|")
  for name, ms in whole.items():
    print(f"| {name} | {ms:.1f} | {pieces / ms:.2f} |")
  print(f"\nThe standalone step's compiled entry computation: "
        f"{sum(ops.values())} instructions ("
        + ", ".join(f"{k} {v}" for k, v in ops.most_common(8))
        + f"); one dispatched op costs about {floor:.1f} us here (a chain "
        f"of small dependent matrix products), so dispatch accounts for "
        f"about {sum(ops.values()) * floor / 1e3:.1f} ms of the step.")


if __name__ == "__main__":
  main()
