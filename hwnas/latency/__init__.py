"""Latency lookup tables: format, prediction, coverage, measurement, import.

Importing this package loads no JAX or TensorFlow: backends import them
when they build a model. `fidelity` (validate) and `ofa_import` are
submodules.

>>> from hwnas import latency, space, arch
>>> # table = latency.load_table("xla/tiny")
>>> # cost = latency.make_cost_fn(table, space.load("tiny"))
"""

from hwnas.latency.backends import (Backend, Prepared, Timing, backend_names,
                                    get_backend, register_backend)
from hwnas.latency.measure import MeasureResult, measure_space
from hwnas.latency.space_layers import (
    Origin, describe_missing, enumerate_layers, layer_origins, make_cost_fn,
    slot_layers)
from hwnas.latency.table import (
    SCHEMA, Entry, LatencyTable, TableError, from_dict, list_tables,
    load_table, make_header, network_model, new_table,
    register_network_model, resolve_table_path)

__all__ = [
    "Backend", "MeasureResult", "Prepared", "SCHEMA", "Entry", "LatencyTable",
    "Origin", "TableError", "Timing", "backend_names", "get_backend",
    "measure_space", "register_backend",
    "describe_missing", "enumerate_layers", "from_dict", "layer_origins",
    "list_tables", "load_table", "make_cost_fn", "make_header",
    "network_model", "new_table", "register_network_model",
    "resolve_table_path", "slot_layers",
]
