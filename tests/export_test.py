"""Tests for hwnas.export and `hwnas export` on the tiny space."""

import dataclasses
import functools
import json
import os
import pathlib

import jax
import numpy as np
import pytest
from flax import nnx

from hwnas import arch, errors, space, tflite
from hwnas.cli import main as cli_main
from hwnas import export
from hwnas.export import checks, load_exported
from hwnas.models import Network

FAST = dict(calibration_steps=8, eval_samples=24, bn_batches=2, batch_size=8,
            latency_repeats=5, latency_warmup=1)


def _tiny():
  return space.load("tiny")


def _with_activation(a, activation):
  """The arch with every active block of stage 2 using `activation`."""
  blocks = list(a.blocks)
  blocks[1] = tuple(dataclasses.replace(b, activation=activation)
                    for b in blocks[1])
  return dataclasses.replace(a, blocks=tuple(blocks))


@pytest.fixture(scope="module")
def relu_export(tmp_path_factory):
  """Edge-TPU-targeted arch (relu, no SE), random init, digits data."""
  s = _tiny()
  a = arch.smallest(s)
  assert all(b.activation == "relu" and not b.se
             for _, _, b in a.active_blocks())
  spec = arch.decode(s, a)
  model = Network(spec, rngs=nnx.Rngs(3), depthwise="lax")
  out = tmp_path_factory.mktemp("exp") / "relu"
  report = export.export_network(
      model, out, arch=a, source={"kind": "test", "description": "test"},
      options=export.ExportOptions(dataset="digits", **FAST))
  return model, a, out, report


@pytest.mark.slow
def test_export_writes_every_format(relu_export):
  _, a, out, report = relu_export
  names = {p.name for p in out.iterdir()}
  assert {"flax", "saved_model", "model_float.tflite", "model_int8.tflite",
          "netspec.json", "arch.json", "report.json", "report.md"} <= names
  assert arch.load(out / "arch.json") == a
  on_disk = json.loads((out / "report.json").read_text())
  assert on_disk["network"]["macs"] == report["network"]["macs"] > 0
  assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_loader_round_trip(relu_export):
  model, _, out, _ = relu_export
  loaded, spec = load_exported(out, depthwise="lax")  # as exported
  assert spec == model.spec
  x = np.random.default_rng(0).standard_normal(
      (3, spec.resolution, spec.resolution, 3)).astype(np.float32)
  np.testing.assert_array_equal(checks.predict(loaded, x),
                                checks.predict(model, x))


@pytest.mark.slow
def test_float_tflite_matches_flax(relu_export):
  model, _, out, report = relu_export
  check = report["checks"]["float_tflite_vs_flax"]
  assert check["passed"] and check["num_samples"] == FAST["eval_samples"]
  x = np.random.default_rng(1).standard_normal(
      (4,) + (model.spec.resolution,) * 2 + (3,)).astype(np.float32)
  got = tflite.Runner((out / "model_float.tflite").read_bytes()).run(x)
  np.testing.assert_allclose(got, checks.predict(model, x), atol=1e-4,
                             rtol=1e-3)


@pytest.mark.slow
def test_int8_is_edgetpu_clean(relu_export):
  _, _, out, report = relu_export
  int8 = (out / "model_int8.tflite").read_bytes()
  assert not tflite.float_ops(int8)
  e = report["edgetpu"]
  assert e["edgetpu_ready"] and e["ops"]["all_mapped"]
  assert e["ops"]["unmappable"] == [] and e["float_ops"] == []
  assert "DEPTHWISE_CONV_2D" in tflite.op_list(int8)
  assert str(out / "model_int8.tflite") in e["compile_command"]


@pytest.mark.slow
def test_report_has_accuracy_latency_and_ops(relu_export):
  _, _, out, report = relu_export
  acc = report["checks"]["accuracy"]
  assert acc["split"] == "test" and acc["num_samples"] == FAST["eval_samples"]
  for k in ("flax", "tflite_float", "tflite_int8"):
    assert 0.0 <= acc[k] <= 1.0
  assert acc["int8_drop"] == pytest.approx(acc["tflite_float"] -
                                           acc["tflite_int8"])
  # Float TFLite computes the same function, so the same accuracy.
  assert acc["tflite_float"] == acc["flax"]
  measured = report["latency"]["measured"]
  assert measured["tflite int8"]["median_ms"] > 0
  text = (out / "report.md").read_text()
  for needle in ("MACs", "int8 drop", "CONV_2D", "Edge TPU", "flax/",
                 arch.to_string(relu_export[1])):
    assert needle in text


def _table(spec, path, layers=None):
  """A small measured-looking table covering `layers` (default: all)."""
  from hwnas import latency
  header = latency.make_header(
      device="test-cpu", backend="litert", runtime="litert",
      runtime_version="2.3.0", precision="int8", batch_size=1, threads=1,
      warmup=1, repeats=5, spaces=["tiny"], provenance={"kind": "measured"})
  layers = spec.layers if layers is None else layers
  table = latency.new_table(header, [latency.Entry(l, 0.01 * (i + 1))
                                     for i, l in enumerate(layers)], path)
  table.save()
  return table


FAKE_COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198

Model compiled successfully in 50 ms.

Input model: model_int8.tflite
Input size: 20.00KiB
Output model: model_int8_edgetpu.tflite
Output size: 30.00KiB
On-chip memory used for caching model parameters: 10.00KiB
On-chip memory remaining for caching model parameters: 7.70MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 11
Operation log: model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU.
Number of operations that will run on Edge TPU: 4
Number of operations that will run on CPU: 7

Operator                       Count      Status

CONV_2D                        4          Mapped to Edge TPU
HARD_SWISH                     2          Operation not supported
"""


def _fake_compiler(bin_dir: pathlib.Path, text: str) -> None:
  """An executable standing in for Google's binary (not our code)."""
  bin_dir.mkdir()
  (bin_dir / "log.txt").write_text(text)
  exe = bin_dir / "edgetpu_compiler"
  exe.write_text(f"#!/bin/sh\ncat '{bin_dir / 'log.txt'}'\n")
  exe.chmod(0o755)


@pytest.mark.slow
def test_hard_swish_export_reports_fallback(tmp_path, monkeypatch):
  _fake_compiler(tmp_path / "bin", FAKE_COMPILER_LOG)
  monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
  s = _tiny()
  a = _with_activation(arch.smallest(s), "hswish")
  arch.validate(s, a)
  spec = arch.decode(s, a)
  table = _table(spec, tmp_path / "t.json")
  report = export.export_spec(
      spec, tmp_path / "hs", arch=a, table=str(tmp_path / "t.json"),
      options=export.ExportOptions(formats=("tflite-int8",), **FAST))
  pred = report["latency"]["predicted"]
  assert pred["ms"] == pytest.approx(table.predict(spec))
  assert pred["provenance"] == table.describe()
  comp = report["latency"]["comparison"]
  assert comp["model"] == "tflite int8"  # the table's precision
  assert comp["ratio"] == pytest.approx(
      report["latency"]["measured"]["tflite int8"]["median_ms"] / pred["ms"])
  assert "test-cpu" in (tmp_path / "hs" / "report.md").read_text()
  e = report["edgetpu"]
  assert not e["edgetpu_ready"]
  assert e["ops"]["unmappable"] == ["HARD_SWISH"]
  seq = report["operators"]["tflite int8"]["sequence"]
  assert e["ops"]["first_fallback"] == seq.index("HARD_SWISH")
  assert e["ops"]["ops_on_cpu"] == len(seq) - seq.index("HARD_SWISH")
  # The cost model reads the same operator table: it cuts at the same op.
  from hwnas.edgetpu import layer_cost  # pylint: disable=g-import-not-at-top
  cut = layer_cost.first_unmapped(spec)
  assert layer_cost.unsupported_op(spec.layers[cut]) == seq[
      e["ops"]["first_fallback"]]
  assert "HARD_SWISH" in (tmp_path / "hs" / "report.md").read_text()
  assert report["int8_calibration"].endswith("(no dataset)")
  comp = e["compiler"]
  assert comp["result"]["all_mapped"] is False
  assert comp["result"]["ops_on_cpu"] == 7
  log = tmp_path / "hs" / comp["log"]
  assert log.read_text() == FAKE_COMPILER_LOG
  assert "edgetpu_compiler 16.0.384591198" in (tmp_path / "hs" /
                                                "report.md").read_text()


def test_recalibrate_bn_averages_batch_statistics():
  s = _tiny()
  spec = arch.decode(s, arch.smallest(s))
  model = Network(spec, rngs=nnx.Rngs(0), depthwise="shift")
  rng = np.random.default_rng(0)
  batches = [rng.standard_normal((4, spec.resolution, spec.resolution, 3)
                                 ).astype(np.float32) + 2.0 for _ in range(3)]
  params_before = jax.tree.leaves(nnx.state(model, nnx.Param))
  assert checks.recalibrate_bn(model, batches) == 3
  stem = model.layers[0].body
  want_mean = np.mean([np.asarray(stem.conv(b)).mean(axis=(0, 1, 2))
                       for b in batches], axis=0)
  want_var = np.mean([np.asarray(stem.conv(b)).var(axis=(0, 1, 2))
                      for b in batches], axis=0)
  np.testing.assert_allclose(stem.bn.mean[...], want_mean, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(stem.bn.var[...], want_var, rtol=1e-4,
                             atol=1e-5)
  assert stem.bn.momentum == pytest.approx(0.9)  # restored
  for before, after in zip(params_before,
                           jax.tree.leaves(nnx.state(model, nnx.Param))):
    np.testing.assert_array_equal(before, after)


def test_agreement_tolerance():
  ref = np.array([[1.0, -2.0], [0.5, 0.1]])
  assert checks.agreement(ref, ref + 1e-4).passed
  bad = checks.agreement(ref, ref + np.array([[0.0, 0.0], [0.0, 0.5]]))
  assert not bad.passed and bad.top1_agreement == 0.5


def _leftovers(parent: pathlib.Path):
  return sorted(p.name for p in parent.iterdir())


def test_cli_bad_arch_writes_nothing(tmp_path, capsys):
  s = _tiny()
  d = arch.to_dict(arch.smallest(s))
  d["widths"] = [999, d["widths"][1]]
  (tmp_path / "bad.json").write_text(json.dumps(d))
  out = tmp_path / "out"
  code = cli_main(["export", "--arch", str(tmp_path / "bad.json"), "--out",
                   str(out)])
  assert code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error:") and "widths[0]" in err
  assert len(err.splitlines()) == 1
  assert _leftovers(tmp_path) == ["bad.json"]


def test_cli_missing_weights_writes_nothing(tmp_path, capsys):
  s = _tiny()
  (tmp_path / "a.json").write_text(arch.to_json(arch.smallest(s)))
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--weights",
                   str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
  assert code == 2
  assert "nope" in capsys.readouterr().err
  assert _leftovers(tmp_path) == ["a.json"]


def test_cli_corrupt_weights_writes_nothing(tmp_path, capsys):
  s = _tiny()
  (tmp_path / "a.json").write_text(arch.to_json(arch.smallest(s)))
  bad = tmp_path / "w" / "flax"
  bad.mkdir(parents=True)
  (bad / "_METADATA").write_text("{not json")
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--weights",
                   str(tmp_path / "w"), "--out", str(tmp_path / "out")])
  assert code == 2
  err = capsys.readouterr().err.strip()
  assert "cannot restore" in err and len(err.splitlines()) == 1
  assert _leftovers(tmp_path) == ["a.json", "w"]


def test_table_without_the_arch_writes_nothing(tmp_path):
  s = _tiny()
  spec = arch.decode(s, arch.smallest(s))
  _table(spec, tmp_path / "t.json", layers=spec.layers[:2])
  with pytest.raises(errors.HwnasError, match="missing"):
    export.export_spec(spec, tmp_path / "out", table=tmp_path / "t.json",
                       options=export.ExportOptions(**FAST))
  assert _leftovers(tmp_path) == ["t.json"]


def test_existing_out_is_refused(tmp_path):
  (tmp_path / "out").mkdir()
  with pytest.raises(errors.HwnasError, match="already exists"):
    export.check_out_dir(tmp_path / "out", overwrite=False)


def test_bad_formats():
  with pytest.raises(errors.HwnasError, match="allowed"):
    export.parse_formats("tflite,onnx")
  assert export.parse_formats("flax, tflite,flax") == ("flax", "tflite")


def test_supernet_export_rejects_foreign_arch(tmp_path):
  from hwnas.supernet.model import Supernet
  s = _tiny()
  sn = Supernet(s, rngs=nnx.Rngs(0))
  a = arch.smallest(s)
  bad = dataclasses.replace(a, depths=(a.depths[0], 7))
  with pytest.raises(errors.SpaceError, match="depths"):
    export.export_supernet(sn, bad, tmp_path / "out",
                           options=export.ExportOptions(**FAST))
  assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_cli_exports_arch_with_random_weights(tmp_path, capsys):
  s = _tiny()
  (tmp_path / "a.json").write_text(arch.to_json(arch.smallest(s)))
  out = tmp_path / "out"
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--out",
                   str(out), "--formats", "tflite", "--eval-samples", "4",
                   "--latency-repeats", "3"])
  assert code == 0
  text = capsys.readouterr().out
  assert "float TFLite vs Flax" in text and "PASS" in text
  assert sorted(p.name for p in out.iterdir()) == [
      "arch.json", "model_float.tflite", "netspec.json", "report.json",
      "report.md"]
  report = json.loads((out / "report.json").read_text())
  assert report["edgetpu"] is None  # no int8 model, no Edge TPU verdict
  assert "random initialisation" in report["source"]["description"]


# ------------------------------------------- from a supernet workdir --

@pytest.fixture(scope="module")
def supernet_workdir(tmp_path_factory):
  """A `hwnas supernet train`-style workdir (config.json + Orbax checkpoint)
  written with the supernet package's own functions, without training;
  BatchNorm statistics are randomised so that they matter."""
  from hwnas.configs import supernet as supernet_config
  from hwnas.supernet import checkpoint, loop
  s = _tiny()
  config = supernet_config.get_config("tiny")
  graphdef, state, _ = loop.build(s, config, s.num_classes)
  rng = np.random.default_rng(7)
  state = {**state, "stats": jax.tree.map(
      lambda v: np.asarray(rng.uniform(0.5, 1.5, np.shape(v)), np.float32),
      state["stats"])}
  workdir = tmp_path_factory.mktemp("supernet")
  mgr = checkpoint.manager(workdir)
  checkpoint.save(mgr, 1, state)
  mgr.close()
  checkpoint.write_config(workdir, config, {
      "space_path": s.path, "space": s.name, "num_classes": s.num_classes,
      "dataset": {"name": "digits"}})
  return workdir, graphdef, state


@pytest.mark.slow
def test_export_arch_from_supernet_workdir(supernet_workdir, tmp_path):
  from hwnas.supernet import model as supernet_model
  from hwnas.supernet import train as supernet_train
  workdir, graphdef, state = supernet_workdir
  s = _tiny()
  a = arch.sample(np.random.default_rng(11), s)
  (tmp_path / "best.json").write_text(json.dumps({"arch": arch.to_dict(a)}))
  out = tmp_path / "out"
  report = export.export_arch(
      tmp_path / "best.json", workdir, out, options=export.ExportOptions(
          formats=("flax", "tflite"), **{**FAST, "bn_batches": 0}))
  assert report["source"]["kind"] == "supernet"
  assert report["checks"]["accuracy"]["dataset"] == "digits"
  assert report["checks"]["float_tflite_vs_flax"]["passed"]
  loaded, spec = load_exported(out, depthwise="lax")
  assert spec == arch.decode(s, a)
  # The supernet itself (masked, all shapes at their largest) run with the
  # architecture's arrays computes the same function.
  forward = jax.jit(lambda st, x, ar: supernet_train.merge(graphdef, st)(
      x, ar, train=False))
  x = np.random.default_rng(3).standard_normal(
      (2, a.resolution, a.resolution, 3)).astype(np.float32)
  arrays = {k: np.asarray(v) for k, v in
            supernet_model.arch_arrays(s, a).items()}
  want = np.asarray(forward(state, x, arrays))
  np.testing.assert_allclose(checks.predict(loaded, x), want, atol=1e-4,
                             rtol=1e-4)
  tfl = tflite.Runner((out / "model_float.tflite").read_bytes()).run(x)
  np.testing.assert_allclose(tfl, want, atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_recalibration_matches_supernet_recalibrate(supernet_workdir):
  """Recalibrating the exported network equals recalibrating the supernet
  for the architecture and then extracting it."""
  from hwnas.supernet import extract
  from hwnas.supernet import model as supernet_model
  from hwnas.supernet import train as supernet_train
  _, graphdef, state = supernet_workdir
  s = _tiny()
  a = arch.smallest(s)
  rng = np.random.default_rng(0)
  images = rng.standard_normal((2, 4, a.resolution, a.resolution, 3)
                               ).astype(np.float32)
  ours = extract.subnet(supernet_train.merge(graphdef, state), a,
                        depthwise="lax")
  checks.recalibrate_bn(ours, list(images))
  arrays = {k: np.asarray(v) for k, v in
            supernet_model.arch_arrays(s, a).items()}
  theirs_state = jax.jit(lambda st, im, ar: supernet_train.recalibrate(
      st, im, ar, graphdef=graphdef))(state, images, arrays)
  theirs = extract.subnet(supernet_train.merge(graphdef, theirs_state), a,
                          depthwise="lax")
  for x, y in zip(jax.tree.leaves(nnx.state(ours, nnx.BatchStat)),
                  jax.tree.leaves(nnx.state(theirs, nnx.BatchStat))):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_export_arch_outside_supernet_space_writes_nothing(
    supernet_workdir, tmp_path):
  workdir, _, _ = supernet_workdir
  a = arch.smallest(_tiny())
  bad = dataclasses.replace(a, resolution=40)
  with pytest.raises(errors.SpaceError, match="not in the supernet's space"):
    export.export_arch(bad, workdir, tmp_path / "out",
                       options=export.ExportOptions(**FAST))
  assert _leftovers(tmp_path) == []


def test_export_arch_missing_or_corrupt_checkpoint(supernet_workdir, tmp_path,
                                                  capsys):
  s = _tiny()
  (tmp_path / "a.json").write_text(arch.to_json(arch.smallest(s)))
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--supernet",
                   str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
  assert code == 2 and "nope" in capsys.readouterr().err
  wd = tmp_path / "wd"
  (wd / "checkpoints" / "1").mkdir(parents=True)
  (wd / "checkpoints" / "1" / "_CHECKPOINT_METADATA").write_text("garbage")
  (wd / "config.json").write_text(
      (supernet_workdir[0] / "config.json").read_text())
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--supernet",
                   str(wd), "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1
  assert "checkpoint" in err
  (wd / "config.json").write_text(json.dumps({
      "config": {"space": "tiny"}, "space": "tiny", "num_classes": 10}))
  code = cli_main(["export", "--arch", str(tmp_path / "a.json"), "--supernet",
                   str(wd), "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err.strip()
  assert code == 2 and "incomplete" in err and len(err.splitlines()) == 1
  assert _leftovers(tmp_path) == ["a.json", "wd"]


# ------------------------------------------------------------ int8 gate --

def test_int8_gate_grades_agreement_and_error_steps():
  ref = np.array([[1.0, -2.0, 0.0], [0.5, 0.1, 0.0], [0.0, 0.2, 0.4]])
  q = ((1 / 255, -128), (0.01, 5))
  same = checks.int8_gate(ref, ref + 0.004, input_quantization=q[0],
                          output_quantization=q[1], min_agreement=1.0)
  assert same.passed and same.ok and same.status == "pass"
  assert same.max_error_steps == pytest.approx(0.4)
  assert same.output_zero_point == 5 and same.input_scale == 1 / 255
  flipped = ref.copy()
  flipped[1] = [0.0, 0.5, 0.0]          # one of three top-1 classes changes
  bad = checks.int8_gate(ref, flipped, input_quantization=q[0],
                         output_quantization=q[1], min_agreement=0.98)
  assert bad.top1_agreement == pytest.approx(2 / 3) and not bad.ok
  assert bad.max_error_steps == pytest.approx(50.0)
  assert checks.int8_gate(ref, flipped, input_quantization=q[0],
                          output_quantization=q[1], allowed=True).ok
  assert checks.int8_gate(ref, flipped, input_quantization=q[0],
                          output_quantization=q[1], enforced=False).ok
  from hwnas.cli import export as cli_export
  assert cli_export._MIN_AGREEMENT == checks.INT8_MIN_AGREEMENT


def _linear_probe(model):
  """`model` with BatchNorm statistics of digits training images and its
  classifier fit by ridge regression on their features (random features,
  a trained classifier: clear class margins, unlike the near-ties of
  random logits)."""
  from hwnas import data
  x, y = checks.take_samples(data.load("digits"), "train", 400,
                             resolution=model.spec.resolution, seed=0,
                             shuffle=True)
  checks.recalibrate_bn(model, [x[i:i + 100] for i in range(0, 400, 100)])
  feats = jax.jit(lambda m, x: functools.reduce(
      lambda h, layer: layer(h, False), m.layers[:-1], x))(model, x)
  feats = np.asarray(feats).reshape(len(x), -1)
  a = np.concatenate([feats, np.ones((len(x), 1))], 1)
  gram = a.T @ a
  ridge = np.trace(gram) / len(gram) * np.eye(len(gram))  # small weights
  w = np.linalg.solve(gram + ridge, a.T @ np.eye(10)[y]).astype(np.float32)
  fc = model.layers[-1].linear
  fc.kernel.value, fc.bias.value = w[:-1], w[-1]
  return model


@pytest.mark.slow
def test_cli_int8_gate_passes_fails_and_is_accepted(tmp_path, capsys):
  """A network whose int8 model keeps its answers exits 0; the same network
  with every logit shifted by 1000 (the output quantisation step grows to
  ~4 and erases the differences between classes) exits 1 after writing
  everything, and 0 with --allow-int8-drop."""
  s = _tiny()
  a = arch.smallest(s)
  spec = arch.decode(s, dataclasses.replace(a, resolution=24))
  a = dataclasses.replace(a, resolution=24)
  (tmp_path / "a.json").write_text(arch.to_json(a))
  good = _linear_probe(Network(spec, rngs=nnx.Rngs(0), depthwise="lax"))
  bad = _linear_probe(Network(spec, rngs=nnx.Rngs(0), depthwise="lax"))
  bad.layers[-1].linear.bias.value = bad.layers[-1].linear.bias.value + 1e3
  for name, m in (("good", good), ("bad", bad)):
    export.export_network(m, tmp_path / f"w_{name}", options=(
        export.ExportOptions(formats=("flax",), **FAST)))
  common = ["export", "--arch", str(tmp_path / "a.json"), "--formats",
            "tflite-int8", "--dataset", "digits", "--eval-samples", "64",
            "--calibration-steps", "64", "--bn-batches", "0",
            "--latency-repeats", "2", "--no-compile"]
  outs = {}
  for name, weights, extra in (("good", "w_good", []), ("bad", "w_bad", []),
                               ("accepted", "w_bad", ["--allow-int8-drop"])):
    out = tmp_path / name
    rc = cli_main(common + ["--weights", str(tmp_path / weights), "--out",
                            str(out)] + extra)
    outs[name] = (rc, json.loads((out / "report.json").read_text()),
                  (out / "report.md").read_text(), capsys.readouterr())
  rc, report, md, _ = outs["good"]
  gate = report["checks"]["int8_gate"]
  assert rc == 0 and gate["enforced"] and gate["passed"]
  assert gate["top1_agreement"] >= checks.INT8_MIN_AGREEMENT
  q = report["input"]["int8_quantization"]
  assert q["input"]["scale"] > 0 and -128 <= q["input"]["zero_point"] <= 127
  assert "int8 gate" in md and "**pass**" in md
  rc, report, md, cap = outs["bad"]
  gate = report["checks"]["int8_gate"]
  assert rc == 1 and not gate["passed"] and gate["status"] == "FAIL"
  assert gate["output_scale"] > 1.0     # the step that erased the classes
  assert "**FAIL**" in md and "--allow-int8-drop" in cap.err
  assert (tmp_path / "bad" / "model_int8.tflite").is_file()
  rc, report, md, _ = outs["accepted"]
  assert rc == 0 and report["checks"]["int8_gate"]["allowed"]
  assert "accepted (--allow-int8-drop)" in md


def test_export_does_not_modify_the_callers_model(tmp_path):
  from hwnas.models import layers as layers_lib
  from hwnas.export import writer
  s = _tiny()
  model = Network(arch.decode(s, arch.smallest(s)), rngs=nnx.Rngs(0),
                  depthwise="shift")
  copy = writer.with_lax_depthwise(model)
  impls = lambda m: {x.impl for _, x in m.iter_modules()
                     if isinstance(x, layers_lib.DepthwiseConv)}
  assert impls(model) == {"shift"} and impls(copy) == {"lax"}
  x = np.random.default_rng(0).uniform(0, 1, (2, 24, 24, 3)).astype(
      np.float32)
  np.testing.assert_allclose(checks.predict(copy, x),
                             checks.predict(model, x), atol=1e-5)
