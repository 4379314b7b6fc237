"""Running Google's `edgetpu_compiler` and parsing what it prints.

The compiler is optional: it exists only for x86-64 Debian/Ubuntu, from the
Coral apt repository (package `edgetpu-compiler`). `compile_model` raises a
`HwnasError` saying how to install it when it is missing; `compiler_command`
gives the exact command line so a user can run it elsewhere.

`parse_log` reads the console output (and the `*_edgetpu.log` operation log,
which has the same operator table) of compiler versions 2.1, 15 and 16,
including logs cut short: every field it cannot find is None.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any, Sequence

from hwnas import errors

COMPILER = "edgetpu_compiler"

INSTALL_HINT = (
    "install it on x86-64 Debian/Ubuntu from the Coral apt repository: "
    "echo 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable "
    "main' | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list && "
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo "
    "apt-key add - && sudo apt-get update && sudo apt-get install "
    "edgetpu-compiler (see https://coral.ai/docs/edgetpu/compiler)")

RUNTIME_HINT = (
    "install the Edge TPU runtime (Coral apt repository package "
    "libedgetpu1-std, see https://coral.ai/docs/accelerator/get-started) and "
    "connect a Coral device")

STATUS_MAPPED = "Mapped to Edge TPU"

_UNITS = {"B": 1, "KIB": 1024, "MIB": 1024 ** 2, "GIB": 1024 ** 3,
          "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


@dataclasses.dataclass(frozen=True)
class OperatorRow:
  """One row of the compiler's operator table."""

  op: str
  count: int
  status: str

  @property
  def mapped(self) -> bool:
    return self.status.startswith(STATUS_MAPPED)


@dataclasses.dataclass(frozen=True)
class CompileResult:
  """What one `edgetpu_compiler` run reported. Unknown fields are None.

  Sizes are bytes (the compiler prints B/KiB/MiB with two decimals, so they
  are exact to ~0.5% only). `on_chip_remaining_bytes` is what compiler 2.x
  calls "available".
  """

  compiler_version: str | None = None
  succeeded: bool = False
  compile_ms: int | None = None
  input_model: str | None = None
  input_size_bytes: int | None = None
  output_model: str | None = None
  output_size_bytes: int | None = None
  on_chip_used_bytes: int | None = None
  on_chip_remaining_bytes: int | None = None
  off_chip_bytes: int | None = None
  num_subgraphs: int | None = None
  total_ops: int | None = None
  operation_log: str | None = None
  ops_on_edgetpu: int | None = None
  ops_on_cpu: int | None = None
  operators: tuple[OperatorRow, ...] = ()
  fallback_warning: bool = False
  error_lines: tuple[str, ...] = ()
  log_path: str | None = None

  @property
  def all_mapped(self) -> bool | None:
    """Whether every operator runs on the Edge TPU in one subgraph.

    False on any evidence of CPU fallback (the compiler's warning, a CPU
    count above 0, an unmapped table row, several subgraphs); True when the
    log shows a successful compile and gets past the summary without such
    evidence; None when the log is cut too early to tell.
    """
    if (self.fallback_warning or (self.ops_on_cpu or 0) > 0 or
        any(not r.mapped for r in self.operators) or
        (self.num_subgraphs or 1) > 1):
      return False
    if not self.succeeded:
      return None if not self.error_lines else False
    if self.ops_on_cpu == 0 or self.operation_log is not None:
      return True
    return None

  @property
  def unmapped(self) -> tuple[OperatorRow, ...]:
    return tuple(r for r in self.operators if not r.mapped)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["operators"] = [dataclasses.asdict(r) for r in self.operators]
    d["error_lines"] = list(self.error_lines)
    d["all_mapped"] = self.all_mapped
    return d


def parse_size(text: str) -> int:
  """'4.41MiB' -> bytes. Accepts B, KiB, MiB, GiB (and KB/MB/GB)."""
  m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMG]i?B|B)\s*", text,
                   re.IGNORECASE)
  if not m:
    raise ValueError(f"not a size: {text!r}")
  return int(round(float(m.group(1)) * _UNITS[m.group(2).upper()]))


_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (regex on a line, field, kind)
    (r"Edge TPU Compiler version\s+(\S+)", "compiler_version", "str"),
    (r"Model compiled successfully in\s+(\d+)\s*ms", "compile_ms", "int"),
    (r"Input model:\s*(.+)", "input_model", "str"),
    (r"Input size:\s*(.+)", "input_size_bytes", "size"),
    (r"Output model:\s*(.+)", "output_model", "str"),
    (r"Output size:\s*(.+)", "output_size_bytes", "size"),
    (r"On-chip memory used for caching model parameters:\s*(.+)",
     "on_chip_used_bytes", "size"),
    (r"On-chip memory (?:remaining|available) for caching model "
     r"parameters:\s*(.+)", "on_chip_remaining_bytes", "size"),
    (r"Off-chip memory used for streaming uncached model parameters:\s*(.+)",
     "off_chip_bytes", "size"),
    (r"Number of Edge TPU subgraphs:\s*(\d+)", "num_subgraphs", "int"),
    (r"Total number of operations:\s*(\d+)", "total_ops", "int"),
    (r"Operation log:\s*(.+)", "operation_log", "str"),
    (r"Number of operations that will run on Edge TPU:\s*(\d+)",
     "ops_on_edgetpu", "int"),
    (r"Number of operations that will run on CPU:\s*(\d+)", "ops_on_cpu",
     "int"),
)
_COMPILED = tuple((re.compile(p), f, k) for p, f, k in _FIELDS)
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


def parse_log(text: str) -> CompileResult:
  """Parses `edgetpu_compiler` console output or its operation log.

  Args:
    text: the log text; may be cut anywhere.

  Returns:
    A `CompileResult`; fields the text does not show are None.
  """
  values: dict[str, Any] = {}
  rows: list[OperatorRow] = []
  error_lines: list[str] = []
  in_table = False
  for raw in text.splitlines():
    line = raw.strip()
    if not line:
      continue
    if re.match(r"Operator\s+Count\s+Status", line):
      in_table = True
      continue
    if in_table:
      m = _ROW.match(line)
      if m:
        rows.append(OperatorRow(m.group(1), int(m.group(2)), m.group(3)))
        continue
      in_table = False
    for regex, field, kind in _COMPILED:
      m = regex.search(line)
      if m and field not in values:
        value = m.group(1).strip()
        try:
          values[field] = (int(value) if kind == "int" else
                           parse_size(value) if kind == "size" else value)
        except ValueError:
          pass  # a cut or garbled value stays unknown
        break
    if "not all operations are supported" in line:
      values["fallback_warning"] = True
    if re.match(r"(ERROR|Error|Invalid|Internal compiler error)\b", line) or (
        "Compilation failed" in line):
      error_lines.append(line)
  succeeded = "compile_ms" in values or bool(
      re.search(r"Compilation succeeded|Model compiled successfully", text))
  return CompileResult(succeeded=succeeded, operators=tuple(rows),
                       error_lines=tuple(error_lines), **values)


def find_compiler() -> str | None:
  """Path of `edgetpu_compiler` on PATH, or None."""
  return shutil.which(COMPILER)


def compiler_command(tflite_path: str | os.PathLike[str],
                     out_dir: str | os.PathLike[str], *,
                     compiler: str = COMPILER,
                     extra_args: Sequence[str] = ()) -> list[str]:
  """The exact `edgetpu_compiler` command line `compile_model` runs.

  `-s` prints the operator table, `-o` sets the output directory (the
  compiled model is `<stem>_edgetpu.tflite` there, next to `<stem>_edgetpu.log`).
  """
  return [str(compiler), "-s", "-o", str(out_dir), *map(str, extra_args),
          str(tflite_path)]


def compile_model(tflite_path: str | os.PathLike[str],
                  out_dir: str | os.PathLike[str], *,
                  extra_args: Sequence[str] = (),
                  timeout_s: float = 600.0) -> CompileResult:
  """Compiles a full-int8 `.tflite` for the Edge TPU.

  The console output is saved as `<out_dir>/<stem>_edgetpu_compiler.txt`
  (its path is in the result's `log_path`).

  Raises:
    HwnasError: the compiler is not installed, the model file is missing,
      or the compiler fails (with its error line).
  """
  compiler = find_compiler()
  if compiler is None:
    raise errors.HwnasError(f"{COMPILER} is not installed (not on PATH); fix: "
                            f"{INSTALL_HINT}")
  src = pathlib.Path(tflite_path)
  if not src.is_file():
    raise errors.HwnasError(f"{src}: no such TFLite file to compile")
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  cmd = compiler_command(src, out, compiler=compiler, extra_args=extra_args)
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
  except subprocess.TimeoutExpired:
    raise errors.HwnasError(f"{src}: {COMPILER} did not finish in "
                            f"{timeout_s:.0f} s") from None
  text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
  log_path = out / f"{src.stem}_edgetpu_compiler.txt"
  log_path.write_text(text)
  result = dataclasses.replace(parse_log(text), log_path=str(log_path))
  if proc.returncode != 0 or not result.succeeded:
    detail = (result.error_lines[0] if result.error_lines else
              (text.strip().splitlines() or ["no output"])[-1])
    raise errors.HwnasError(f"{src}: {COMPILER} failed (exit "
                            f"{proc.returncode}): {detail}; full log: {log_path}")
  return result


def _runtime_library() -> str:
  return {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib",
          "win32": "edgetpu.dll"}.get(sys.platform, "libedgetpu.so.1")


def load_delegate(options: dict[str, str] | None = None, *,
                  library: str | None = None):
  """Loads the Edge TPU delegate for `ai_edge_litert.interpreter`.

  Pass the result in `experimental_delegates=[...]` (or to
  `hwnas.tflite.Runner(..., delegates=[...])`) to run an `_edgetpu.tflite`.

  Raises:
    HwnasError: the runtime library or the device is missing.
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  lib = library or _runtime_library()
  try:
    # Probe the library first: LiteRT's Delegate raises from __del__ when
    # its constructor fails to open it.
    ctypes.CDLL(lib)
    return litert.load_delegate(lib, options or {})
  except (ValueError, OSError, RuntimeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    raise errors.HwnasError(f"cannot load the Edge TPU delegate {lib} "
                            f"({first}); fix: {RUNTIME_HINT}") from None
