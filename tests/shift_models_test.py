"""Shift blocks in the standalone network and the supernet."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import space as space_lib
from hwnas.models import deepshift, layers as L
from hwnas.models.standalone import Network
from hwnas.netspec import NetSpec
from hwnas.supernet import extract
from hwnas.supernet import model as model_lib

pytestmark = pytest.mark.usefixtures("fast_compile_module")

MICRO = """\
format: 1
name: micro_shift
version: 1
input_channels: 3
num_classes: 10
resolutions: [16]
stem: {channels: 8, kernel: 3, stride: 2, activation: relu}
stages:
  - widths: [8, 16]
    stride: 2
    depths: [1, 2]
    types: [ibn, fused_ibn]
    kernels: [3, 5]
    expansions: [2, 4]
    se: [false, true]
    ops: [mult, shift]
head: {expand_channels: 16, activation: relu}
"""


@pytest.fixture(name="space")
def _space(tmp_path):
  p = tmp_path / "micro_shift.yaml"
  p.write_text(MICRO)
  return space_lib.load(p)


def _with_op(a, op):
  return dataclasses.replace(a, blocks=tuple(
      tuple(dataclasses.replace(b, op=op) for b in bs) for bs in a.blocks))


def _mixed(space):
  a = arch_lib.largest(space)
  b0, b1 = a.blocks[0]
  return dataclasses.replace(a, blocks=((
      dataclasses.replace(b0, op="shift", type="fused_ibn", se=True),
      dataclasses.replace(b1, op="shift", kernel=3)),))


@pytest.mark.slow
def test_standalone_shift_runs_its_weights_as_powers_of_two(space):
  a = _mixed(space)
  shift_spec = arch_lib.decode(space, a)
  mult_spec = arch_lib.decode(space, _with_op(a, "mult"))
  assert [l.op for l in shift_spec.blocks] == ["shift", "shift"]
  net = Network(shift_spec, rngs=nnx.Rngs(0))
  ref = Network(mult_spec, rngs=nnx.Rngs(0))
  # The multiply network with the shift network's block kernels rounded
  # (SE's dense weights stay as they are) computes the same.
  for i, l in enumerate(shift_spec.layers):
    if l.op != "shift":
      continue
    for path, v in nnx.iter_graph(ref.layers[i]):
      if isinstance(v, nnx.Param) and path[-1] == "kernel" and (
          "se" not in path):
        v.value = deepshift.power_of_two(v.value)
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  got, want = net(x), ref(x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  plain = Network(mult_spec, rngs=nnx.Rngs(0))(x)
  assert not np.allclose(got, plain, atol=1e-3)
  # Training differentiates through the rounding (straight-through).
  grads = nnx.grad(lambda m: jnp.sum(m(x, train=True) ** 2))(net)
  g = grads.layers[1].project.conv.kernel.value
  assert float(jnp.abs(g).sum()) > 0


@pytest.mark.slow
def test_supernet_shift_branch_equals_standalone_shift_model(space):
  net = model_lib.Supernet(space, rngs=nnx.Rngs(1))
  graphdef, params, stats = nnx.split(net, nnx.Param, nnx.BatchStat)

  @jax.jit
  def forward(x, arrays):
    return nnx.merge(graphdef, params, stats)(x, arrays, train=False)

  x = jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
  outs = {}
  for name, a in (("mixed", _mixed(space)),
                  ("mult", _with_op(_mixed(space), "mult")),
                  ("half", dataclasses.replace(_mixed(space), blocks=((
                      _mixed(space).blocks[0][0],
                      dataclasses.replace(_mixed(space).blocks[0][1],
                                          op="mult")),)))):
    arrays = model_lib.arch_arrays(space, a)
    want = forward(x, arrays)
    got = extract.subnet(net, a)(x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    outs[name] = np.asarray(want)
  assert not np.allclose(outs["mixed"], outs["mult"], atol=1e-3)
  # One compile serves mult and shift architectures.
  assert forward._cache_size() == 1   # pylint: disable=protected-access
  # The shift variant shares the multiply variant's weights.
  assert model_lib.arch_arrays(space, _mixed(space))["op"].tolist() == [1, 1]
  assert not any("shift" in str(p) for p, _ in nnx.iter_graph(net)
                 if isinstance(_, nnx.Param))


@pytest.mark.slow
def test_export_keeps_shift_weights_powers_of_two(space, tmp_path):
  from hwnas import tflite
  from hwnas import export
  from hwnas.export import options as options_lib
  from hwnas.models import standalone
  a = _mixed(space)
  model = Network(arch_lib.decode(space, a), rngs=nnx.Rngs(4),
                  depthwise="lax")
  x = jax.random.normal(jax.random.key(5), (2, 16, 16, 3))
  before = model(x)
  out = tmp_path / "exp"
  report = export.export_network(
      model, out, arch=a, source={"kind": "test", "description": "test"},
      options=export.ExportOptions(
          formats=("flax", "tflite"), eval_samples=4, batch_size=4,
          latency_repeats=2, latency_warmup=1))
  sw = report["checks"]["shift_weights"]
  # 2 blocks: fused (expand + project) and fused k3 (expand + project).
  assert sw["passed"] and sw["convs"] == 4, sw
  assert "shift layers: 4 convolution kernels" in (out / "report.md"
                                                  ).read_text()
  assert report["checks"]["float_tflite_vs_flax"]["passed"]
  # The caller's model is untouched; baking does not change outputs.
  np.testing.assert_array_equal(model(x), before)
  baked = nnx.clone(model)
  assert standalone.bake_shift_weights(baked) == 4
  np.testing.assert_allclose(baked(x), before, rtol=1e-6, atol=1e-6)
  assert all(deepshift.is_power_of_two(w)
             for _, w in standalone.shift_kernels(baked))
  assert not any(deepshift.is_power_of_two(w)
                 for _, w in standalone.shift_kernels(model))
  ops = tflite.op_counts((out / options_lib.FLOAT_TFLITE).read_bytes())
  assert "CONV_2D" in ops


@pytest.mark.slow
def test_int8_simulation_folds_the_shift_weights(space):
  net = model_lib.Supernet(space, rngs=nnx.Rngs(1))
  graphdef, state = nnx.split(net)

  @jax.jit
  def f(state, arrays, x):
    n = nnx.merge(graphdef, state)
    return n.observe(x, arrays)[0], n(x, arrays)

  x = jax.random.uniform(jax.random.key(6), (2, 16, 16, 3))
  outs = []
  for a in (_mixed(space), _with_op(_mixed(space), "mult")):
    folded, ref = f(state, model_lib.arch_arrays(space, a), x)
    np.testing.assert_allclose(folded, ref, rtol=1e-4,
                               atol=1e-5 * float(jnp.abs(ref).max()))
    outs.append(np.asarray(ref))
  assert not np.allclose(outs[0], outs[1], atol=1e-3)


def _int8_weight_tensors(path):
  """{shape: [(int8 weights, per-channel axis)]} of the int8 model's
  per-channel quantised weight tensors, read with LiteRT."""
  from ai_edge_litert import interpreter as litert
  it = litert.Interpreter(model_path=str(path))
  out = {}
  for d in it.get_tensor_details():
    qp = d["quantization_parameters"]
    if d["dtype"] == np.int8 and len(qp["scales"]) > 1:
      try:
        w = it.get_tensor(d["index"])
      except ValueError:
        continue
      out.setdefault(tuple(d["shape"]), []).append(
          (w, int(qp["quantized_dimension"])))
  return out


@pytest.mark.slow
def test_int8_export_keeps_shift_weights_exact_where_one_scale_holds_them(
    space, tmp_path):
  from hwnas import export
  from hwnas.export import options as options_lib
  from hwnas.models import standalone
  a = _mixed(space)     # a fused and an inverted-bottleneck shift block
  a = dataclasses.replace(a, blocks=((
      a.blocks[0][0], dataclasses.replace(a.blocks[0][1], type="ibn")),))
  model = Network(arch_lib.decode(space, a), rngs=nnx.Rngs(4),
                  depthwise="lax")
  out = tmp_path / "exp"
  report = export.export_network(
      model, out, arch=a, source={"kind": "test", "description": "test"},
      random_weights=True,
      options=export.ExportOptions(
          formats=("tflite-int8",), eval_samples=4, batch_size=4,
          calibration_steps=8, latency_repeats=2, latency_warmup=1,
          compile_edgetpu=False))
  i8 = report["checks"]["shift_weights"]["int8"]
  baked = nnx.clone(model)
  standalone.bake_shift_weights(baked)
  kernels = dict((p, np.asarray(w)) for p, w in
                 standalone.shift_kernels(baked))
  tensors = _int8_weight_tensors(out / options_lib.INT8_TFLITE)
  # fused: expand + project; ibn: expand, depthwise, project.
  assert len(i8["layers"]) == len(kernels) == 5
  ops = sorted(l["op"].split("#")[0] for l in i8["layers"])
  assert ops == ["CONV_2D"] * 4 + ["DEPTHWISE_CONV_2D"], ops
  for layer in i8["layers"]:
    k = kernels[layer["kernel"]]                      # [k, k, cin, cout]
    depthwise = layer["op"].startswith("DEPTHWISE")
    # A channel fits int8 under one scale when its non-zero weights span
    # at most 7 powers of two (64 ... 1); those are exact, the rest not.
    p = np.abs(np.moveaxis(k, 3, 0).reshape(k.shape[3], -1))
    spans = [np.log2(r[r > 0].max() / r[r > 0].min()) for r in p]
    fit = {c for c, sp in enumerate(spans) if sp <= 6}
    inexact = {b["channel"] for b in layer["not_exact"]}
    assert set(range(len(p))) - inexact == fit, layer["kernel"]
    # Read back from the file (TFLite layouts: conv [cout, k, k, cin],
    # depthwise [1, k, k, C]): the fitting channels' int8 weights are the
    # float powers of two times one factor, itself a power of two (64 for
    # the largest weight); the converter alone gives 127 and 63 instead.
    kt = np.transpose(k, (2, 0, 1, 3) if depthwise else (3, 0, 1, 2))
    (q, axis), = [(w, ax) for w, ax in tensors[kt.shape]
                  if np.all((w == 0) | (np.sign(w) == np.sign(kt)))
                  and not np.any(w[kt == 0])]
    assert axis == (3 if depthwise else 0)
    q = np.moveaxis(q, axis, 0).reshape(len(p), -1).astype(np.float64)
    for c in fit:
      np.testing.assert_array_equal(np.abs(q[c]), p[c] / p[c].max() * 64)
  # Random initial weights: some channels fit and some do not.
  assert 0 < i8["exact_channels"] < i8["channels"]
  md = (out / "report.md").read_text()
  assert f"int8 shift weights: {i8['exact_channels']} of {i8['channels']}" \
      in md
  assert "not exact:" in md
  # The realigned model still computes the network.
  assert report["checks"]["int8_gate"]["top1_agreement"] >= 0.75


@pytest.mark.slow
def test_stem_and_head_shift_supernet_equals_standalone(tmp_path):
  from hwnas.models import standalone
  p = tmp_path / "micro_stem.yaml"
  p.write_text(MICRO.replace("activation: relu}\nstages",
                             "activation: relu, op: shift}\nstages")
               .replace("{expand_channels: 16, activation: relu}",
                        "{expand_channels: 16, activation: relu, op: shift}"))
  sp = space_lib.load(p)
  assert (sp.stem.ops, sp.head.ops) == (("shift",), ("shift",))
  a = _with_op(arch_lib.largest(sp), "mult")   # only stem and head shift
  assert (a.stem_op, a.head_op) == ("shift", "shift")
  x = jax.random.normal(jax.random.key(7), (2, 16, 16, 3))
  net = model_lib.Supernet(sp, rngs=nnx.Rngs(1))
  graphdef, state = nnx.split(net)

  @jax.jit
  def f(state, arrays, x):
    n = nnx.merge(graphdef, state)
    return n(x, arrays, train=False), n.observe(x, arrays)[0]

  want, folded = f(state, model_lib.arch_arrays(sp, a), x)
  sub = extract.subnet(net, a)
  assert sub.layers[0].body.shift and sub.layers[-3].body.shift
  np.testing.assert_allclose(sub(x, train=False), want, rtol=1e-4, atol=1e-4)
  # The simulated-int8 forward folds the rounded stem / head weights too.
  np.testing.assert_allclose(folded, want, rtol=1e-4,
                             atol=1e-5 * float(jnp.abs(want).max()))
  # The same weights multiplying compute something else.
  sub.layers[0].body.shift = sub.layers[-3].body.shift = False
  assert not np.allclose(sub(x, train=False), want, atol=1e-3)
  sub.layers[0].body.shift = sub.layers[-3].body.shift = True
  n = len(sub.spec.layers)
  assert [q for q, _ in standalone.shift_kernels(sub)] == [
      "layers[0].body.conv.kernel", f"layers[{n - 3}].body.conv.kernel"]
