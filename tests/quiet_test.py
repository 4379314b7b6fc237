"""Quiet and alive: XLA / LiteRT chatter is filtered from a command's
stderr (real errors are not), and long commands print progress lines when
stdout is not a terminal (fast: no compiles)."""

import io
import os
import subprocess
import sys

from hwnas import chatter, progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

XLA_ALARM = (
    "2026-12-07 16:00:01.000001: E external/xla/xla/service/"
    "slow_operation_alarm.cc:73]\n"
    "********************************\n"
    "[Compiling module jit_step] Very slow compile? If you want to file a "
    "bug, run with envvar XLA_FLAGS=--xla_dump_to=/tmp/foo and attach the "
    "results.\n"
    "********************************\n"
    "2026-12-07 16:03:01.000001: E external/xla/xla/service/"
    "slow_operation_alarm.cc:140] The operation took 3m0.1s\n")
LITERT = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
          "INFO: Replacing 12 out of 12 node(s) with delegate "
          "(TfLiteXNNPackDelegate) node, yielding 1 partitions.\n")


def _run(code, *args, env=None):
  e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
  e.pop("HWNAS_VERBOSE", None)
  e.update(env or {})
  return subprocess.run([sys.executable, "-c", code, *args], env=e,
                        capture_output=True, text=True, timeout=120)


# `hwnas space list` run the way the console script runs it (main() with
# no argv installs the filter), then what C++ threads write to fd 2 while
# such a process lives, then a real error.
_CMD = """
import os, sys, threading
from hwnas.cli import main
sys.argv = ["hwnas", "space", "list"]
code = main()
noise = {noise!r}
t = threading.Thread(target=lambda: os.write(2, noise.encode()))
t.start(); t.join()
os.write(2, b"error: a real problem\\n")
sys.exit(code)
"""


def test_a_command_prints_no_xla_or_litert_chatter():
  r = _run(_CMD.format(noise=XLA_ALARM + LITERT))
  assert r.returncode == 0, r.stderr
  assert "tiny" in r.stdout
  assert r.stderr == "error: a real problem\n"
  v = _run(_CMD.format(noise=XLA_ALARM + LITERT),
           env={"HWNAS_VERBOSE": "1"})
  assert "Very slow compile?" in v.stderr and "XNNPACK" in v.stderr


def test_every_alarm_line_is_chatter_and_errors_are_not():
  for line in (XLA_ALARM + LITERT).splitlines():
    assert chatter.is_chatter(line), line
  assert not chatter.is_chatter("error: table.json: 3 signatures missing")
  assert not chatter.is_chatter("Traceback (most recent call last):")


def test_line_progress_prints_every_n_items_and_every_30_s():
  now = [0.0]
  out = io.StringIO()
  with progress.LineProgress(out=out, clock=lambda: now[0]) as bar:
    task = bar.add_task("xla tiny@1", total=100, key="")
    for i in range(100):
      now[0] += 1.0
      bar.update(task, key=f"layer {i}")
      bar.advance(task)
  lines = out.getvalue().splitlines()
  assert len(lines) == 20                   # every 5 of 100
  assert lines[0].startswith("xla tiny@1: 5/100 (5%)")
  assert "eta" in lines[0] and lines[-1].startswith("xla tiny@1: 100/100")
  slow = io.StringIO()
  with progress.LineProgress(out=slow, every=1000,
                             clock=lambda: now[0]) as bar:
    task = bar.add_task("rank-check", total=10, what="")
    now[0] += 31
    bar.advance(task)                        # 30 s passed: a line
  assert slow.getvalue().startswith("rank-check: 1/10")


def test_table_measure_with_stdout_redirected_prints_progress(tmp_path):
  r = _run(
      "import sys; from hwnas.cli import main; sys.exit(main(sys.argv[1:]))",
      "table", "measure", "--space", "tiny", "--backend", "edgetpu-model",
      "--out", str(tmp_path / "t.json"))
  assert r.returncode == 0, r.stderr
  lines = [l for l in r.stdout.splitlines()
           if l.startswith("edgetpu-model tiny@1: ")]
  assert len(lines) >= 10 and "/441" in lines[0]
  assert "wrote" in r.stdout


def test_every_flag_of_every_command_has_help_text():
  import argparse
  from hwnas.cli import build_parser
  missing = []

  def walk(parser, path):
    for a in parser._actions:  # pylint: disable=protected-access
      if isinstance(a, argparse._SubParsersAction):  # pylint: disable=protected-access
        for name, sub in a.choices.items():
          walk(sub, f"{path} {name}")
      elif not a.help and not isinstance(a, argparse._HelpAction):  # pylint: disable=protected-access
        missing.append(f"{path} {a.option_strings or a.dest}")
  walk(build_parser(), "hwnas")
  assert not missing, missing


def test_what_a_crashing_command_wrote_last_still_arrives():
  code = ("import os, sys\nfrom hwnas import chatter\nchatter.install()\n"
          "os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate\\n')\n"
          "os.write(2, b'F1207 check failed: the real cause\\n')\n"
          "os.abort()\n")
  r = _run(code)
  assert r.returncode != 0
  assert "the real cause" in r.stderr and "XNNPACK" not in r.stderr
