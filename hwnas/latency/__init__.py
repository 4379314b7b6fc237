"""Latency lookup tables: format, prediction, coverage, measurement, import.

Importing this package loads no JAX or TensorFlow: backends import them
when they build a model. `fidelity` (validate), `ofa_import` and
`energy_table` (energy tables in µJ: `hwnas table energy`) are submodules.

The two name look-ups of the package are explicit mappings, re-exported
here, and nothing else registers anything: `BACKENDS` (`hwnas table
measure --backend NAME`, in `backend_kinds`) and `NETWORK_MODELS` (the
`kind` a table header's `network_model` names: whole-network terms added
to the per-layer sum, and the prediction's uncertainty band where the kind
has one; in `network_models`, which imports no table code, so `table` can
use it without an import cycle).

>>> from hwnas import latency, space, arch
>>> # table = latency.load_table("xla/tiny")
>>> # cost = latency.make_cost_fn(table, space.load("tiny"))
"""

from hwnas.latency.backend_kinds import BACKENDS, backend_names, get_backend
from hwnas.latency.backends import Backend
from hwnas.latency.measure import MeasureResult, measure_space
from hwnas.latency.network_models import (NETWORK_MODELS, NetworkModel,
                                          network_model)
from hwnas.latency.space_layers import (
    Origin, describe_missing, enumerate_layers, layer_origins, make_band_fn,
    make_cost_fn, slot_layers)
from hwnas.latency.table import (LatencyTable, from_dict, list_tables,
                                 load_table, new_table, resolve_table_path)
from hwnas.latency.table_schema import SCHEMA, Entry, TableError, make_header
from hwnas.latency.timing import Prepared, Timing

__all__ = [
    "BACKENDS", "NETWORK_MODELS", "Backend", "MeasureResult",
    "NetworkModel", "Prepared", "SCHEMA", "Entry", "LatencyTable", "Origin",
    "TableError", "Timing", "backend_names", "get_backend",
    "measure_space", "describe_missing", "enumerate_layers", "from_dict",
    "layer_origins", "list_tables", "load_table", "make_band_fn",
    "make_cost_fn", "make_header", "network_model", "new_table", "resolve_table_path",
    "slot_layers",
]
