"""Edge TPU support: the operator table, the compiler and the runtime.

Nothing here needs the Coral toolchain to import; `compile_model` and
`load_delegate` raise a `HwnasError` with install instructions when it is
missing.
"""

from hwnas.edgetpu.compiler import (CompileResult, OperatorRow,
                                    compile_model, compiler_command,
                                    find_compiler, load_delegate, parse_log,
                                    parse_size)
from hwnas.edgetpu.ops import (EDGETPU_OPS, KNOWN_UNSUPPORTED, OpsReport,
                               check_ops, is_mapped)

__all__ = [
    "CompileResult", "OperatorRow", "compile_model", "compiler_command",
    "find_compiler", "load_delegate", "parse_log", "parse_size",
    "EDGETPU_OPS", "KNOWN_UNSUPPORTED", "OpsReport", "check_ops", "is_mapped",
]
