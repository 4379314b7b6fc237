"""Tests for hwnas.edgetpu: the compiler-log parser, the command line, the
missing-toolchain errors and the static operator check."""

import os
import pathlib
import stat

import pytest

from hwnas import errors
from hwnas.edgetpu import compiler, ops

# Real compiler outputs from public issue threads (see the README there).
REAL_LOGS = pathlib.Path(__file__).resolve().parent / "testdata" / (
    "edgetpu_compiler_logs")
KIB, MIB = 1024, 1024 ** 2

# Our own excerpts in the compiler's documented console format.
LOG_ALL_MAPPED = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 412 ms.

Input model: net_int8.tflite
Input size: 120.25KiB
Output model: net_int8_edgetpu.tflite
Output size: 301.50KiB
On-chip memory used for caching model parameters: 110.00KiB
On-chip memory remaining for caching model parameters: 7.66MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 12
Operation log: net_int8_edgetpu.log

Operator                       Count      Status

CONV_2D                        7          Mapped to Edge TPU
DEPTHWISE_CONV_2D              3          Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
FULLY_CONNECTED                1          Mapped to Edge TPU
Compilation child process completed within timeout period.
Compilation succeeded!
"""

LOG_HSWISH = """\
Edge TPU Compiler version 15.0.340273435

Model compiled successfully in 201 ms.

Input model: hs.tflite
Input size: 64.00KiB
Output model: hs_edgetpu.tflite
Output size: 80.00KiB
On-chip memory used for caching model parameters: 12.50KiB
On-chip memory remaining for caching model parameters: 7.70MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 10
Operation log: hs_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 1
Number of operations that will run on CPU: 9

Operator                       Count      Status

CONV_2D                        1          Mapped to Edge TPU
HARD_SWISH                     1          Operation not supported
CONV_2D                        4          More than one subgraph is not supported
ADD                            2          More than one subgraph is not supported
"""

LOG_V2_AVAILABLE = """\
Edge TPU Compiler version 2.1.302470888

Model compiled successfully in 900 ms.

Input model: m.tflite
Input size: 1.00MiB
Output model: m_edgetpu.tflite
Output size: 1.20MiB
On-chip memory available for caching model parameters: 5.95MiB
On-chip memory used for caching model parameters: 1.00MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 30
Operation log: m_edgetpu.log
"""

LOG_CUT = """\
Edge TPU Compiler version 16.0.384591198

Model compiled successfully in 77 ms.

Input model: cut.tflite
Input size: 2.5"""

LOG_ERROR = """\
Edge TPU Compiler version 16.0.384591198
Invalid model: cut.tflite
Model not quantized
"""


@pytest.mark.parametrize("text,unit", [("4.41MiB", MIB), ("604.50KiB", KIB),
                                       ("0.00B", 1), ("12B", 1),
                                       ("1.5GiB", 1024 ** 3)])
def test_parse_size_units(text, unit):
  number = float(text.rstrip("GMKiB"))
  assert compiler.parse_size(text) == round(number * unit)


def test_parse_size_rejects_garbage():
  with pytest.raises(ValueError):
    compiler.parse_size("2.5")


def test_parse_all_mapped_excerpt():
  r = compiler.parse_log(LOG_ALL_MAPPED)
  assert r.compiler_version == "16.0.384591198"
  assert r.succeeded and r.compile_ms == 412
  assert r.input_model == "net_int8.tflite"
  assert r.input_size_bytes == round(120.25 * KIB)
  assert r.output_size_bytes == round(301.5 * KIB)
  assert r.on_chip_used_bytes == 110 * KIB
  assert r.on_chip_remaining_bytes == round(7.66 * MIB)
  assert r.off_chip_bytes == 0
  assert r.num_subgraphs == 1 and r.total_ops == 12
  assert [(o.op, o.count) for o in r.operators] == [
      ("CONV_2D", 7), ("DEPTHWISE_CONV_2D", 3), ("MEAN", 1),
      ("FULLY_CONNECTED", 1)]
  assert sum(o.count for o in r.operators) == r.total_ops
  assert r.all_mapped is True and r.unmapped == ()


def test_parse_hard_swish_fallback_excerpt():
  r = compiler.parse_log(LOG_HSWISH)
  assert r.fallback_warning
  assert (r.ops_on_edgetpu, r.ops_on_cpu) == (1, 9)
  assert r.all_mapped is False
  assert [o.op for o in r.unmapped] == ["HARD_SWISH", "CONV_2D", "ADD"]
  assert r.unmapped[0].status == "Operation not supported"
  assert r.unmapped[1].status == "More than one subgraph is not supported"


def test_parse_v2_available_is_remaining():
  r = compiler.parse_log(LOG_V2_AVAILABLE)
  assert r.on_chip_remaining_bytes == round(5.95 * MIB)
  assert r.on_chip_used_bytes == MIB
  assert r.all_mapped is True  # summary complete, no fallback evidence


def test_parse_cut_log_leaves_unknowns_none():
  r = compiler.parse_log(LOG_CUT)
  assert r.succeeded and r.input_model == "cut.tflite"
  assert r.input_size_bytes is None and r.total_ops is None
  assert r.operators == ()
  assert r.all_mapped is None


def test_parse_error_log():
  r = compiler.parse_log(LOG_ERROR)
  assert not r.succeeded
  assert r.error_lines == ("Invalid model: cut.tflite",)
  assert r.all_mapped is False


def test_parse_empty_log():
  r = compiler.parse_log("")
  assert r == compiler.CompileResult()
  assert r.all_mapped is None


def test_to_dict_is_json_ready():
  import json
  d = compiler.parse_log(LOG_HSWISH).to_dict()
  assert json.loads(json.dumps(d))["operators"][1]["op"] == "HARD_SWISH"
  assert d["all_mapped"] is False


# Values read by eye from each real compiler log.
REAL_EXPECTED = {
    "v15_cpu_fallback.txt": dict(
        compiler_version="15.0.340273435", compile_ms=1379,
        on_chip_used_bytes=round(1.92 * MIB),
        on_chip_remaining_bytes=round(1.75 * KIB),
        off_chip_bytes=round(3.23 * MIB), num_subgraphs=1, total_ops=136,
        ops_on_edgetpu=135, ops_on_cpu=1, rows=4, all_mapped=False),
    "v15_multi_subgraph.txt": dict(
        compiler_version="15.0.340273435", compile_ms=273,
        on_chip_used_bytes=round(1.30 * MIB),
        on_chip_remaining_bytes=round(6.89 * MIB), off_chip_bytes=0,
        num_subgraphs=3, total_ops=25, ops_on_edgetpu=23, ops_on_cpu=2,
        rows=1, all_mapped=False),
    "v16_delegate_search.txt": dict(
        compiler_version="16.0.384591198", compile_ms=3133,
        on_chip_used_bytes=round(5.90 * MIB),
        on_chip_remaining_bytes=round(1.16 * MIB),
        off_chip_bytes=round(41.75 * KIB), num_subgraphs=1, total_ops=246,
        ops_on_edgetpu=None, ops_on_cpu=None, rows=8, all_mapped=True),
    "v16_offchip_streaming.txt": dict(
        compiler_version="16.0.384591198", compile_ms=542,
        on_chip_used_bytes=round(604.5 * KIB),
        on_chip_remaining_bytes=round(511.5 * KIB),
        off_chip_bytes=round(3.45 * MIB), num_subgraphs=1, total_ops=50,
        ops_on_edgetpu=None, ops_on_cpu=None, rows=0, all_mapped=True),
    "v2_1_subgraph_split.txt": dict(
        compiler_version="2.1.302470888", compile_ms=12264,
        on_chip_used_bytes=round(6.86 * MIB),
        on_chip_remaining_bytes=round(7.75 * KIB),
        off_chip_bytes=round(1.22 * MIB), num_subgraphs=1, total_ops=93,
        ops_on_edgetpu=83, ops_on_cpu=10, rows=4, all_mapped=False),
}


@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_parse_real_logs(name):
  r = compiler.parse_log((REAL_LOGS / name).read_text())
  want = dict(REAL_EXPECTED[name])
  rows, all_mapped = want.pop("rows"), want.pop("all_mapped")
  assert r.succeeded
  for field, value in want.items():
    assert getattr(r, field) == value, field
  assert len(r.operators) == rows
  assert r.all_mapped is all_mapped
  assert r.input_model and r.output_model.endswith("_edgetpu.tflite")


def test_every_real_log_parses():
  paths = sorted(REAL_LOGS.glob("*.txt"))
  assert len(paths) == len(REAL_EXPECTED)
  for path in paths:
    r = compiler.parse_log(path.read_text())
    assert r.compiler_version and r.total_ops, path.name


def test_compiler_command_is_exact(tmp_path):
  cmd = compiler.compiler_command(tmp_path / "m.tflite", tmp_path / "out",
                                  extra_args=("-m", "13"))
  assert cmd == ["edgetpu_compiler", "-s", "-o", str(tmp_path / "out"), "-m",
                 "13", str(tmp_path / "m.tflite")]


def test_compile_model_without_compiler(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))
  assert compiler.find_compiler() is None
  with pytest.raises(errors.HwnasError, match="not installed.*edgetpu-compiler"):
    compiler.compile_model(tmp_path / "m.tflite", tmp_path)


def _fake_compiler(bin_dir, log_text, code=0):
  """An executable standing in for the external binary (not our code)."""
  path = bin_dir / "edgetpu_compiler"
  (bin_dir / "log.txt").write_text(log_text)
  path.write_text(f"#!/bin/sh\ncat '{bin_dir / 'log.txt'}'\nexit {code}\n")
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_compile_model_runs_and_keeps_log(tmp_path, monkeypatch):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _fake_compiler(bin_dir, LOG_ALL_MAPPED)
  monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
  model = tmp_path / "net_int8.tflite"
  model.write_bytes(b"\0" * 16)
  r = compiler.compile_model(model, tmp_path / "out")
  assert r.all_mapped and r.total_ops == 12
  assert pathlib.Path(r.log_path).read_text() == LOG_ALL_MAPPED


def test_compile_model_failure_is_one_line(tmp_path, monkeypatch):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _fake_compiler(bin_dir, LOG_ERROR, code=1)
  monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
  model = tmp_path / "m.tflite"
  model.write_bytes(b"\0" * 16)
  with pytest.raises(errors.HwnasError, match="Invalid model") as e:
    compiler.compile_model(model, tmp_path / "out")
  assert "\n" not in str(e.value)


def test_load_delegate_missing_runtime():
  with pytest.raises(errors.HwnasError, match="libedgetpu1-std"):
    compiler.load_delegate(library="libedgetpu_missing_for_test.so.1")


# ------------------------------------------------------------ operator check

def test_check_ops_all_mapped():
  r = ops.check_ops(["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN",
                     "FULLY_CONNECTED"])
  assert r.all_mapped and r.unmappable == ()
  assert (r.ops_on_edgetpu, r.ops_on_cpu) == (5, 0)
  assert ("MEAN", ops.CONDITIONAL["MEAN"]) in r.notes


def test_check_ops_first_fallback_sends_rest_to_cpu():
  op_list = ["CONV_2D", "HARD_SWISH", "CONV_2D", "LEAKY_RELU", "HARD_SWISH",
             "ADD"]
  r = ops.check_ops(op_list)
  assert not r.all_mapped
  assert r.first_fallback == 1
  assert r.unmappable == ("HARD_SWISH", "LEAKY_RELU")
  assert (r.ops_on_edgetpu, r.ops_on_cpu) == (1, 5)
  assert "HARD_SWISH" in r.summary() and "#1" in r.summary()
  assert "272" in r.reasons()["HARD_SWISH"]


def test_check_ops_unknown_op_is_unmappable():
  r = ops.check_ops(["CONV_2D", "CUSTOM:TFLite_Detection_PostProcess"])
  assert r.unmappable == ("CUSTOM:TFLite_Detection_PostProcess",)
  assert r.to_dict()["first_fallback_op"].startswith("CUSTOM")


def test_op_table_excludes_known_unsupported():
  assert not ops.EDGETPU_OPS & set(ops.KNOWN_UNSUPPORTED)
  assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"} <= ops.EDGETPU_OPS
