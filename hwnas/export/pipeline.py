"""Export a network: standalone Flax model, SavedModel, TFLite float/int8,
checks and a report, written atomically into one directory.

The work is split in three modules; this one gathers their entry points:

* `hwnas.export.options`: `ExportOptions`, the export directory's file
  names, validation of `--out` / `--formats`, the atomic staging directory;
* `hwnas.export.sources`: where the network and its weights come from
  (`export_arch` from a supernet workdir, `export_supernet` from an
  in-memory supernet, `export_spec` from a `NetSpec` with random or given
  weights);
* `hwnas.export.writer`: `export_network`, which writes every artifact, runs
  the checks (the int8 gate among them) and writes the report.
"""

from hwnas.export.options import (EDGETPU_DIR, FLOAT_TFLITE, FORMATS,
                                  INT8_TFLITE, SAVED_MODEL_DIR, ExportOptions,
                                  check_out_dir, parse_formats)
from hwnas.export.sources import (export_arch, export_spec, export_supernet,
                                  load_arch_for)
from hwnas.export.writer import export_network

__all__ = [
    "EDGETPU_DIR", "FLOAT_TFLITE", "FORMATS", "INT8_TFLITE",
    "SAVED_MODEL_DIR", "ExportOptions", "check_out_dir", "export_arch",
    "export_network", "export_spec", "export_supernet", "load_arch_for",
    "parse_formats",
]
