"""The foundation CLI commands, run as a user would."""

import json
import subprocess
import sys

from hwnas import arch, cli, counting, space


def hwnas(*args):
  """`python -m hwnas ARGS` in a new process (the real entry point)."""
  return subprocess.run([sys.executable, "-m", "hwnas", *args],
                        capture_output=True, text=True)


def run(capsys, *args):
  """`hwnas ARGS` in this process: (exit code, stdout, stderr)."""
  code = cli.main(list(args))
  out = capsys.readouterr()
  return code, out.out, out.err


def test_space_list_and_show():
  r = hwnas("space", "list")
  assert r.returncode == 0 and "mobilenetv3" in r.stdout
  r = hwnas("space", "show", "tiny", "--json")
  info = json.loads(r.stdout)
  assert info["num_archs"] == space.load("tiny").num_archs()
  assert 0 < info["min_macs"] < info["max_macs"]


def test_arch_sample_then_stats(tmp_path, capsys):
  out = tmp_path / "a.json"
  code, _, _ = run(capsys, "arch", "sample", "--space", "tiny", "--seed", "5",
                   "--out", str(out))
  assert code == 0
  a = arch.load(out)
  assert a.space == "tiny"
  code, stdout, _ = run(capsys, "arch", "stats", "--arch", str(out),
                        "--json")
  stats = json.loads(stdout)
  assert stats["macs"] == counting.macs(arch.decode(space.load("tiny"), a))


def test_arch_stats_reference_at_other_resolution(capsys):
  _, stdout, _ = run(capsys, "arch", "stats", "--reference",
                     "mobilenet_v2_1.0", "--resolution", "160", "--json")
  stats = json.loads(stdout)
  assert stats["resolution"] == 160 and 140e6 < stats["macs"] < 160e6


def test_arch_stats_bad_file_is_one_line(tmp_path):
  p = tmp_path / "bad.json"
  p.write_text('{"space": "tiny"}')
  r = hwnas("arch", "stats", "--arch", str(p))
  assert r.returncode == 2
  assert r.stderr.count("\n") == 1 and "missing key" in r.stderr


def test_timeseries_data_on_image_networks_is_one_line(tmp_path, capsys):
  for args in (("supernet", "train", "--space", "tiny"),
               ("train", "--reference", "mobilenet_v1_0.25")):
    code, _, err = run(capsys, *args, "--dataset", "watch", "--workdir",
                       str(tmp_path / args[0]))
    assert code == 2
    assert "watch: time-series windows [128, 6] but" in err
    assert "takes images" in err
    assert err.count("\n") == 1
    assert not (tmp_path / args[0]).exists()
