"""Export: a searched architecture (or any network spec) becomes a
standalone Flax model, a SavedModel and TFLite float/int8 files, with
checks (TFLite vs Flax, int8 accuracy drop, measured vs predicted latency,
Edge TPU operator mapping) and a report.

>>> # from hwnas import export
>>> # report = export.export_arch("best.json", "runs/supernet", "out/best",
>>> #                             table="edgetpu/tiny")
>>> # net, spec = export.load_exported("out/best")
"""

from hwnas.export.flax_io import load_exported, load_spec, restore_flax, save_flax
from hwnas.export.pipeline import (FORMATS, ExportOptions, export_arch,
                                   export_network, export_spec,
                                   export_supernet, parse_formats)

__all__ = [
    "FORMATS", "ExportOptions", "export_arch", "export_network",
    "export_spec", "export_supernet", "load_exported", "load_spec", "parse_formats",
    "restore_flax", "save_flax",
]
