"""Bad input gets one line, nothing finished is lost or silently wrong.

Each bad input below must exit with status 2 and exactly one `error:` line
(no traceback) and leave existing files byte-identical. Most cases call
`hwnas.cli.main` in-process (a subprocess costs seconds of imports); the
lock, kill -9 and Orbax-shutdown cases need a second process.
"""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from hwnas import arch as arch_lib
from hwnas import errors, resources, workdir
from hwnas import space as space_lib
from hwnas.cli import main
from hwnas.cli import table as table_cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_TABLE = resources.latency_tables_dir() / "xla" / "tiny.json"


def _digest(paths):
  return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
          if p.is_file()}


def fails(capsys, argv, *needles, keep=()):
  """Runs the CLI; asserts exit 2, one `error:` line naming `needles`, no
  traceback, and `keep` files unchanged. Returns stderr."""
  before = _digest(keep)
  code = main([str(a) for a in argv])
  out, err = capsys.readouterr()
  assert code == 2, (argv, out, err)
  assert [l for l in err.splitlines() if l.startswith("error:")] == [
      err.splitlines()[-1]], err
  assert sum(l.startswith("error:") for l in err.splitlines()) == 1, err
  assert "Traceback" not in err + out
  for n in needles:
    assert n in err, (n, err)
  assert _digest(keep) == before
  return err


def _table(tmp_path, name="t.json", **header):
  d = json.loads(TINY_TABLE.read_text())
  d["header"].update(header)
  p = tmp_path / name
  p.write_text(json.dumps(d))
  return p, d


def _space_file(tmp_path, name, **change):
  """The tiny space with `change`d keys (top-level `resolutions`, else keys
  of the first stage)."""
  d = space_lib.load("tiny").to_dict()
  for k, v in change.items():
    (d if k == "resolutions" else d["stages"][0])[k] = v
  p = tmp_path / name
  import yaml  # pylint: disable=g-import-not-at-top
  p.write_text(yaml.safe_dump(d))
  return p


# ------------------------------------------------------- spaces, arch --


@pytest.mark.parametrize("change,needle", [
    ({"depths": [1, 100000000]}, "stages[0].depths[1]: 100000000 is out"),
    ({"kernels": [3, 99999]}, "stages[0].kernels[1]: 99999 is out"),
    ({"widths": [8, 100000000]}, "stages[0].widths[1]: 100000000 is out"),
    ({"resolutions": [1, 24]}, "resolutions[0]: 1 is out of range"),
    ({"resolutions": [24, 1000000000]}, "resolutions[1]: 1000000000 is out"),
])
def test_space_bounds(tmp_path, capsys, change, needle):
  p = _space_file(tmp_path, "s.yaml", **change)
  fails(capsys, ["space", "show", p], needle, "docs/spaces.md", keep=[p])


def test_space_name_and_encoding(tmp_path, capsys):
  fails(capsys, ["space", "show", "mobilenetv4"], "did you mean mobilenetv3")
  bad = tmp_path / "latin1.yaml"
  bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
  fails(capsys, ["space", "show", bad], "not UTF-8 text", keep=[bad])


def test_arch_files(tmp_path, capsys):
  # Not UTF-8.
  bad = tmp_path / "a.json"
  bad.write_bytes(b'{"space": "\xff"}')
  fails(capsys, ["arch", "stats", bad], f"{bad}: not UTF-8", keep=[bad])
  # `--out` writes the file and does not also dump it to stdout.
  a = tmp_path / "s.json"
  assert main(["arch", "sample", "--space", "tiny", "--out", str(a)]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f"wrote {a}") and "{" not in out
  assert arch_lib.load(a).space == "tiny"
  # An architecture of a user's space file finds the file again.
  p = _space_file(tmp_path, "mine.yaml")
  d = space_lib.load(p).to_dict()
  d["name"] = "mine"
  import yaml  # pylint: disable=g-import-not-at-top
  p.write_text(yaml.safe_dump(d))
  m = tmp_path / "m.json"
  assert main(["arch", "sample", "--space", str(p), "--out", str(m)]) == 0
  capsys.readouterr()
  assert json.loads(m.read_text())["space_file"] == str(p.absolute())
  assert main(["arch", "stats", str(m)]) == 0
  assert "total:" in capsys.readouterr().out
  p.write_text(p.read_text().replace("version: 1", "version: 2"))
  fails(capsys, ["arch", "stats", m], "changed since this architecture")


# ------------------------------------------------------------- tables --


def test_table_validation_on_load(tmp_path, capsys):
  fails(capsys, ["table", "show", "xla/tiyn"], "did you mean xla/tiny")
  bad = tmp_path / "b.json"
  bad.write_bytes(TINY_TABLE.read_bytes().replace(b'"ms"', b'"\xe9ms"', 1))
  fails(capsys, ["table", "show", bad], "not UTF-8", keep=[bad])
  neg, _ = _table(tmp_path, "neg.json",
                  calibration={"type": "linear", "a": -1.0, "b": 0.0})
  fails(capsys, ["table", "show", neg], "header.calibration.a: must be "
        "positive", keep=[neg])
  # Entries that overflow a prediction (a sum past the largest float).
  _, d = _table(tmp_path)
  for e in d["entries"].values():
    e["latency_ms"] = 1e308
  huge = tmp_path / "huge.json"
  huge.write_text(json.dumps(d))
  a = tmp_path / "a.json"
  a.write_text(arch_lib.to_json(arch_lib.largest(space_lib.load("tiny"))))
  fails(capsys, ["arch", "stats", a, "--table", huge], "predicts inf ms")
  # A negative intercept that makes a prediction negative.
  low, _ = _table(tmp_path, "low.json",
                  calibration={"type": "linear", "a": 1.0, "b": -1e6})
  w = tmp_path / "w"
  fails(capsys, ["search", "--space", "tiny", "--table", low, "--target-ms",
                 "5", "--supernet", tmp_path, "--workdir", w],
        "ms for", "calibration")
  assert not w.exists()   # a failed search leaves no workdir
  # A table of another space.
  fails(capsys, ["search", "--space", "mobilenetv3", "--table", "xla/tiny",
                 "--target-ms", "5", "--supernet", tmp_path, "--workdir", w],
        "this table covers space tiny, not mobilenetv3")


def test_table_import_and_ofa_keys(tmp_path, capsys):
  out = tmp_path / "t.json"
  out.write_bytes(TINY_TABLE.read_bytes())
  yml = tmp_path / "ofa.yaml"
  good = "expanded_conv-input:12x12x16-output:12x12x16-expand:2-kernel:3-" \
         "stride:1-idskip:1"
  yml.write_text("\n".join([
      f"{good}: {{mean: 0.5}}",
      "expanded_conv-input:12-output:12x12x8-expand:2-kernel:3-stride:1: "
      "{mean: 0.5}",
      "expanded_conv-input:12x12x8-output:12x12x8-expand:nan-kernel:3-"
      "stride:1: {mean: 0.5}",
      "expanded_conv-input:12x12x8-output:12x12x8-expand:inf-kernel:3-"
      "stride:1: {mean: 0.5}",
      "expanded_conv-input:12x12x8-output:12x12x8-expand:2-kernel:x-"
      "stride:1: {mean: 0.5}",
      f"{good}-se:0: {{mean: .nan}}",
      f"{good}-se:1: {{mean: .inf}}"]) + "\n")
  fails(capsys, ["table", "import", "--from", "ofa", yml, "--space", "tiny",
                 "--out", out], "exists; pass --overwrite", keep=[out])
  assert main(["table", "import", "--from", "ofa", str(yml), "--space",
               "tiny", "--out", str(out), "--overwrite"]) == 0
  text = capsys.readouterr().out
  assert text.count("not mapped") == 6, text
  for why in ("bad shape input:12", "expand:nan", "expand:inf", "kernel:x",
              "finite non-negative numeric 'mean'"):
    assert why in text, (why, text)
  from hwnas.latency import load_table  # pylint: disable=g-import-not-at-top
  assert len(load_table(out)) == 1   # it reads back: no NaN/inf written
  bad = tmp_path / "latin1.yaml"
  bad.write_bytes(b"k: \xe9\n")
  fails(capsys, ["table", "import", "--from", "ofa", bad, "--space", "tiny",
                 "--out", tmp_path / "n.json"], "not UTF-8")


def test_table_measure_inputs_and_resume_settings(tmp_path, capsys):
  out = tmp_path / "e.json"
  base = ["table", "measure", "--space", "tiny", "--backend", "edgetpu-model",
          "--out", out, "--no-progress"]
  for flag, v in (("--repeats", 0), ("--batch-size", 0),
                  ("--batch-size", -1), ("--rounds", 0)):
    fails(capsys, base + [flag, v], f"{flag} {v}: must be a positive")
  fails(capsys, ["table", "validate", "--table", "xla/tiny", "--space",
                 "tiny", "--repeats", "0"], "--repeats 0: must be a positive")
  assert not out.exists()
  assert main([str(a) for a in base]) == 0
  capsys.readouterr()
  before_entries = json.loads(out.read_text())["entries"]
  for extra in (["--link", "pcie"], ["--option", "clock=std"]):
    fails(capsys, base + extra, "was measured with device=", keep=[out])
  # Another space is added in the open, reusing the layers both share.
  mine = _space_file(tmp_path, "mine.yaml")
  mine.write_text(mine.read_text().replace("name: tiny", "name: mine"))
  assert main([str(a) for a in base[:3]] + [str(mine)] + [
      str(a) for a in base[4:]]) == 0
  out_text = capsys.readouterr().out
  assert "adding space mine@1" in out_text
  from hwnas.latency import load_table  # pylint: disable=g-import-not-at-top
  merged = load_table(out)
  assert merged.header["spaces"] == ["mine@1", "tiny@1"]
  assert set(before_entries) <= set(merged.entries)   # nothing dropped
  with workdir.lock_file(out):   # another process measuring into it
    fails(capsys, base, f"in use by another hwnas process (pid "
          f"{os.getpid()}", keep=[out])


_FAKE = """
import sys, time
sys.path.insert(0, {root!r})
from hwnas.latency import backends
from hwnas.cli import main
calls = []
class Fake:
  name, precision = "fake", "float32"
  def header_fields(self):
    return {{"device": "fake", "runtime": "fake", "runtime_version": "0"}}
  def time_layer(self, layer, *, batch_size, warmup, repeats):
    calls.append(1)
    if {slow} and len(calls) > 12:
      time.sleep(60)   # wait to be killed
    ms = int.from_bytes(layer.key().encode()[-3:], "big") / 1e6
    return backends.Timing(ms, ms, ms, repeats)
import hwnas.latency
hwnas.latency.BACKENDS["fake"] = lambda **kw: Fake()
sys.exit(main(["table", "measure", "--space", "tiny", "--backend", "fake",
               "--resolutions", "24", "--out", {out!r}, "--no-progress"]))
"""


def _measure_child(root, out, slow):
  code = _FAKE.format(root=str(root), out=str(out), slow=slow)
  return subprocess.Popen([sys.executable, "-c", code],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_table_measure_kill_9_resumes_to_the_same_table(tmp_path):
  ref, out = tmp_path / "ref.json", tmp_path / "run.json"
  journal = tmp_path / "run.json.partial.jsonl"
  proc = _measure_child(ROOT, out, True)
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    if journal.exists() and journal.read_bytes().count(b"\n") >= 1 + 12:
      break
    time.sleep(0.05)
  # A second process cannot measure into the same table meanwhile.
  second = _measure_child(ROOT, out, False)
  _, err = second.communicate(timeout=120)
  assert second.returncode == 2 and b"in use by another hwnas" in err
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert not out.exists()
  kept = journal.read_text().splitlines()[1:]
  assert len(kept) == 12
  done = _measure_child(ROOT, out, False)   # the kernel dropped the lock
  o, err = done.communicate(timeout=120)
  assert done.returncode == 0, err
  assert b"(12 already done)" in o or b"12 reused" in o, o
  whole = _measure_child(ROOT, ref, False)
  whole.communicate(timeout=120)
  a, b = json.loads(out.read_text()), json.loads(ref.read_text())
  assert a["entries"] == b["entries"] and len(a["entries"]) > 12
  assert not journal.exists()


# --------------------------------------------------------- run counts --


def test_counts_and_batch_sizes(tmp_path, capsys):
  w = tmp_path / "w"
  sn = ["supernet", "train", "--space", "tiny", "--workdir", w]
  fails(capsys, sn + ["--steps", "-1"], "--steps -1: must be >= 1")
  fails(capsys, sn + ["--set", "train.steps=-1"],
        "config.train.steps = -1: must be a positive integer")
  fails(capsys, sn + ["--set", "train.batch_size=0"],
        "config.train.batch_size = 0")
  fails(capsys, sn + ["--set", "eval.batch_size=0"], "config.eval.batch_size")
  a = tmp_path / "a.json"
  a.write_text(arch_lib.to_json(arch_lib.smallest(space_lib.load("tiny"))))
  tr = ["train", "--arch", a, "--workdir", w]
  fails(capsys, tr + ["--steps", "0"], "train.steps = 0: must be a positive")
  fails(capsys, tr + ["--set", "train.batch_size=-4"],
        "train.batch_size = -4")
  fails(capsys, tr + ["--set", "eval.batch_size=0"], "eval.batch_size = 0")
  fails(capsys, ["search", "--space", "tiny", "--cost", "mmacs", "--target",
                 "1", "--supernet", tmp_path, "--workdir", w,
                 "--eval-batch-size", "0"], "eval_batch_size is 0")
  assert not w.exists()


def test_workdir_locks(tmp_path, capsys):
  w = tmp_path / "w"
  with workdir.lock(w):
    assert (w / workdir.LOCK_NAME).read_text().strip() == str(os.getpid())
    needle = f"{w}: in use by another hwnas process (pid {os.getpid()}"
    fails(capsys, ["search", "--space", "tiny", "--cost", "mmacs", "--target",
                   "1", "--supernet", tmp_path, "--workdir", w], needle)
    fails(capsys, ["supernet", "train", "--space", "tiny", "--workdir", w,
                   "--steps", "1"], needle)
    a = tmp_path / "a.json"
    a.write_text(arch_lib.to_json(arch_lib.smallest(space_lib.load("tiny"))))
    fails(capsys, ["train", "--arch", a, "--workdir", w, "--steps", "1"],
          needle)
  assert not (w / workdir.LOCK_NAME).exists()
  with workdir.lock(w):   # free again
    pass
  # A run that fails before writing anything leaves no new directory.
  with pytest.raises(errors.HwnasError):
    with workdir.lock(tmp_path / "new"):
      raise errors.HwnasError("x")
  assert not (tmp_path / "new").exists()


# --------------------------------------------------------- checkpoints --


def _ckpt(tmp_path, steps=(1, 2)):
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  mgr = checkpoint.manager(tmp_path)
  for s in steps:
    checkpoint.save(mgr, s, {"w": np.full((64,), float(s), np.float32)})
  return checkpoint, mgr


def _damage(step_dir):
  f = max((p for p in step_dir.rglob("*") if p.is_file() and
           p.name != workdir.CHECKSUMS), key=lambda p: p.stat().st_size)
  data = bytearray(f.read_bytes())
  data[len(data) // 2] ^= 0xFF
  f.write_bytes(bytes(data))


def test_checkpoint_checksums_fallback_and_strict(tmp_path, capsys):
  checkpoint, mgr = _ckpt(tmp_path)
  abstract = {"w": np.zeros((64,), np.float32)}
  state, step = checkpoint.restore(mgr, abstract, workdir=tmp_path)
  assert step == 2 and state["w"][0] == 2
  _damage(tmp_path / "checkpoints" / "2")
  files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
  before = _digest(files)
  # eval / export: an error naming the step, never a silent fallback; the
  # workdir stays as it was.
  with pytest.raises(errors.HwnasError, match=r"checkpoints/2: checkpoint "
                     r".* does not match its checksum"):
    checkpoint.restore_checkpoint(tmp_path, abstract)
  assert _digest(files) == before
  assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files
  # resume: the newest intact step, with a warning; the damaged one moved.
  state, step = checkpoint.restore(mgr, abstract, workdir=tmp_path)
  assert step == 1 and state["w"][0] == 1
  assert "warning: checkpoint 2 is damaged" in capsys.readouterr().err
  assert (tmp_path / "checkpoints_damaged" / "2").is_dir()
  assert mgr.all_steps() == [1]
  checkpoint.save(mgr, 2, {"w": np.full((64,), 5.0, np.float32)})
  assert checkpoint.restore(mgr, abstract, workdir=tmp_path)[1] == 2
  # A step without its commit marker is incomplete.
  (tmp_path / "checkpoints" / "2" / "commit_success.txt").unlink()
  with pytest.raises(errors.HwnasError, match="no commit marker"):
    checkpoint.restore_checkpoint(tmp_path, abstract)
  # ... and so is one that hwnas never marked complete (killed after Orbax).
  (tmp_path / "checkpoints" / "1" / workdir.CHECKSUMS).unlink()
  with pytest.raises(errors.HwnasError, match="every checkpoint is damaged"):
    checkpoint.restore(mgr, abstract, workdir=tmp_path)
  mgr.close()


_MANY = {f"w{i}": np.full((256,), i, np.float32) for i in range(100)}
_RESTORE_CORRUPT = """
import sys
sys.path.insert(0, {root!r})
import jax.numpy as jnp
from hwnas import errors
from hwnas.supernet import checkpoint
abstract = {{f"w{{i}}": jnp.zeros((256,), jnp.float32) for i in range(100)}}
for _ in range(3):
  try:
    checkpoint.restore_checkpoint({w!r}, abstract)
  except errors.HwnasError as e:
    msg = e
print("error:", msg, file=sys.stderr)
sys.exit(2)
"""


def test_corrupt_checkpoint_error_leaves_no_orbax_tracebacks(tmp_path):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  mgr = checkpoint.manager(tmp_path)
  checkpoint.save(mgr, 1, {k: jnp.asarray(v) for k, v in _MANY.items()})
  mgr.close()
  # Orbax refuses the damaged file itself here; legacy (no checksums).
  (tmp_path / "checkpoints" / "1" / workdir.CHECKSUMS).unlink()
  for f in (tmp_path / "checkpoints" / "1").rglob("*"):
    if f.is_file() and "manifest" in f.name:
      f.write_bytes(b"garbage")
  p = subprocess.run([sys.executable, "-c", _RESTORE_CORRUPT.format(
      root=str(ROOT), w=str(tmp_path))], capture_output=True, text=True,
      timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert p.returncode == 2, p.stderr
  assert p.stderr.count("error:") == 1 and "Traceback" not in p.stderr, (
      p.stderr)
  assert "Event loop is closed" not in p.stderr


# ------------------------------------------------------ image folders --


def _pngs(root, split, classes, n=3):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for c in classes:
    d = root / split / c
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
      Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
          d / f"{i}.png")


def test_folder_datasets(tmp_path, capsys):
  from hwnas import data  # pylint: disable=g-import-not-at-top
  one = tmp_path / "one"
  _pngs(one, "train", ["a"])
  with pytest.raises(errors.HwnasError, match="only one class folder"):
    data.load(f"folder:{one}")
  extra = tmp_path / "extra"
  _pngs(extra, "train", ["a", "b"])
  _pngs(extra, "test", ["a", "c"])
  with pytest.raises(errors.HwnasError, match=r"class .*test/c is not in"):
    data.load(f"folder:{extra}")
  zero = tmp_path / "zero"
  _pngs(zero, "train", ["a", "b"])
  (zero / "train" / "b" / "9.png").write_bytes(b"")
  with pytest.raises(errors.HwnasError, match=r"b/9.png is an empty"):
    data.load(f"folder:{zero}")
  empty = tmp_path / "empty"
  _pngs(empty, "train", ["a", "b"], n=4)
  (empty / "train" / "c").mkdir()
  ds = data.load(f"folder:{empty}", val_fraction=0.0)
  assert "class folder" in capsys.readouterr().err
  assert ds.info.num_classes == 3
  corrupt = tmp_path / "corrupt"
  _pngs(corrupt, "train", ["a", "b"], n=4)
  bad = corrupt / "train" / "a" / "1.png"
  bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
  ds = data.load(f"folder:{corrupt}", val_fraction=0.0)
  with pytest.raises(errors.HwnasError, match=r"a/1.png cannot be decoded"):
    for _ in data.batches(ds, "train", batch_size=2, resolution=8, seed=0,
                          repeat=False):
      pass


# ------------------------------------------------- messages that guide --


def test_messages_point_the_right_way(tmp_path, capsys):
  # A failed supernet run leaves no empty workdir behind.
  w = tmp_path / "sn"
  fails(capsys, ["supernet", "train", "--space", "tiny", "--workdir", w,
                 "--dataset", f"folder:{tmp_path / 'none'}"], "no folder")
  assert not w.exists()
  # `table check` never suggests writing into the shipped tables.
  assert main(["table", "check", "--table", "xla/tiny", "--space",
               "edgetpu", "--limit", "1"]) == 1
  out = capsys.readouterr().out
  assert "this table covers space tiny, not edgetpu" in out
  assert "fix: copy the shipped table" in out
  assert "--out tiny.json" in out and f"--out {TINY_TABLE}" not in out
  # A changed setting is named, not dumped as a whole dict.
  from hwnas.search import controller  # pylint: disable=g-import-not-at-top
  assert controller._first_difference(
      {"population": 100, "sample_size": 25},
      {"population": 50, "sample_size": 25}, "settings") == (
          "settings.population", 100, 50)


def test_native_chatter_is_filtered(capfd, monkeypatch):
  from hwnas import chatter  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(chatter.ENV, raising=False)
  noise = (b"fully_quantize: 0, inference_type: 6, input_inference_type: "
           b"INT8\nW0000 00:00:1712345.123456   30107 port.cc:153] x\n")
  with chatter.native():
    os.write(2, noise + b"a real problem\n")
  assert capfd.readouterr().err == "a real problem\n"
  monkeypatch.setenv(chatter.ENV, "1")   # --verbose
  with chatter.native():
    os.write(2, noise)
  assert capfd.readouterr().err == noise.decode()


def test_high_mape_warns_with_the_fix(capsys):
  rep = types.SimpleNamespace(calibration=None, metrics={"mape_pct": 108.0})
  table_cli._warn_high_mape(rep, types.SimpleNamespace(table="t.json"))
  err = capsys.readouterr().err
  assert "MAPE 108% is high" in err and "--timer cpu" in err
  rep.metrics["mape_pct"] = 4.0
  table_cli._warn_high_mape(rep, types.SimpleNamespace(table="t.json"))
  assert capsys.readouterr().err == ""


def test_predictor_warns_on_low_heldout_spearman(tmp_path, capsys):
  from hwnas.search import run  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  noise = lambda archs: ([float(rng.random()) for _ in archs],  # unlearnable
                         [{} for _ in archs])
  s = space_lib.load("tiny")
  run(s, noise, {"mmacs": lambda a: a.resolution / 10}, target=4.0,
      budget=30, population=10, workdir=tmp_path / "h", progress=False,
      plot=False)
  assert main(["predictor", "train", "--space", "tiny", "--history",
               str(tmp_path / "h" / "history.jsonl"), "--out",
               str(tmp_path / "p"), "--steps", "50", "--hidden", "8"]) == 0
  out, err = capsys.readouterr()
  assert "training the predictor on 30 architectures" in out
  assert "warning: held-out Spearman" in err and "add data" in err


def test_exported_flax_checkpoint_is_verified(tmp_path):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.export import flax_io  # pylint: disable=g-import-not-at-top
  from hwnas.models.standalone import Network  # pylint: disable=g-import-not-at-top
  s = space_lib.load("tiny")
  spec = arch_lib.decode(s, arch_lib.smallest(s))
  path = flax_io.save_flax(Network(spec, rngs=nnx.Rngs(0)), tmp_path)
  assert workdir.verify(path) is None
  model = Network(spec, rngs=nnx.Rngs(1))
  flax_io.restore_flax(model, path)   # intact: restores
  _damage(path)
  with pytest.raises(errors.HwnasError, match="does not match its checksum"):
    flax_io.restore_flax(model, path)
