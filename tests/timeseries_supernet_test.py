"""1-D networks: the depthwise shift-add on 1 x k kernels, the supernet's
subnet equal to the standalone 1-D network, and `supernet train` / `train`
on time-series data (and their refusal of the wrong kind of data)."""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas import space as space_lib
from hwnas.cli import main as cli_main
from hwnas.models import ops
from hwnas.models.standalone import Network
from hwnas.supernet import extract
from hwnas.supernet import model as model_lib

MICRO = "tests/testdata/micro1d.yaml"


@pytest.mark.parametrize("length,kernel,stride", [
    (16, 3, 1), (15, 7, 2), (4, 9, 1), (1, 5, 2)])
def test_1d_depthwise_shift_equals_lax(length, kernel, stride):
  """[B, 1, T, C] with a [1, k, 1, C] kernel: the shift-add (and its
  hand-written backward pass) equals XLA's grouped convolution."""
  kx, kk = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (2, 1, length, 4))
  w = jax.random.normal(kk, (1, kernel, 1, 4))
  a = ops.depthwise_conv(x, w, stride, impl="lax")
  b = ops.depthwise_conv(x, w, stride, impl="shift")
  assert a.shape == b.shape == (2, 1, -(-length // stride), 4)
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  f = lambda impl: jax.grad(lambda x, w: jnp.sum(jnp.sin(
      ops.depthwise_conv(x, w, stride, impl=impl))), (0, 1))(x, w)
  for ga, gb in zip(f("lax"), f("shift")):
    np.testing.assert_allclose(ga, gb, atol=1e-4, rtol=1e-4)


def test_1d_elastic_depthwise_is_the_centre_taps():
  x = jax.random.normal(jax.random.key(1), (2, 1, 12, 4))
  w = jax.random.normal(jax.random.key(2), (1, 7, 1, 4))
  for k in (3, 5, 7):
    lo = (7 - k) // 2
    want = ops.depthwise_conv(x, w[:, lo:lo + k], 1, impl="lax")
    for impl in ("shift", "lax"):
      got = ops.elastic_depthwise_conv(x, w, jnp.asarray(k), (3, 5, 7), 1,
                                       impl=impl)
      np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_standalone_1d_network_has_1xk_kernels_and_takes_windows(
    fast_compile):
  space = space_lib.load(MICRO)
  spec = arch_lib.decode(space, arch_lib.largest(space))
  net = Network(spec, rngs=nnx.Rngs(0))
  assert net.layers[0].body.conv.kernel[...].shape == (1, 5, 3, 8)
  x = jnp.ones((2, 24, 3))
  np.testing.assert_array_equal(net(x), net(x[:, None]))
  from hwnas import counting  # pylint: disable=g-import-not-at-top
  from hwnas.models.standalone import num_params  # pylint: disable=g-import-not-at-top
  assert num_params(net) == counting.count(spec).trainable_params


@pytest.mark.slow
@pytest.mark.parametrize("kernel_transform", [False, True])
def test_subnet_equals_supernet_1d(kernel_transform, fast_compile):
  space = space_lib.load(MICRO)
  net = model_lib.Supernet(space, rngs=nnx.Rngs(1),
                           kernel_transform=kernel_transform)
  rng = np.random.default_rng(0)
  nnx.update(net, jax.tree.map(
      lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape) if v.ndim else v,
                            jnp.float32), nnx.state(net, nnx.BatchStat)))
  if kernel_transform:   # trained (here: random) transforms
    block = net.slots[0].blocks[0]
    assert block.dw.transforms[0][...].shape == (3, 3)  # k taps, not k*k
    for blk in (b for slot in net.slots for b in slot.blocks):
      for conv in (blk.expand, blk.dw):
        for t in (conv.transforms or ()) if conv is not None else ():
          t.set_value(jnp.asarray(rng.normal(0, 0.3, t[...].shape),
                                  jnp.float32))
  graphdef, params, stats = nnx.split(net, nnx.Param, nnx.BatchStat)
  forward = jax.jit(lambda x, a: nnx.merge(graphdef, params, stats)(
      x, a, train=False))
  x = jnp.asarray(rng.standard_normal((2, 24, 3)), jnp.float32)  # [B, T, C]
  archs = [arch_lib.largest(space), arch_lib.smallest(space)] + [
      arch_lib.sample(np.random.default_rng(i), space) for i in range(4)]
  for a in archs:
    a = dataclasses.replace(a, resolution=24)
    want = forward(x, model_lib.arch_arrays(space, a))
    sub = extract.subnet(net, a)
    got = sub(x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                               err_msg=arch_lib.to_string(a))
  assert forward._cache_size() == 1          # pylint: disable=protected-access


def _npz_folder(root, t=24, c=3, classes=3, seed=0):
  """Learnable windows (class = which channel carries a sine) split by
  subject: train subjects 1-4, test 5-6."""
  rng = np.random.default_rng(seed)
  root.mkdir()
  for split, subjects in (("train", [1, 2, 3, 4]), ("test", [5, 6])):
    n = 6 * len(subjects)
    y = np.arange(n) % classes
    x = rng.normal(0, 0.3, (n, t, c)).astype(np.float32)
    x[np.arange(n), :, y % c] += np.sin(np.arange(t) / 2.0)
    np.savez(root / f"{split}.npz", x=x, y=y,
             subject=np.repeat(subjects, 6))
  return f"folder:{root}"


def test_supernet_train_refuses_the_wrong_kind_of_data(tmp_path, capsys):
  data = _npz_folder(tmp_path / "win")
  assert cli_main(["supernet", "train", "--space", "tiny", "--dataset", data,
                   "--workdir", str(tmp_path / "a"), "--steps", "1",
                   "--no-progress"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: --dataset folder:") and "\n" not in err
  assert "time-series windows [24, 3]" in err and "tiny.yaml takes images" \
      in err
  assert not (tmp_path / "a").exists()
  assert cli_main(["supernet", "train", "--space", MICRO, "--dataset",
                   "digits", "--workdir", str(tmp_path / "b"), "--steps",
                   "1", "--no-progress"]) == 2
  err = capsys.readouterr().err.strip()
  assert "--dataset digits: images" in err and "\n" not in err
  assert "micro1d.yaml takes time-series windows" in err


@pytest.mark.slow
def test_windows_through_train_search_export(tmp_path, capsys,
                                             fast_compile):
  """A 1-D supernet trains on windows split by subject, `search` runs on
  it with an estimated Edge TPU table of the space, `export` writes float
  and full-int8 TFLite of the best architecture that run in LiteRT (int8
  ops only: CONV_2D / DEPTHWISE_CONV_2D on a [1, 1, T, C] input), and a
  standalone 1-D network trains with `hwnas train`."""
  from hwnas import tflite  # pylint: disable=g-import-not-at-top
  data = _npz_folder(tmp_path / "win")
  micro = tmp_path / "micro1d.yaml"   # one window length: one compile
  micro.write_text(pathlib.Path(MICRO).read_text().replace(
      "lengths: [16, 24]", "lengths: [24]"))
  wd = tmp_path / "sn"
  assert cli_main([
      "supernet", "train", "--space", str(micro), "--dataset", data,
      "--workdir", str(wd), "--steps", "2", "--no-progress",
      "--set", "train.batch_size=8", "--set", "eval.bn_batches=1",
      "--set", "train.n_random=0"]) == 0
  rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text()
          .splitlines()]
  assert 0.0 <= rows[-1]["eval/top1_largest"] <= 1.0

  table = tmp_path / "est.json"
  assert cli_main(["table", "measure", "--space", str(micro), "--backend",
                   "edgetpu-model", "--link", "usb3", "--out", str(table),
                   "--no-progress"]) == 0
  assert '"ibn-t12x8-' in table.read_text()   # 1-D keys
  assert cli_main(["search", "--space", str(micro), "--table", str(table),
                   "--target-ms", "100", "--supernet", str(wd),
                   "--budget", "3", "--population", "3",
                   "--workdir", str(tmp_path / "search"),
                   "--no-progress"]) == 0
  best = tmp_path / "search" / "best.json"
  assert json.loads(best.read_text())["arch"]["resolution"] == 24
  assert (tmp_path / "search" / "pareto.png").is_file()

  out = tmp_path / "export"
  assert cli_main(["export", "--arch", str(best), "--supernet", str(wd),
                   "--out", str(out), "--calibration-steps", "8",
                   "--eval-samples", "12", "--bn-batches", "1",
                   "--batch-size", "8", "--latency-repeats", "3",
                   "--no-compile", "--allow-int8-drop"]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["input"]["shape"] == [1, 1, 24, 3]
  int8 = (out / "model_int8.tflite").read_bytes()
  assert not tflite.float_ops(int8)
  ops = set(tflite.op_list(int8))
  assert "CONV_2D" in ops and not ops & {"RESHAPE", "EXPAND_DIMS",
                                         "SQUEEZE"}
  assert report["checks"]["float_tflite_vs_flax"]["passed"]
  acc = report["checks"]["accuracy"]
  assert acc["split"] == "test" and acc["num_samples"] == 12
  x = np.random.default_rng(0).standard_normal((2, 1, 24, 3)).astype(
      np.float32)
  assert tflite.Runner(int8).run(x).shape == (2, 3)

  arch = tmp_path / "a.json"
  space = space_lib.load(MICRO)
  arch.write_text(arch_lib.to_json(dataclasses.replace(
      arch_lib.smallest(space), resolution=16)))
  trained = tmp_path / "train"
  capsys.readouterr()
  assert cli_main(["train", "--arch", str(arch), "--space", MICRO,
                   "--dataset", data, "--workdir", str(trained), "--steps",
                   "2", "--no-progress", "--set", "train.batch_size=8"]) == 0
  assert "test accuracy" in capsys.readouterr().out
  assert (trained / "result.json").is_file()


@pytest.mark.parametrize("what", ["ragged", "rank", "subject"])
def test_bad_windows_stop_supernet_train_in_one_line(tmp_path, capsys,
                                                      what):
  """Loader errors reach the user as one line naming the file and shape,
  before anything is written: a ragged window, an array of the wrong rank,
  a subject in two splits."""
  root = tmp_path / "win"
  data = _npz_folder(root)
  if what == "ragged":
    (root / "train.npz").unlink()
    (root / "test.npz").unlink()
    for i, t in enumerate((24, 24, 23)):
      d = root / "train" / ("a" if i % 2 else "b")
      d.mkdir(parents=True, exist_ok=True)
      np.save(d / f"{i}.npy", np.zeros((t, 3), np.float32))
    needle = "2.npy: window of shape (23, 3)"
  elif what == "rank":
    np.savez(root / "test.npz", x=np.zeros((6, 24), np.float32),
             y=np.zeros(6, int))
    needle = "test.npz: x has shape (6, 24)"
  else:
    with np.load(root / "test.npz") as z:
      arrays = dict(z)
    arrays["subject"] = np.repeat([4, 5], 6)
    np.savez(root / "test.npz", **arrays)
    needle = "subject 4 is in both 'train' and 'test'"
  assert cli_main(["supernet", "train", "--space", MICRO, "--dataset", data,
                   "--workdir", str(tmp_path / "sn"), "--steps", "1",
                   "--no-progress"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err
  assert needle in err, err
  assert not (tmp_path / "sn").exists()


@pytest.mark.slow
def test_xla_and_litert_time_1d_layers(fast_compile):
  """`table measure`'s backends build a 1-D layer on a [1, 1, T, C] input
  (xla: jitted; litert: converted to TFLite) and time it."""
  from hwnas.latency import backends  # pylint: disable=g-import-not-at-top
  from hwnas.netspec import Layer  # pylint: disable=g-import-not-at-top
  layer = Layer("ibn", 24, 8, 8, mid_channels=16, kernel=7, residual=True,
                activation="relu", dims=1)
  assert backends.input_shape(layer, 1) == (1, 1, 24, 8)
  for b in (backends.XlaBackend(timer="cpu"),
            backends.LiteRTBackend(timer="cpu")):
    t = b.time_layer(layer, batch_size=1, warmup=1, repeats=3)
    assert t.latency_ms > 0 and t.count == 3
