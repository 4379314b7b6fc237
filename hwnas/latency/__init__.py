"""Latency lookup tables: format, prediction, coverage, measurement, import.

Importing this package loads no JAX or TensorFlow: backends import them
when they build a model. `fidelity` (validate) and `ofa_import` are
submodules.

The two name look-ups of the package are the explicit mappings below, and
nothing else registers anything: `BACKENDS` (`hwnas table measure --backend
NAME`) and `NETWORK_MODELS` (the `kind` a table header's `network_model`
names: whole-network terms added to the per-layer sum, and the
prediction's uncertainty band where the kind has one).

>>> from hwnas import latency, space, arch
>>> # table = latency.load_table("xla/tiny")
>>> # cost = latency.make_cost_fn(table, space.load("tiny"))
"""

from typing import Any, Callable, Mapping, NamedTuple

from hwnas import errors
from hwnas.edgetpu import cost_model as _edgetpu_cost_model
from hwnas.latency import backends as _backends
from hwnas.latency import edgetpu_table as _edgetpu_table
from hwnas.latency.backends import Backend
from hwnas.latency.measure import MeasureResult, measure_space
from hwnas.latency.space_layers import (
    Origin, describe_missing, enumerate_layers, layer_origins, make_cost_fn,
    slot_layers)
from hwnas.latency.table import (LatencyTable, from_dict, list_tables,
                                 load_table, new_table, resolve_table_path)
from hwnas.latency.table_schema import SCHEMA, Entry, TableError, make_header
from hwnas.latency.timing import Prepared, Timing
from hwnas.netspec import NetSpec

# `--backend NAME` -> factory(**options) returning a `Backend`.
BACKENDS: Mapping[str, Callable[..., Backend]] = {
    "xla": _backends.XlaBackend,
    "litert": lambda **kw: _backends.LiteRTBackend(int8=False, **kw),
    "litert-int8": lambda **kw: _backends.LiteRTBackend(int8=True, **kw),
    "edgetpu": _backends.EdgeTpuBackend,
    _edgetpu_cost_model.MODEL_NAME: _edgetpu_table.EdgeTPUModelBackend,
}

NetworkModelFn = Callable[[NetSpec, Mapping[str, Any]], Mapping[str, float]]


class NetworkModel(NamedTuple):
  """Whole-network terms of a table kind, and optionally its band.

  `terms(spec, params) -> {term: ms}` adds to the per-layer sum;
  `band(spec, network_model, central_ms) -> (low, high) | None` is the
  uncertainty band of the prediction (None: the kind has none).
  """

  terms: NetworkModelFn
  band: Callable[..., Any] | None = None


# header.network_model.kind -> its NetworkModel.
NETWORK_MODELS: Mapping[str, NetworkModel] = {
    _edgetpu_cost_model.MODEL_NAME: NetworkModel(
        _edgetpu_cost_model.network_terms, _edgetpu_table.network_band),
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


def network_model(kind: str, path: str = "") -> NetworkModel:
  """The NetworkModel of a table header's `network_model.kind`."""
  if kind not in NETWORK_MODELS:
    raise TableError(
        f"{path or '<table>'}: header.network_model.kind: {kind!r} is not a "
        f"known network model; known: {', '.join(sorted(NETWORK_MODELS))} "
        "(hwnas.latency.NETWORK_MODELS)")
  return NETWORK_MODELS[kind]


__all__ = [
    "BACKENDS", "NETWORK_MODELS", "Backend", "MeasureResult",
    "NetworkModel", "Prepared", "SCHEMA", "Entry", "LatencyTable", "Origin",
    "TableError", "Timing", "backend_names", "get_backend",
    "measure_space", "describe_missing", "enumerate_layers", "from_dict",
    "layer_origins", "list_tables", "load_table", "make_cost_fn",
    "make_header", "network_model", "new_table", "resolve_table_path",
    "slot_layers",
]
