"""Export: a searched architecture (or any network spec) becomes a
standalone Flax model, a SavedModel and TFLite float/int8 files, with
checks (TFLite vs Flax, int8 accuracy drop, measured vs predicted latency,
Edge TPU operator mapping) and a report, written atomically into one
directory.

>>> # from hwnas import export
>>> # report = export.export_arch("best.json", "runs/supernet", "out/best",
>>> #                             table="edgetpu/tiny")
>>> # net, spec = export.load_exported("out/best")

This package is the one facade. Behind it:

* `hwnas.export.sources`: the entry points, one per source (`export_arch`
  from a supernet workdir, `export_supernet` from an in-memory supernet,
  `export_spec` from a `NetSpec`, `export_network` from a built model);
  each validates the output directory, the architecture and the dataset
  once and passes the typed values down;
* `hwnas.export.options`: `ExportOptions`, the export directory's file
  names, the checked output directory (`OutDir`), the atomic staging
  directory;
* `hwnas.export.writer`: `write`, which writes every artifact, runs the
  checks (the int8 gate among them) and writes the report;
* `hwnas.export.flax_io`: the standalone Flax checkpoint and reading an
  export directory back.
"""

from hwnas.export.flax_io import (load_exported, load_spec, restore_flax,
                                  save_flax)
from hwnas.export.options import (FORMATS, ExportOptions, OutDir, check_out_dir,
                                  parse_formats)
from hwnas.export.sources import (export_arch, export_network, export_spec,
                                  export_supernet)

__all__ = [
    "FORMATS", "ExportOptions", "OutDir", "check_out_dir", "export_arch",
    "export_network", "export_spec", "export_supernet", "load_exported",
    "load_spec", "parse_formats", "restore_flax", "save_flax",
]
