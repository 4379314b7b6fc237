"""Latency lookup tables: format, prediction, coverage, measurement, import.

The light part (format, prediction, coverage, cost functions) imports no
JAX or TensorFlow; `hwnas.latency.measure`, `.fidelity` and `.backends`
import them when used.

>>> from hwnas import latency, space, arch
>>> # table = latency.load_table("xla/tiny")
>>> # cost = latency.make_cost_fn(table, space.load("tiny"))
"""

from hwnas.latency.space_layers import (
    Origin, describe_missing, enumerate_layers, layer_origins, make_cost_fn,
    slot_layers)
from hwnas.latency.table import (
    SCHEMA, Entry, LatencyTable, TableError, from_dict, list_tables,
    load_table, make_header, network_model, new_table,
    register_network_model, resolve_table_path)

__all__ = [
    "SCHEMA", "Entry", "LatencyTable", "Origin", "TableError",
    "describe_missing", "enumerate_layers", "from_dict", "layer_origins",
    "list_tables", "load_table", "make_cost_fn", "make_header",
    "network_model", "new_table", "register_network_model",
    "resolve_table_path", "slot_layers",
]
