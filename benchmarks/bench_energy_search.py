"""Worked example of docs/energy.md: the edgetpu space searched under a
latency target, an energy target, both, and on a latency-energy front.

  PYTHONPATH=$PWD python benchmarks/bench_energy_search.py [--budget 300]

Costs: the shipped estimated tables `edgetpu-usb3/edgetpu` (ms, Edge TPU
cost model) and `energy/edgetpu` (µJ, row-stationary model on Eyeriss v1).
Accuracy: a MACs-based proxy (0.5 + 0.05 ln MMACs), not a trained network,
so every search maximises compute under its cost budget and the blocks it
picks show which blocks give the most MACs per millisecond or per
microjoule. Writes benchmarks/results/energy_search.md and pareto.png
(energy on the x axis) under benchmarks/results/energy_search/.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import tempfile

import numpy as np

from hwnas import arch, counting, space
from hwnas.latency import energy_table, load_table, make_cost_fn
from hwnas.search import run

OUT = pathlib.Path(__file__).with_name("results")


def _macs(s, a) -> float:
  return counting.macs(arch.decode(s, a)) / 1e6


def _blocks(s, a) -> dict[str, float]:
  bs = [b for _, _, b in a.active_blocks()]
  fused = sum(b.type == "fused_ibn" for b in bs)
  return {"blocks": len(bs), "fused_share": fused / max(1, len(bs)),
          "kernel": float(np.mean([b.kernel for b in bs])),
          "expansion": float(np.mean([b.expansion for b in bs]))}


def _pair_ratios(s, lat, en) -> dict[str, float]:
  """fused_ibn / ibn cost ratios over identical block positions."""
  ibn = {}
  for e in en.entries.values():
    l = e.layer
    if l.type == "ibn":
      ibn[(l.input_size, l.in_channels, l.out_channels, l.mid_channels,
           l.kernel, l.stride, l.se_channels, l.activation)] = l
  r_uj, r_ms, r_ujmac = [], [], []
  for e in en.entries.values():
    l = e.layer
    if l.type != "fused_ibn" or not l.has_expand:
      continue
    k = (l.input_size, l.in_channels, l.out_channels, l.mid_channels,
         l.kernel, l.stride, l.se_channels, l.activation)
    if k in ibn and l in lat and ibn[k] in lat:
      i = ibn[k]
      r_uj.append(en.latency(l) / en.latency(i))
      r_ms.append(lat.latency(l) / lat.latency(i))
      mf = counting.layer_counts(l).macs
      mi = counting.layer_counts(i).macs
      r_ujmac.append((en.latency(l) / mf) / (en.latency(i) / mi))
  med = lambda v: float(np.median(v))
  return {"pairs": len(r_uj), "uj": med(r_uj), "ms": med(r_ms),
          "uj_per_mac": med(r_ujmac)}


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--budget", type=int, default=300)
  args = ap.parse_args()
  s = space.load("edgetpu")
  lat, en = load_table("edgetpu-usb3/edgetpu"), load_table("energy/edgetpu")
  costs = {"latency_ms": make_cost_fn(lat, s),
           "energy_uj": make_cost_fn(en, s)}
  rng = np.random.default_rng(0)
  sample = [arch.sample(rng, s) for _ in range(500)]
  t_ms = float(np.quantile([costs["latency_ms"](a) for a in sample], 0.3))
  t_uj = float(np.quantile([costs["energy_uj"](a) for a in sample], 0.3))
  cache: dict = {}
  proxy = lambda archs: [0.5 + 0.05 * math.log(cache.setdefault(
      a, _macs(s, a))) for a in archs]
  runs = {
      "latency target": dict(cost_fns=costs, target={"latency_ms": t_ms}),
      "energy target": dict(cost_fns={"energy_uj": costs["energy_uj"],
                                      "latency_ms": costs["latency_ms"]},
                            target={"energy_uj": t_uj}),
      "both targets": dict(cost_fns=costs, target={"latency_ms": t_ms,
                                                   "energy_uj": t_uj}),
      "pareto (energy, latency)": dict(
          cost_fns={"energy_uj": costs["energy_uj"],
                    "latency_ms": costs["latency_ms"]}, objective="pareto"),
  }
  out_dir = OUT / "energy_search"
  out_dir.mkdir(parents=True, exist_ok=True)
  lines = ["# Energy-aware search on the edgetpu space "
           "(bench_energy_search.py)", "",
           f"`PYTHONPATH=$PWD python benchmarks/bench_energy_search.py "
           f"--budget {args.budget}`; load average {os.getloadavg()[0]:.1f}."
           " Costs: `edgetpu-usb3/edgetpu` (ms, estimated Edge TPU model) and "
           "`energy/edgetpu` (µJ per image, estimated row-stationary model "
           "on Eyeriss v1). Accuracy: a MACs-based proxy (0.5 + 0.05 ln "
           "MMACs), so each search maximises MACs within its budget. "
           f"Targets: the 30% quantile of 500 random architectures, "
           f"{t_ms:.2f} ms and {t_uj:.0f} µJ.", "",
           "| run | best: MMACs | ms | µJ | fused share | mean kernel | "
           "mean expansion | front size | front fused share |",
           "|---|---|---|---|---|---|---|---|---|"]
  levels = ["", "Energy of each best architecture by level, and the "
            "architecture:", "", "| run | DRAM | GLB | NoC | RF | MAC | "
            "architecture |", "|---|---|---|---|---|---|---|"]
  with tempfile.TemporaryDirectory() as tmp:
    for i, (name, kw) in enumerate(runs.items()):
      wd = pathlib.Path(tmp) / str(i)
      r = run(s, proxy, budget=args.budget, workdir=wd, progress=False,
              plot=kw.get("objective") == "pareto", seed=0, **kw)
      b = r.best.arch if r.best is not None else None
      front = [_blocks(s, x.arch)["fused_share"] for x in r.front]
      st = _blocks(s, b) if b is not None else {}
      lines.append(
          f"| {name} | {_macs(s, b):.0f} | {costs['latency_ms'](b):.2f} | "
          f"{costs['energy_uj'](b):.0f} | {st['fused_share']:.2f} | "
          f"{st['kernel']:.1f} | {st['expansion']:.1f} | {len(front)} | "
          f"{np.mean(front):.2f} |" if b is not None else
          f"| {name} | none met the target | | | | | | {len(front)} | |")
      if kw.get("objective") == "pareto":
        shutil.copy(wd / "pareto.png", out_dir / "pareto.png")
      elif b is not None:
        split = energy_table.breakdown(en, arch.decode(s, b))
        tot = split["total_uj"]
        levels.append(f"| {name} | " + " | ".join(
            f"{100 * v / tot:.0f}%" for v in split["by_level_uj"].values())
            + f" | {arch.to_string(b)} |")
  lines += levels
  pr = _pair_ratios(s, lat, en)
  lines += ["", f"Same position, same shapes, fused_ibn against ibn "
            f"({pr['pairs']} pairs of table entries, medians): energy "
            f"x{pr['uj']:.2f}, Edge TPU latency x{pr['ms']:.2f}, energy per "
            f"MAC x{pr['uj_per_mac']:.2f}.", "",
            "pareto.png (energy on the x axis): "
            "benchmarks/results/energy_search/pareto.png"]
  text = "\n".join(lines) + "\n"
  (OUT / "energy_search.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()
