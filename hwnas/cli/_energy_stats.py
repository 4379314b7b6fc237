"""Energy lines of `hwnas arch stats --table <energy table>`: the total,
its split by memory level and the per-layer energies."""

from __future__ import annotations

from typing import Any

from hwnas.netspec import NetSpec


def is_energy(table_path: str) -> bool:
  from hwnas.latency import load_table  # pylint: disable=g-import-not-at-top
  return load_table(table_path).units == "uJ"


def predict(table_path: str, spec: NetSpec) -> dict[str, Any]:
  """`hwnas.latency.energy_table.breakdown` of `spec` (JSON-ready)."""
  # pylint: disable=g-import-not-at-top
  from hwnas.latency import energy_table, load_table
  return energy_table.breakdown(load_table(table_path), spec)


def print_energy(d: dict[str, Any]) -> None:
  total = d["total_uj"]
  print(f"  energy: {total:.2f} µJ per image predicted by {d['table']}")
  print(f"    {d['provenance']}")
  split = ", ".join(f"{lv.upper() if lv != 'mac' else 'MAC'} {v:.2f} "
                    f"({100 * v / total:.0f}%)" if total else f"{lv} 0"
                    for lv, v in d["by_level_uj"].items())
  print(f"    by level (µJ): {split}")
  print(f"    rough latency: {d['cycles']:,.0f} cycles at full PE "
        "utilisation of the mapping, no DRAM stalls (a second estimate)")
  print(f"    {'#':>3s} {'layer':58s} {'µJ':>9s} {'DRAM':>6s} {'RF':>6s}")
  for i, r in enumerate(d["layers"]):
    uj = r["uj"] or 1e-12
    print(f"    {i:3d} {r['key']:58s} {r['uj']:9.3f} "
          f"{100 * r['dram'] / uj:5.0f}% {100 * r['rf'] / uj:5.0f}%")
