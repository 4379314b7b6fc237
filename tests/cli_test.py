"""The foundation CLI commands, run as a user would."""

import json
import subprocess
import sys

from hwnas import arch, space


def hwnas(*args):
  return subprocess.run([sys.executable, "-m", "hwnas", *args],
                        capture_output=True, text=True)


def test_space_list_and_show():
  r = hwnas("space", "list")
  assert r.returncode == 0 and "mobilenetv3" in r.stdout
  r = hwnas("space", "show", "tiny", "--json")
  info = json.loads(r.stdout)
  assert info["num_archs"] == space.load("tiny").num_archs()
  assert 0 < info["min_macs"] < info["max_macs"]


def test_arch_sample_then_stats(tmp_path):
  out = tmp_path / "a.json"
  r = hwnas("arch", "sample", "--space", "tiny", "--seed", "5", "--out",
            str(out))
  assert r.returncode == 0
  a = arch.load(out)
  assert a.space == "tiny"
  r = hwnas("arch", "stats", str(out), "--json")
  stats = json.loads(r.stdout)
  from hwnas import counting
  assert stats["macs"] == counting.macs(arch.decode(space.load("tiny"), a))


def test_arch_stats_reference_at_other_resolution():
  r = hwnas("arch", "stats", "--reference", "mobilenet_v2_1.0",
            "--resolution", "160", "--json")
  stats = json.loads(r.stdout)
  assert stats["resolution"] == 160 and 140e6 < stats["macs"] < 160e6


def test_arch_stats_bad_file_is_one_line(tmp_path):
  p = tmp_path / "bad.json"
  p.write_text('{"space": "tiny"}')
  r = hwnas("arch", "stats", str(p))
  assert r.returncode == 2
  assert r.stderr.count("\n") == 1 and "missing key" in r.stderr
