"""Tests of the weight-sharing supernet: compile count, subnet extraction,
resume, data parallelism and the `hwnas supernet` CLI.

They use a one-stage space (every kind of choice, few slots) so that the
JAX compilations they need stay short on a 2-core CPU.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import data as data_lib
from hwnas import errors
from hwnas import space as space_lib
from hwnas.cli import main as cli_main
from hwnas.configs import loader
from hwnas.supernet import channels
from hwnas.supernet import evaluate as evaluate_lib
from hwnas.supernet import loop
from hwnas.supernet import blocks, extract
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib

MICRO = """\
format: 1
name: micro
version: 1
description: a one-stage space with every kind of choice, for tests
input_channels: 3
num_classes: 10
channel_divisor: 8
se_ratio: 0.25
resolutions: {resolutions}
stem: {{channels: 8, kernel: 3, stride: 2, activation: relu}}
stages:
  - name: s1
    widths: [8, 16]
    stride: 2
    depths: [1, 2]
    types: [ibn, fused_ibn, skip]
    kernels: [3, 5]
    expansions: [2, 4]
    se: [false, true]
    activations: [relu, hswish]
head: {{expand_channels: 32, feature_channels: 0, activation: relu}}
"""


def _space_file(tmp_path, resolutions=(16, 24)) -> pathlib.Path:
  p = tmp_path / "micro.yaml"
  p.write_text(MICRO.format(resolutions=list(resolutions)))
  return p


@pytest.fixture(name="space")
def _space(tmp_path):
  return space_lib.load(_space_file(tmp_path))


def _archs(space, n, seed=0):
  rng = np.random.default_rng(seed)
  return [arch_lib.sample(rng, space) for _ in range(n)]


def _write_pngs(root, classes, per_class, size, seed):
  """Class-coloured random images in `root/train/<class>/*.png`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for c, cls in enumerate(classes):
    d = root / "train" / cls
    d.mkdir(parents=True)
    for i in range(per_class):
      img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
      img[..., c % 3] += 150
      Image.fromarray(img).save(d / f"{i}.png")


# ------------------------------------------------------------ the model --


def test_arch_arrays_encode_depth_and_skip(space):
  a = arch_lib.smallest(space)
  arrays = model_lib.arch_arrays(space, a)
  spec = arch_lib.decode(space, a)
  assert int(arrays["active"].sum()) == len(spec.blocks)
  assert set(arrays) == set(model_lib.ARCH_KEYS)
  assert all(v.shape == (space.num_slots,) for v in arrays.values())


@pytest.mark.slow
def test_evaluator_compiles_once_per_resolution(space):
  """50 architectures, 2 resolutions: 2 compilations (tfds path, mocked;
  500 architectures also gave 2, in a slower run of this test)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=24):
    ds = data_lib.load("tfds:cifar10")
    net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
    tx = train_lib.make_optimizer(_config(space), 10)
    graphdef, state = train_lib.create_state(net, tx)
    data = evaluate_lib.EvalData(ds, batch_size=8, bn_batches=1,
                                 bn_batch_size=8)
    fn = evaluate_lib._accuracy_fn(graphdef)  # pylint: disable=protected-access
    before = fn._cache_size()                  # pylint: disable=protected-access
    archs = _archs(space, 50)
    assert {a.resolution for a in archs} == {16, 24}
    assert len({arch_lib.to_string(a) for a in archs}) > 25
    accs = evaluate_lib.evaluate(state, archs, data, graphdef=graphdef,
                                 space=space)
  assert len(accs) == 50 and all(0.0 <= a <= 1.0 for a in accs)
  assert fn._cache_size() - before == 2      # pylint: disable=protected-access


@pytest.mark.slow
def test_standalone_subnet_equals_supernet(space):
  net = model_lib.Supernet(space, rngs=nnx.Rngs(1))
  # Non-trivial BatchNorm statistics, so copying them is tested too.
  stats = nnx.state(net, nnx.BatchStat)
  rng = np.random.default_rng(0)
  stats = jax.tree.map(
      lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape) if v.ndim else v,
                            jnp.float32), stats)
  nnx.update(net, stats)
  graphdef, params, bstats = nnx.split(net, nnx.Param, nnx.BatchStat)

  @jax.jit
  def forward(x, arch):
    return nnx.merge(graphdef, params, bstats)(x, arch, train=False)

  x = jnp.asarray(rng.standard_normal((2, 24, 24, 3)), jnp.float32)
  archs = [arch_lib.largest(space), arch_lib.smallest(space),
           *_archs(space, 4, seed=3)]
  for a in archs:
    a = dataclasses.replace(a, resolution=24)
    want = forward(x, model_lib.arch_arrays(space, a))
    sub = extract.subnet(net, a)
    got = sub(x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                               err_msg=arch_lib.to_string(a))
  assert forward._cache_size() == 1          # pylint: disable=protected-access


@pytest.mark.slow
def test_kernel_transform_is_learned_and_copied_to_the_subnet(space):
  """Once-for-All's kernel transform: the centre crop at initialisation;
  trained (here: random) transforms change the small-kernel subnets only,
  get gradients, and the standalone subnet computes the same function."""
  plain = model_lib.Supernet(space, rngs=nnx.Rngs(1))
  net = model_lib.Supernet(space, rngs=nnx.Rngs(1), kernel_transform=True)
  block = net.slots[0].blocks[0]                 # ibn: depthwise k5, k3
  assert block.dw.transform_sizes == (3,)
  assert block.dw.transforms[0][...].shape == (9, 9)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32)
  archs = [dataclasses.replace(a, resolution=16) for a in
           [arch_lib.largest(space), arch_lib.smallest(space),
            *_archs(space, 6, seed=5)]]
  k3 = [a for a in archs if any(b.kernel == 3 and b.type != "skip"
                                for b in a.blocks[0][:a.depths[0]])]
  assert k3 and len(k3) < len(archs)

  def forward(model):
    """Jitted (params, arch arrays) -> logits of `model`, and its params."""
    graphdef, p, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    fn = jax.jit(lambda p, arr: nnx.merge(graphdef, p, stats)(x, arr))
    return fn, p

  arrays = {arch_lib.to_string(a): model_lib.arch_arrays(space, a)
            for a in archs}
  (f_net, params), (f_plain, plain_params) = forward(net), forward(plain)
  for a in archs:                                 # identity at init
    arr = arrays[arch_lib.to_string(a)]
    np.testing.assert_allclose(f_net(params, arr),
                               f_plain(plain_params, arr), atol=1e-6)

  grads = jax.grad(lambda p: jnp.sum(jnp.square(f_net(
      p, arrays[arch_lib.to_string(k3[0])]))))(params)
  g = grads["slots"][0]["blocks"]
  assert any(float(jnp.abs(g[t][c]["transforms"][0][...]).max()) > 0
             for t, c in ((0, "dw"), (1, "expand")))

  for blk in (b for slot in net.slots for b in slot.blocks):
    for conv in (blk.expand, blk.dw):
      for t in (conv.transforms or ()) if conv is not None else ():
        t.value = jnp.asarray(rng.normal(0, 0.3, t.value.shape), jnp.float32)
  params = nnx.state(net, nnx.Param)
  for a in archs:
    arr = arrays[arch_lib.to_string(a)]
    want = f_net(params, arr)
    changed = not np.allclose(want, f_plain(plain_params, arr), atol=1e-4)
    assert changed == (a in k3), arch_lib.to_string(a)
    got = extract.subnet(net, a)(x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                               err_msg=arch_lib.to_string(a))


def test_kernel_transform_is_a_config_switch(space):
  """`--set kernel_transform=true` adds the transforms to the run's state;
  a workdir config without the key (older runs) builds without them."""
  config = loader.load("tiny")
  assert config.kernel_transform is False
  loader.override(config, ["kernel_transform=true"])
  _, state, _ = loop.build(space, config, 10)
  paths = [p for p, _ in state["params"].flat_state()]
  assert any("transforms" in p for p in paths)
  del config["kernel_transform"]
  _, state, _ = loop.build(space, config, 10)
  assert not any("transforms" in p for p, _ in state["params"].flat_state())


def _random_stats(net, seed):
  """Non-trivial BatchNorm statistics, so their permutation is tested."""
  rng = np.random.default_rng(seed)
  stats = jax.tree.map(
      lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape) if v.ndim else v,
                            jnp.float32), nnx.state(net, nnx.BatchStat))
  nnx.update(net, stats)


@pytest.mark.slow
def test_sort_channels_keeps_the_largest_and_reorders_the_rest(space):
  """Importance sorting relabels the largest subnet's channels (same
  function), puts the most important channels first (which changes smaller
  expansions) and moves optimiser moments with their channels."""
  net = model_lib.Supernet(space, rngs=nnx.Rngs(2))
  _random_stats(net, 1)
  # Random biases and BN scales too (zeros and ones hide a lost permutation).
  rng = np.random.default_rng(3)
  nnx.update(net, jax.tree.map(
      lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape), jnp.float32)
      if v.ndim == 1 else v, nnx.state(net, nnx.Param)))
  tx = train_lib.make_optimizer(_config(space), 10)     # adamw: mu and nu
  graphdef, state = train_lib.create_state(net, tx)
  # Moments equal to the parameters: after sorting they must still be.
  state["opt_state"] = jax.tree.map(
      lambda s: state["params"] if isinstance(s, nnx.State) else s,
      state["opt_state"], is_leaf=lambda s: isinstance(s, nnx.State))
  new = channels.sort_channels(space, state)

  @jax.jit
  def forward(st, arch):
    return train_lib.merge(graphdef, st)(x, arch, train=False)

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32)
  big = dataclasses.replace(arch_lib.largest(space), resolution=16)
  for t in ("ibn", "fused_ibn"):          # the largest of each block type
    a = dataclasses.replace(big, blocks=tuple(
        tuple(dataclasses.replace(b, type=t) for b in row)
        for row in big.blocks))
    arr = model_lib.arch_arrays(space, arch_lib.canonicalize(space, a))
    np.testing.assert_allclose(forward(new, arr), forward(state, arr),
                               rtol=1e-4, atol=1e-5, err_msg=t)
  small = [dataclasses.replace(a, resolution=16) for a in _archs(space, 6)]
  assert any(not np.allclose(forward(new, model_lib.arch_arrays(space, a)),
                             forward(state, model_lib.arch_arrays(space, a)),
                             atol=1e-4) for a in small)
  for (slot, typ), order in channels.importance_orders(
      space, new["params"]).items():
    assert (order["mid"] == np.arange(order["mid"].size)).all(), (slot, typ)
    kernel = new["params"]["slots"][slot]["blocks"][typ]["project"]["kernel"]
    imp = np.abs(np.asarray(kernel[...])).sum(axis=(0, 1, 3))
    assert (np.diff(imp) <= 0).all() and np.ptp(imp) > 0
  want = jax.tree.leaves(new["params"])
  moments = [s for s in jax.tree.leaves(
      new["opt_state"], is_leaf=lambda s: isinstance(s, nnx.State))
             if isinstance(s, nnx.State)]
  assert len(moments) == 2
  for m in moments:
    for a, b in zip(jax.tree.leaves(m), want):
      np.testing.assert_array_equal(a, b)


def test_subnet_rejects_another_network(space):
  net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  big, small = arch_lib.largest(space), arch_lib.smallest(space)
  with pytest.raises(errors.HwnasError):
    extract.subnet(net, big, spec=arch_lib.decode(space, small))


# ------------------------------------------------------ data parallelism --


_MULTI_DEVICE = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from hwnas import arch as arch_lib, space as space_lib
from hwnas.supernet import model as model_lib, train as train_lib
assert jax.device_count() == 2, jax.devices()
space = space_lib.load(sys.argv[1])
config = ml_collections.ConfigDict(json.loads(sys.argv[2]))
net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
tx = train_lib.make_optimizer(config, 10)
graphdef, state = train_lib.create_state(net, tx)
rng = np.random.default_rng(0)
archs = train_lib.sandwich(rng, space, n_random=1, resolution=16)
arch_batch = model_lib.stack_arch_arrays(space, archs)
batch = {"image": rng.standard_normal((8, 16, 16, 3)).astype(np.float32),
         "label": rng.integers(0, 10, 8).astype(np.int32)}
step = train_lib.jit_train_step(graphdef, tx, resolution=16,
                                label_smoothing=0.1, kd_ratio=1.0)
key = jax.random.key(0)
# The step donates its state: give each call its own copy.
fresh = lambda: jax.tree.map(lambda x: jnp.array(x, copy=True), state)
one = jax.device_put(fresh(), jax.devices()[0])
s1, m1 = step(one, jax.device_put(batch, jax.devices()[0]), key, arch_batch)
mesh = Mesh(np.asarray(jax.devices()), ("data",))
two = jax.device_put(fresh(), NamedSharding(mesh, P()))
sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
s2, m2 = step(two, sharded, key, arch_batch)
assert len(sharded["image"].sharding.device_set) == 2
d = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
        zip(jax.tree.leaves(s1["params"]), jax.tree.leaves(s2["params"])))
ds = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
         zip(jax.tree.leaves(s1["stats"]), jax.tree.leaves(s2["stats"])))
print(json.dumps({"loss1": float(m1["train/loss"]),
                  "loss2": float(m2["train/loss"]), "params": d,
                  "stats": ds}))
"""


def _config(space):
  del space
  return loader.load("tiny")


@pytest.mark.slow
def test_two_device_step_equals_one_device_step(tmp_path):
  path = _space_file(tmp_path, resolutions=(16,))
  config = _config(None)
  config.optimizer.warmup_steps = 0   # a real update at step 0
  # SGD: the update is proportional to the gradient (Adam's first step is
  # about lr * sign(g), which float noise flips where g is ~0).
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.1
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-c", _MULTI_DEVICE, str(path), config.to_json()],
      env=env, capture_output=True, text=True, timeout=900, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert np.isfinite(r["loss1"])
  assert abs(r["loss1"] - r["loss2"]) < 1e-4 * max(1.0, abs(r["loss1"]))
  assert r["params"] < 1e-4 and r["stats"] < 1e-4


# ---------------------------------------- training, resume, CLI, evaluate --


def _params(workdir):
  _, _, state, _ = evaluate_lib.load_workdir(workdir)
  return [np.asarray(x) for x in jax.tree.leaves(state["params"])]


@pytest.mark.slow
@pytest.mark.usefixtures("fast_compile")
def test_cli_train_resume_and_eval(tmp_path, capsys):
  """2-step `hwnas supernet train` on an image-folder dataset, with
  progressive shrinking entering the expansion phase (and so sorting
  channels) at step 1; a resumed run (from the step-1 checkpoint) ends with
  the same weights; `eval` agrees with training's final evaluation; the
  evaluator rebuilds from the workdir alone."""
  pytest.importorskip("tensorflow")
  path = _space_file(tmp_path, resolutions=(16,))
  _write_pngs(tmp_path / "imgs", ["a", "b", "c"], 8, 20, 0)
  dataset = f"folder:{tmp_path / 'imgs'}"
  wd = tmp_path / "sn"
  argv = ["supernet", "train", "--space", str(path), "--dataset", dataset,
          "--workdir", str(wd), "--steps", "2", "--no-progress",
          "--set", "train.batch_size=8", "--set", "train.log_every=1",
          "--set", "train.checkpoint_every=1", "--set", "eval.bn_batches=1",
          "--set", "optimizer.warmup_steps=0",
          "--set", "train.progressive_shrinking=true",
          "--set", "train.shrink_schedule=[0,0,0,0.5]"]
  assert cli_main(argv) == 0
  saved = json.loads((wd / "config.json").read_text())
  assert saved["config"]["train"]["steps"] == 2
  assert saved["config"]["dataset"] == dataset
  assert saved["num_classes"] == 3
  rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().split(
      "\n") if l.strip()]
  assert [r["step"] for r in rows if "train/loss" in r] == [1, 2]
  final = rows[-1]
  assert 0.0 <= final["eval/top1_largest"] <= 1.0
  want = _params(wd)

  # Interrupted after step 1: only its checkpoint survives.
  shutil.rmtree(wd / "checkpoints" / "2")
  assert cli_main(argv) == 0
  got = _params(wd)
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  capsys.readouterr()

  assert cli_main(["supernet", "eval", "--workdir", str(wd), "--largest",
                   "--smallest", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert [r["arch"] for r in out] == ["largest", "smallest"]
  assert abs(out[0]["accuracy"] - final["eval/top1_largest"]) < 1e-6
  assert abs(out[1]["accuracy"] - final["eval/top1_smallest"]) < 1e-6

  space = space_lib.load(path)
  fn = evaluate_lib.make_evaluator(wd, space)
  assert fn([arch_lib.largest(space)]) == ([out[0]["accuracy"]], [{}])
  net = evaluate_lib.extract_subnet(wd, arch_lib.smallest(space))
  assert net(jnp.zeros((1, 16, 16, 3)), train=False).shape == (1, 3)


def test_missing_workdir_is_one_line_error(tmp_path):
  with pytest.raises(errors.HwnasError, match="config.json"):
    evaluate_lib.make_evaluator(tmp_path / "nothing")


def test_corrupt_checkpoint_names_path(tmp_path):
  """A workdir whose checkpoint is damaged fails with the path named."""
  path = _space_file(tmp_path, resolutions=(16,))
  wd = tmp_path / "sn"
  (wd / "checkpoints" / "3").mkdir(parents=True)
  (wd / "checkpoints" / "3" / "garbage").write_text("not a checkpoint")
  config = _config(None)
  config.space = str(path)
  (wd / "config.json").write_text(json.dumps(
      {"config": json.loads(config.to_json()), "space_path": str(path),
       "space": "micro", "num_classes": 10}))
  with pytest.raises(errors.HwnasError) as e:
    evaluate_lib.load_workdir(wd)
  assert str(wd / "checkpoints") in str(e.value)
  assert "\n" not in str(e.value)


def test_cli_config_overrides():
  c = loader.load(None, space="tiny")
  loader.override(c, ["optimizer.learning_rate=0.05", "train.resolutions=[24]",
                   "dataset=tfds:cifar10", "optimizer.nesterov=false"])
  assert c.optimizer.learning_rate == 0.05
  assert tuple(c.train.resolutions) == (24,)
  assert c.dataset == "tfds:cifar10" and c.optimizer.nesterov is False
  with pytest.raises(errors.HwnasError, match="no config key"):
    loader.override(c, ["optimizer.nope=1"])
  with pytest.raises(errors.HwnasError, match="KEY=VALUE"):
    loader.override(c, ["steps"])
  with pytest.raises(errors.HwnasError):
    loader.override(c, ["train.steps=abc"])
  with pytest.raises(errors.HwnasError, match="no such file"):
    loader.load("missing.py:tiny")


@pytest.mark.slow
def test_steady_state_training_compiles_nothing():
  """50 sandwich steps of the tiny space, each with freshly sampled
  architectures (traced scalars that pick the slots' branches): after the
  first step's compilation no XLA compilation happens at all."""
  space = dataclasses.replace(space_lib.load("tiny"), resolutions=(16,))
  net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  tx = train_lib.make_optimizer(_config(space), 10)
  graphdef, state = train_lib.create_state(net, tx)
  step = train_lib.jit_train_step(graphdef, tx, resolution=16,
                                  label_smoothing=0.0, kd_ratio=0.5)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.standard_normal((2, 16, 16, 3)),
                                jnp.float32),
           "label": jnp.asarray([0, 1], jnp.int32)}
  compiles = []

  def listen(event, secs, **kwargs):
    del secs, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(event)

  jax.monitoring.register_event_duration_secs_listener(listen)
  seen, losses, after_warmup = set(), [], None
  try:
    for i in range(50):
      archs = train_lib.sandwich(rng, space, n_random=1, resolution=16)
      seen.update(arch_lib.to_string(a) for a in archs[2:])
      state, metrics = step(state, batch, jax.random.key(i),
                            model_lib.stack_arch_arrays(space, archs))
      losses.append(float(metrics["train/loss"]))
      if i == 0:
        after_warmup = len(compiles)
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert len(seen) > 40
  assert after_warmup >= 1 and len(compiles) == after_warmup, compiles
  assert step._cache_size() == 1             # pylint: disable=protected-access
  assert all(np.isfinite(losses))


@pytest.mark.slow
def test_switch_gradients_equal_plain_switch(space, monkeypatch):
  """The slots' custom-VJP switches (taken branch recomputed in the
  backward pass) give the gradients and BatchNorm statistics of a plain
  `lax.switch`."""
  space = dataclasses.replace(space, resolutions=(16,))
  net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  graphdef, params, stats = nnx.split(net, nnx.Param, nnx.BatchStat)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))

  def loss(p, arr):
    m = nnx.merge(graphdef, p, stats, copy=True)
    return jnp.sum(jnp.sin(m(x, arr, train=True))), nnx.state(
        m, nnx.BatchStat)

  archs = [arch_lib.largest(space), arch_lib.smallest(space),
           *_archs(space, 2, seed=7)]
  arrays = [model_lib.arch_arrays(space, dataclasses.replace(a,
                                                             resolution=16))
            for a in archs]
  results = {}
  for mode in ("plain", "recompute"):
    if mode == "plain":
      monkeypatch.setattr(blocks, "switch_vjp", lambda i, b, *operands:
                          jax.lax.switch(i, b, *operands))
    else:
      monkeypatch.undo()
    grad = jax.jit(jax.grad(loss, has_aux=True))
    results[mode] = [grad(params, arr) for arr in arrays]
  for want, got in zip(results["plain"], results["recompute"]):
    for u, v in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
