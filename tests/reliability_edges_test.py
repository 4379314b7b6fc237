"""The third hardening pass: nothing overwritten, no nonsense accepted.

Every case here was a silent overwrite, a silent wrong answer, a traceback
or an unclear message before. Each bad input must exit with status 2 and
exactly one `error:` line (no traceback, no usage block) and leave existing
files byte-identical (`fails` of reliability_test). They run in-process
(`hwnas.cli.main`); the resume cases in reliability_resume_test.py.
"""

import json
import pathlib
import time

import numpy as np
import pytest
import yaml

from hwnas import arch as arch_lib
from hwnas import resources
from hwnas import space as space_lib
from hwnas.cli import main

from reliability_test import TINY_TABLE, fails  # pylint: disable=g-bad-import-order

TINY_SPACE = resources.search_spaces_dir() / "tiny.yaml"
GOOD_OFA = ("expanded_conv-input:12x12x16-output:12x12x16-expand:2-kernel:3-"
            "stride:1-idskip:1")


def _file(tmp_path, name, text):
  p = tmp_path / name
  p.write_text(text)
  return p


def _arch(tmp_path, name="a.json", **change):
  d = json.loads(arch_lib.to_json(arch_lib.smallest(space_lib.load("tiny"))))
  d.update(change)
  return _file(tmp_path, name, json.dumps(d))


def _space_text(**top):
  d = yaml.safe_load(TINY_SPACE.read_text())
  d.update(top)
  return yaml.safe_dump(d)


# ------------------------------------------- finished work overwritten --


def test_outputs_are_never_overwritten_without_overwrite(tmp_path, capsys):
  table = tmp_path / "existing_table.json"
  table.write_bytes(TINY_TABLE.read_bytes())
  fails(capsys, ["table", "export-csv", "xla/tiny", "--out", table],
        "exists; pass --overwrite", keep=[table])
  best = tmp_path / "best.json"
  best.write_text('{"precious": true}\n')
  fails(capsys, ["arch", "sample", "--space", "tiny", "--out", best],
        "exists; pass --overwrite", keep=[best])
  assert main(["arch", "sample", "--space", "tiny", "--out", str(best),
               "--overwrite"]) == 0
  capsys.readouterr()
  assert arch_lib.load(best).space == "tiny"
  # A trained predictor's directory, refused before any training.
  pred = tmp_path / "pred"
  pred.mkdir()
  (pred / "predictor.json").write_text("{}\n")
  hist = tmp_path / "h.jsonl"
  hist.write_text("")
  t0 = time.perf_counter()
  fails(capsys, ["predictor", "train", "--space", "tiny", "--history", hist,
                 "--out", pred], "pass --overwrite",
        keep=[pred / "predictor.json"])
  assert time.perf_counter() - t0 < 5


def test_overwrite_that_would_write_nothing_useful_fails(tmp_path, capsys):
  out = tmp_path / "existing.json"
  out.write_bytes(TINY_TABLE.read_bytes())
  cases = {
      "allbad": "expanded_conv-input:12-output:12x12x8-expand:2-kernel:3-"
                "stride:1: {mean: 0.5}\n",
      "onedim": "expanded_conv-input:12-output:12-expand:2-kernel:3-"
                "stride:1: {mean: 0.5}\n",
      "zero": "expanded_conv-input:0x0x3-output:0x0x3-expand:2-kernel:3-"
              "stride:1: {mean: 0.5}\n",
  }
  for name, text in cases.items():
    y = _file(tmp_path, f"ofa_{name}.yaml", text)
    fails(capsys, ["table", "import", "--from", "ofa", y, "--space", "tiny",
                   "--out", out, "--overwrite"], "no entry", keep=[out])
  good = _file(tmp_path, "good.yaml", f"{GOOD_OFA}: {{mean: 0.5}}\n")
  fails(capsys, ["table", "import", "--from", "ofa", good, "--space",
                 "mobilenetv3", "--out", out, "--overwrite"], "no entry",
        keep=[out])
  assert not (tmp_path / "new.json").exists()


@pytest.mark.parametrize("key,needle", [
    (GOOD_OFA.replace("expand:2", "expand:1e300"), "expand:1e300"),
    (GOOD_OFA.replace("kernel:3", "kernel:999999"), "kernel:999999"),
])
def test_table_import_refuses_out_of_range_keys(tmp_path, capsys, key,
                                                needle):
  y = _file(tmp_path, "o.yaml", f"{key}: {{mean: 0.5}}\n{GOOD_OFA}: "
            "{mean: 0.5}\n")
  out = tmp_path / "t.json"
  assert main(["table", "import", "--from", "ofa", str(y), "--space", "tiny",
               "--out", str(out)]) == 0
  text = capsys.readouterr().out
  assert needle in text and "not mapped" in text, text
  from hwnas.latency import load_table  # pylint: disable=g-import-not-at-top
  assert len(load_table(out)) == 1


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
  d = tmp_path / "dir"
  d.mkdir()
  f = tmp_path / "file"
  f.write_text("x")
  base = ["table", "measure", "--space", "tiny", "--backend",
          "edgetpu-model", "--no-progress", "--out"]
  t0 = time.perf_counter()
  fails(capsys, base + [d], "is a directory")
  fails(capsys, base + [f / "t.json"], "is a file, not a folder", keep=[f])
  fails(capsys, ["table", "export-csv", "xla/tiny", "--out", d],
        "is a directory")
  assert time.perf_counter() - t0 < 10


# ------------------------------------------------- numbers at the edge --


@pytest.mark.parametrize("argv,needle", [
    (["arch", "sample", "--space", "tiny", "--seed", "-1"], "--seed -1"),
    (["search", "--space", "tiny", "--cost", "mmacs", "--target", "1",
      "--seed", "-1", "--supernet", ".", "--workdir", "W"], "--seed -1"),
    (["search", "--space", "tiny", "--cost", "mmacs", "--objective",
      "reward", "--target", "1", "--reward-weight", "nan", "--supernet",
      ".", "--workdir", "W"], "--reward-weight nan"),
    (["search", "--space", "tiny", "--cost", "mmacs", "--objective",
      "reward", "--target", "1", "--reward-weight", "inf", "--supernet",
      ".", "--workdir", "W"], "--reward-weight inf"),
    (["search", "--space", "tiny", "--cost", "mmacs", "--target", "1",
      "--population", "1000000000", "--budget", "10", "--supernet", ".",
      "--workdir", "W"], "larger than the budget"),
    (["arch", "stats", "--reference", "mobilenet_v2_1.0", "--resolution", "0"],
     "--resolution 0"),
    (["arch", "stats", "--reference", "mobilenet_v2_1.0", "--resolution",
      "100000000"], "--resolution 100000000"),
    (["arch", "stats", "--reference", "mobilenet_v2_1.0", "--num-classes", "0"],
     "--num-classes 0"),
    (["table", "check", "--table", "xla/tiny", "--space", "tiny",
      "--limit", "-1"], "--limit -1"),
])
def test_bad_flags(tmp_path, capsys, monkeypatch, argv, needle):
  monkeypatch.chdir(tmp_path)
  fails(capsys, argv, needle)
  assert not (tmp_path / "W").exists()


@pytest.mark.parametrize("argv,needle", [
    (["search", "--space", "tiny", "--budget", "nan"], "--budget"),
    (["search", "--space", "tiny", "--target-ms", "fast"], "--target-ms"),
    (["search", "--space", "tiny", "--table", "xla/tiny", "--target", "1",
      "--target-ms", "1", "--workdir", "W"], "not allowed with"),
    (["arch", "stats", "--reference", "nosuch"], "--reference"),
])
def test_usage_errors_are_one_line(capsys, argv, needle):
  err = fails(capsys, argv, needle, "--help")
  assert "usage:" not in err


@pytest.mark.parametrize("override,needle", [
    ("optimizer.learning_rate=-0.5", "optimizer.learning_rate = -0.5"),
    ("optimizer.learning_rate=.nan", "optimizer.learning_rate = nan"),
    ("seed=-1", "config.seed = -1"),
    ("depthwise=foo", "depthwise"),
    ("num_classes=3", "num_classes"),
])
def test_bad_config_overrides(tmp_path, capsys, override, needle):
  w = tmp_path / "w"
  fails(capsys, ["supernet", "train", "--space", "tiny", "--workdir", w,
                 "--steps", "1", "--set", override], needle)
  assert not w.exists()


def test_bad_config_overrides_of_standalone_training(tmp_path, capsys):
  a = _arch(tmp_path)
  w = tmp_path / "w"
  for override, needle in (("optimizer.learning_rate=-0.5",
                            "optimizer.learning_rate = -0.5"),
                           ("seed=-1", "seed = -1")):
    fails(capsys, ["train", "--arch", a, "--workdir", w, "--steps", "1",
                   "--set", override], needle)
  assert not w.exists()


# ------------------------------------------------------------ files --


@pytest.mark.parametrize("text,needle", [
    pytest.param(TINY_SPACE.read_text() + "name: other\n", "key 'name' is given twice",
                 id="duplicate-key"),
    pytest.param(_space_text(format=True), "format", id="format-true"),
    pytest.param(_space_text(format=1.0), "format", id="format-float"),
    pytest.param("name: " + "[" * 5000 + "]" * 5000 + "\n",
                 "nested 5000 deep", id="deep"),
    pytest.param("resolutions: [" + "1" * 5000 + "]\n", "5000 digits",
                 id="digits"),
    pytest.param("resolutions: [" + ", ".join(["24"] * 1_000_000) + "]\n",
                 "bytes of YAML", id="million-entries"),
])
def test_space_files(tmp_path, capsys, text, needle):
  p = _file(tmp_path, "s.yaml", text)
  t0 = time.perf_counter()
  fails(capsys, ["space", "show", p], needle, keep=[p])
  assert time.perf_counter() - t0 < 10


def test_space_stem_stride_bool_and_forged_name(tmp_path, capsys):
  d = yaml.safe_load(TINY_SPACE.read_text())
  d["stem"]["stride"] = True
  p = _file(tmp_path, "s.yaml", yaml.safe_dump(d))
  fails(capsys, ["space", "show", p], "stem.stride", keep=[p])
  d = yaml.safe_load(TINY_SPACE.read_text())
  d["name"] = "x\nerror: forged"
  p = _file(tmp_path, "n.yaml", yaml.safe_dump(d))
  code = main(["space", "show", str(p)])
  out, err = capsys.readouterr()
  assert not any(l.startswith("error: forged") for l in
                 (out + err).splitlines()), out + err
  if code != 0:
    fails(capsys, ["space", "show", p], "name")


@pytest.mark.parametrize("change,needle", [
    ({"widths": 5}, "widths"),
    ({"widths": None}, "widths"),
    ({"depths": 2}, "depths"),
    ({"resolution": int("9" * 80)}, "resolution"),
])
def test_arch_files(tmp_path, capsys, change, needle):
  a = _arch(tmp_path, **change)
  fails(capsys, ["arch", "stats", a], needle, keep=[a])


def test_arch_files_shape_and_kernel_type(tmp_path, capsys):
  deep = _file(tmp_path, "deep.json", "[" * 100000 + "]" * 100000)
  fails(capsys, ["arch", "stats", deep], "nested", keep=[deep])
  digits = _file(tmp_path, "dig.json", '{"resolution": ' + "9" * 5000 + "}")
  fails(capsys, ["arch", "stats", digits], "5000 digits", keep=[digits])
  d = json.loads(arch_lib.to_json(arch_lib.smallest(space_lib.load("tiny"))))
  d["blocks"][0][0]["kernel"] = 3.0
  k = _file(tmp_path, "k.json", json.dumps(d))
  fails(capsys, ["arch", "stats", k], "kernel", keep=[k])
  w = tmp_path / "w"
  fails(capsys, ["train", "--arch", k, "--workdir", w, "--steps", "1"],
        "kernel", keep=[k])
  assert not w.exists()


def test_table_files(tmp_path, capsys):
  d = json.loads(TINY_TABLE.read_text())
  d["header"]["network_model"] = {**d["header"].get("network_model", {}),
                                  "kind": "nosuch"}
  p = _file(tmp_path, "t.json", json.dumps(d))
  fails(capsys, ["table", "show", p], "nosuch", keep=[p])
  deep = _file(tmp_path, "deep.json", "[" * 100000 + "]" * 100000)
  fails(capsys, ["table", "show", deep], "nested", keep=[deep])


def test_dataset_smaller_than_one_batch(tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for c in ("a", "b"):
    (tmp_path / "img" / "train" / c).mkdir(parents=True)
    for i in range(3):
      Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
          tmp_path / "img" / "train" / c / f"{i}.png")
  w = tmp_path / "w"
  fails(capsys, ["supernet", "train", "--space", "tiny", "--workdir", w,
                 "--steps", "1", "--dataset", f"folder:{tmp_path / 'img'}"],
        "batch")
  fails(capsys, ["supernet", "train", "--space", "tiny", "--workdir", w,
                 "--steps", "1", "--set", "train.batch_size=100000"],
        "batch")


def test_damaged_jpeg_is_one_line_without_libjpeg_noise(tmp_path, capfd,
                                                        monkeypatch):
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from hwnas import chatter, data, errors  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(chatter.ENV, raising=False)
  root = tmp_path / "img"
  for c in ("a", "b"):
    (root / "train" / c).mkdir(parents=True)
    for i in range(4):
      Image.fromarray(np.full((16, 16, 3), 30 * i, np.uint8)).save(
          root / "train" / c / f"{i}.jpg")
  buf = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
  (root / "train" / "a" / "1.jpg").write_bytes(
      buf.getvalue()[:len(buf.getvalue()) // 3])   # cut: libjpeg complains
  ds = data.load(f"folder:{root}", val_fraction=0.0)
  capfd.readouterr()
  with pytest.raises(errors.HwnasError, match=r"a/1.jpg cannot be decoded"):
    for _ in data.batches(ds, "train", batch_size=2, resolution=8, seed=0,
                          repeat=False):
      pass
  err = capfd.readouterr().err
  assert "JPEG" not in err, err
