"""Shift blocks (issue 26): accuracy and energy of the largest tiny_shift
network with all-multiply against all-shift blocks.

  PYTHONPATH=$PWD python benchmarks/bench_shift.py [--steps 300] [--seed 0]

Trains both networks from scratch with `hwnas train` on the offline
default data (digits, upsampled to the architecture's 32 px), one seed,
the default recipe with `--steps`, and reads their test accuracy from
`result.json`; the energy per image of each comes from the row-stationary
model on Eyeriss v1 (`ops.shift = 0.127`, docs/energy.md). Writes
benchmarks/results/shift.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from hwnas import arch, counting, energy, space

OUT = pathlib.Path(__file__).with_name("results") / "shift.md"


def _all(a, op):
  return dataclasses.replace(a, blocks=tuple(
      tuple(dataclasses.replace(b, op=op) if b.type != "skip" else b
            for b in bs) for bs in a.blocks))


def _train(a, workdir: pathlib.Path, steps: int, seed: int) -> dict:
  f = workdir.parent / f"{workdir.name}.json"
  f.write_text(arch.to_json(a))
  cmd = [sys.executable, "-m", "hwnas", "train", "--arch", str(f),
         "--workdir", str(workdir), "--steps", str(steps), "--seed",
         str(seed), "--no-progress", "--set",
         f"train.checkpoint_every={steps}"]
  subprocess.run(cmd, check=True, env=dict(os.environ))
  return json.loads((workdir / "result.json").read_text())


def _cpu() -> str:
  try:
    for line in open("/proc/cpuinfo", encoding="utf-8"):
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown CPU"


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workdir", default="")
  args = p.parse_args()
  s = space.load("tiny_shift")
  acc = energy.load_accelerator("eyeriss-v1")
  root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="shift_"))
  root.mkdir(parents=True, exist_ok=True)
  rows = []
  for op in ("mult", "shift"):
    a = _all(arch.largest(s), op)
    spec = arch.decode(s, a)
    res = _train(a, root / f"w_{op}", args.steps, args.seed)
    les = energy.network_energy(spec, acc)
    c = counting.count(spec)
    rows.append({"op": op, "arch": arch.to_string(a),
                 "test": res["test/accuracy"], "val": res.get("val/accuracy"),
                 "uj": sum(l.total_uj for l in les),
                 "mac_uj": sum(l.by_level_uj["mac"] for l in les),
                 "macs": c.macs, "shift_adds": c.shift_adds})
  m, sh = rows
  lines = [
      "# Shift blocks: all-multiply vs all-shift (largest tiny_shift)", "",
      f"Command: `PYTHONPATH=$PWD python benchmarks/bench_shift.py "
      f"--steps {args.steps} --seed {args.seed}` (one seed; `hwnas train` "
      "defaults otherwise: batch 64, SGD-Nesterov, cosine; digits: 144 "
      "validation and 360 test images).", "",
      f"Ran {datetime.date.today()} on {_cpu()} ({os.cpu_count()} logical "
      f"cores), load average {os.getloadavg()[0]:.0f} when written (about "
      "20 while the trainings ran; shared machine; "
      "no timings are reported here). Energy: row-stationary model, "
      "Eyeriss v1, `ops.shift = 0.127` (docs/energy.md).", "",
      "| blocks | architecture | test acc. | val acc. | MACs | shift-adds "
      "| energy µJ | of it MAC level µJ |",
      "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['op']} | `{r['arch']}` | {r['test']:.4f} | "
        f"{r['val'] if r['val'] is None else format(r['val'], '.4f')} | "
        f"{r['macs']:,} | {r['shift_adds']:,} | {r['uj']:.1f} | "
        f"{r['mac_uj']:.1f} |")
  lines += ["", f"Accuracy difference (mult - shift): "
            f"{100 * (m['test'] - sh['test']):+.2f} points; energy saved by "
            f"all-shift: {100 * (1 - sh['uj'] / m['uj']):.1f}% "
            f"({m['uj'] - sh['uj']:.1f} µJ per image).", ""]
  OUT.write_text("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
