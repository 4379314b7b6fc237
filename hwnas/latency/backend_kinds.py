"""Measurement backends by name: `hwnas table measure --backend NAME`.

`BACKENDS` is the one explicit name -> factory mapping (nothing registers
itself on import); `hwnas.latency` re-exports it. Factories take the
backend's keyword options and return a `hwnas.latency.backends.Backend`.
"""

from __future__ import annotations

from typing import Any, Callable

from hwnas import errors
from hwnas.edgetpu.cost_model import MODEL_NAME
from hwnas.latency import backends as _backends
from hwnas.latency import edgetpu_table as _edgetpu_table
from hwnas.latency.backends import Backend

# `--backend NAME` -> factory(**options) returning a `Backend`.
BACKENDS: dict[str, Callable[..., Backend]] = {
    "xla": _backends.XlaBackend,
    "litert": lambda **kw: _backends.LiteRTBackend(int8=False, **kw),
    "litert-int8": lambda **kw: _backends.LiteRTBackend(int8=True, **kw),
    "edgetpu": _backends.EdgeTpuBackend,
    MODEL_NAME: _edgetpu_table.EdgeTPUModelBackend,
}


def backend_names() -> list[str]:
  return sorted(BACKENDS)


def get_backend(name: str, **options: Any) -> Backend:
  """Creates backend `name` (HwnasError naming the choices if unknown)."""
  if name not in BACKENDS:
    raise errors.HwnasError(
        f"--backend {name!r} is unknown; available: "
        f"{', '.join(backend_names())}")
  return BACKENDS[name](**options)
