"""The row-stationary energy model as a table: `hwnas table energy`.

`make_table(space, acc)` writes an `estimated` table in the latency-table
format whose header says `units: uJ` and whose entries give each layer's
energy per image (`energy_uj`), with its split by memory level (DRAM /
GLB / NoC / RF / MAC, µJ), MACs and cycles in `extras`. The header's
provenance names the model, the accelerator description and its sha256,
so a search or a report repeats which hardware the figures are for.
Energy adds up over layers (each convolution's data goes through DRAM),
so the table needs no whole-network term and `make_cost_fn` takes its
fast per-position path.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

from hwnas import energy
from hwnas.latency import space_layers, table_schema
from hwnas.latency import table as tbl
from hwnas.netspec import NetSpec

MODEL_NAME = "eyeriss-rs"
MODEL_VERSION = "1"
LEVELS = energy.LEVELS


def _header(acc: energy.Accelerator, spaces: list[str],
            command: str) -> dict[str, Any]:
  return table_schema.make_header(
      device=f"{acc.name} ({acc.pe_rows}x{acc.pe_cols} PEs, "
      f"{acc.glb_kb:g} kB global buffer, {acc.word_bits}-bit, estimated)",
      backend=MODEL_NAME, runtime=MODEL_NAME, runtime_version=MODEL_VERSION,
      precision="int8" if acc.word_bits <= 8 else "int16",
      batch_size=acc.batch, threads=1, warmup=0, repeats=0, spaces=spaces,
      units="uJ",
      provenance={
          "kind": "estimated", "model": MODEL_NAME, "version": MODEL_VERSION,
          "what": "energy per image (µJ) of a row-stationary dataflow: "
                  "accesses at DRAM / global buffer / NoC / register file "
                  "x per-access cost + MACs x MAC cost (docs/energy.md)",
          "accelerator": acc.to_dict(),
          "accelerator_sha256": acc.sha256(),
          "latency": "extras.cycles: a rough second estimate from PE "
                     "utilisation (no DRAM stalls), not a timing model",
          "command": command},
      notes="estimated energy, not measured; the model's check against "
            "the Eyeriss chip is in benchmarks/RESULTS.md")


def make_table(space, acc: energy.Accelerator | None = None, *,
               path: str = "", command: str = "") -> tbl.LatencyTable:
  """An estimated energy table (µJ) for every layer reachable in `space`.

  Args:
    space: a hwnas.space.SearchSpace.
    acc: the accelerator (Eyeriss v1 when None).
    path: where it will be saved (recorded in the value only).
    command: the command that made it (recorded in the provenance).

  Returns:
    A LatencyTable with `units == 'uJ'` (not yet saved).
  """
  acc = acc or energy.DEFAULT
  entries = []
  for layer in sorted(space_layers.enumerate_layers(space)):
    le = energy.layer_energy(layer, acc)
    entries.append(tbl.Entry(layer, le.total_uj, extras=le.to_extras(),
                             units="uJ"))
  cmd = command or (f"hwnas table energy --space {space.name} --out "
                    f"{path or 'T'}")
  return tbl.new_table(_header(acc, [space.id], cmd), entries, path)


def write_table(space, out: str, *, accelerator: str | None = None,
                command: str = "") -> tbl.LatencyTable:
  """`hwnas table energy`: builds and saves the table of `space`."""
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  if isinstance(space, str):
    space = space_lib.load(space)
  acc = energy.load_accelerator(accelerator or "eyeriss-v1")
  t = make_table(space, acc, path=str(out), command=command)
  t.save(out)
  return t


def accelerator_of(table) -> energy.Accelerator:
  """The accelerator an energy table was made for (from its header)."""
  p = table.provenance
  if table.units != "uJ" or p.get("model") != MODEL_NAME:
    raise table_schema.TableError(
        f"{table.path or '<table>'}: not an energy table of {MODEL_NAME} "
        "(make one with `hwnas table energy`)")
  return energy.accelerator.from_dict(p["accelerator"],
                                      path=f"{table.path}: provenance")


def breakdown(table, spec: NetSpec) -> dict[str, Any]:
  """Per-level and per-layer energy of `spec` from an energy table.

  Layers the table has are read from its entries; the split by level and
  the cycles come from the entries' extras.

  Returns:
    {"total_uj", "by_level_uj": {level: µJ}, "cycles", "macs",
     "layers": [{"key", "uj", level_uj..., "cycles"}], "provenance"}.
  """
  rows, by_level = [], {lv: 0.0 for lv in LEVELS}
  cycles = 0.0
  for layer in spec.layers:
    uj = table.latency(layer)   # TableError naming the missing layer
    key = layer.key()
    ex = table.entries[key].extras
    row = {"key": key, "uj": uj, "cycles": ex.get("cycles", 0.0)}
    for lv in LEVELS:
      row[lv] = float(ex.get(f"{lv}_uj", 0.0))
      by_level[lv] += row[lv]
    cycles += row["cycles"]
    rows.append(row)
  acc = table.provenance.get("accelerator", {})
  return {"total_uj": math.fsum(r["uj"] for r in rows),
          "by_level_uj": by_level, "cycles": cycles,
          "layers": rows, "table": str(table.path),
          "provenance": table.describe(),
          "accelerator_sha256": table.provenance.get("accelerator_sha256"),
          "mac_pj": acc.get("mac_pj")}


def default_out(space_name: str) -> pathlib.Path:
  from hwnas import resources  # pylint: disable=g-import-not-at-top
  return resources.latency_tables_dir() / "energy" / f"{space_name}.json"
