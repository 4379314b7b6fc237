"""Shift blocks (issue 26): what multiplication-free blocks buy.

  PYTHONPATH=$PWD python benchmarks/bench_shift.py [--steps 300] [--seed 0]
  PYTHONPATH=$PWD python benchmarks/bench_shift.py --stage search \
      --workdir /tmp/shift_search [--budget 150] [--seed 0] \
      [--objective constraint|reward] [--supernet-set val_fraction=0.3]

Stage `largest` (the default): accuracy and energy of the largest
tiny_shift network with all-multiply against all-shift blocks. Trains both
from scratch with `hwnas train` on the offline default data (digits,
upsampled to the architecture's 32 px), one seed, the default recipe with
`--steps`, and reads their test accuracy from `result.json`.

Stage `search`: does a search whose objective includes energy pick a mix
of shift and multiply blocks, and what does it save? Trains a tiny_shift
supernet with `hwnas supernet train` (config `tiny,ps_n2`, the recipe the
published results used,
digits; skipped when `--workdir` already holds it), then runs two searches
of `--budget` evaluations with the same energy target (`--target-uj`, by
default the median energy of 2000 random architectures of the space) on the
shipped `energy/tiny_shift` table: `hwnas search` over the whole space, and
the same search restricted to multiply blocks (the space with `ops:
[mult]`, evaluated by the same supernet). It then evaluates, with the same
supernet and validation split the search used: the winner, the winner
with every block multiplying (its twin: the same latency on every latency
table, which time a shift layer as its multiply equivalent), the winner
with every block shifting, the winner with each block's op flipped, and
`--pairs` random architectures both all-multiply and all-shift (the
supernet's view of what shifting costs in accuracy). The test split is not
used.

Energy everywhere: the row-stationary model on Eyeriss v1 (`ops.shift =
0.127`, docs/energy.md). Each stage writes its own section of
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

import numpy as np

from hwnas import arch, counting, energy, space

OUT = pathlib.Path(__file__).with_name("results") / "shift.md"
TITLE_LARGEST = "Shift blocks: all-multiply vs all-shift (largest tiny_shift)"
TITLE_SEARCH = ("Shift blocks: an energy-aware search ({objective}, seed "
                "{seed}) on a tiny_shift supernet (digits)")


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


def _write_section(title: str, lines: list[str]) -> None:
  """Replaces (or appends) the `## title` section of shift.md."""
  old = OUT.read_text() if OUT.exists() else ""
  parts = [p for p in ("\n" + old).split("\n## ") if p.strip()]
  body = "\n".join([title] + lines).rstrip() + "\n"
  kept = [body if p.split("\n", 1)[0] == title else p.rstrip() + "\n"
          for p in parts]
  if body not in kept:
    kept.append(body)
  OUT.write_text("\n".join("## " + p for p in kept))


def _host() -> str:
  return (f"Ran {datetime.date.today()} on {_cpu()} ({os.cpu_count()} "
          f"logical cores), load average {os.getloadavg()[0]:.0f} when "
          "written (shared machine; no timings are reported here).")


def stage_largest(args) -> None:
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
      "",
      f"Command: `PYTHONPATH=$PWD python benchmarks/bench_shift.py "
      f"--steps {args.steps} --seed {args.seed}` (one seed; `hwnas train` "
      "defaults otherwise: batch 64, SGD-Nesterov, cosine; digits: 144 "
      "validation and 360 test images).", "",
      _host() + " Energy: row-stationary model, "
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
  _write_section(TITLE_LARGEST, lines)
  print("\n".join(lines))


ENERGY = "energy/tiny_shift"
LATENCY = "edgetpu-usb3/tiny"   # estimated Edge TPU; shift reads mult entries


def _hwnas(argv: list[str]) -> None:
  print("+ hwnas " + " ".join(argv), flush=True)
  subprocess.run([sys.executable, "-m", "hwnas", *argv], check=True,
                 env=dict(os.environ))


def _mult_only(s):
  """`s` with every stage's ops choice reduced to multiply (same name and
  version: its architectures are the all-multiply ones of `s`)."""
  return dataclasses.replace(s, stages=tuple(
      dataclasses.replace(st, ops=("mult",)) for st in s.stages))


def _flip(a, s, j):
  blocks = [list(bs) for bs in a.blocks]
  b = blocks[s][j]
  blocks[s][j] = dataclasses.replace(
      b, op="mult" if b.op == "shift" else "shift")
  return dataclasses.replace(a, blocks=tuple(tuple(bs) for bs in blocks))


def _active(a):
  """(stage, slot) of the blocks that run (active, not skip)."""
  return [(s, j) for s, bs in enumerate(a.blocks) for j, b in enumerate(bs)
          if j < a.depths[s] and b.type != "skip"]


def _ops(a) -> str:
  return "; ".join(
      f"s{s + 1}: " + ", ".join(b.op for j, b in enumerate(bs)
                                if j < a.depths[s] and b.type != "skip")
      for s, bs in enumerate(a.blocks))


def _shift_share(a) -> float:
  act = _active(a)
  return sum(a.blocks[s][j].op == "shift" for s, j in act) / max(len(act), 1)


def _records(path: pathlib.Path) -> list[dict]:
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def stage_search(args) -> None:
  from hwnas import latency, pipeline  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  s = space.load("tiny_shift")
  root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="shift_s_"))
  root.mkdir(parents=True, exist_ok=True)
  sn = root / "supernet"
  train_argv = ["supernet", "train", "--space", "tiny_shift", "--dataset",
                "digits", "--config", "tiny,ps_n2", "--workdir", str(sn),
                "--no-progress"] + [
                    w for kv in args.supernet_set for w in ("--set", kv)]
  done = (sn / "metrics.jsonl").exists() and any(
      "eval/top1_largest" in r for r in _records(sn / "metrics.jsonl"))
  if not done:
    _hwnas(train_argv)
  final = [r for r in _records(sn / "metrics.jsonl")
           if "eval/top1_largest" in r][-1]
  e_fn = latency.make_cost_fn(latency.load_table(ENERGY), s)
  l_fn = latency.make_cost_fn(latency.load_table(LATENCY), s)
  target = args.target_uj
  if target is None:
    rng = np.random.default_rng(args.seed)
    target = round(float(np.median(
        [e_fn(arch.sample(rng, s)) for _ in range(2000)])), 1)
  sdir = root / f"search_{args.objective}_s{args.seed}"
  mdir = root / f"search_mult_{args.objective}_s{args.seed}"
  search_argv = ["search", "--space", "tiny_shift", "--table", ENERGY,
                 "--target-uj", f"{target:g}", "--supernet", str(sn),
                 "--budget", str(args.budget), "--seed", str(args.seed),
                 "--objective", args.objective,
                 "--workdir", str(sdir), "--no-progress"]
  _hwnas(search_argv)
  best = json.loads((sdir / "best.json").read_text())
  win = arch.from_dict(best["arch"])
  ev = evaluate.make_evaluator(sn, space=s)
  mres = pipeline.search(
      _mult_only(s), mdir, tables=[ENERGY], target_uj=target,
      evaluator=ev, budget=args.budget, seed=args.seed, progress=False,
      objective=args.objective)
  mbest = mres.best.arch

  # The winner, its all-mult twin, its all-shift twin, single flips.
  act = _active(win)
  archs = [win, _all(win, "mult"), _all(win, "shift"), mbest]
  archs += [_flip(win, st, j) for st, j in act]
  # Random pairs: the supernet's accuracy cost of shifting.
  rng = np.random.default_rng([args.seed, 1])
  rand = [arch.sample(rng, s) for _ in range(args.pairs)]
  archs += [_all(a, op) for a in rand for op in ("mult", "shift")]
  accs, _ = ev(archs)
  accs = [float(x) for x in accs]

  def row(label, a, acc_):
    c = counting.count(arch.decode(s, a))
    return (f"| {label} | `{arch.to_string(a)}` | {_ops(a)} | "
            f"{100 * acc_:.1f}% | {e_fn(a):.1f} | {l_fn(a):.3f} | "
            f"{c.macs / 1e6:.2f} | {100 * c.shift_adds / c.macs:.0f}% |")

  w_acc, m_acc, s_acc, b_acc = accs[:4]
  w_e, m_e, s_e, b_e = (e_fn(a) for a in archs[:4])
  flips = accs[4:4 + len(act)]
  pm = np.array(accs[4 + len(act)::2])
  ps = np.array(accs[5 + len(act)::2])
  pe = np.array([e_fn(_all(a, "shift")) / e_fn(_all(a, "mult"))
                 for a in rand])
  hist = _records(sdir / "history.jsonl")
  hist_m = _records(mdir / "history.jsonl")
  shares = [_shift_share(arch.from_dict(r["arch"])) for r in hist]
  top = sorted(hist, key=lambda r: -r["accuracy"])[:10]
  top_shares = [_shift_share(arch.from_dict(r["arch"])) for r in top]
  eq = [r for r in hist_m if r["accuracy"] >= w_acc]
  eq_best = min(eq, key=lambda r: r["costs"]["energy_uj"]) if eq else None
  lines = [
      "",
      "Commands (`bench_shift.py --stage search --workdir W --budget "
      f"{args.budget} --seed {args.seed} --objective {args.objective}` "
      "runs them all):", "",
      "    hwnas " + " ".join(train_argv).replace(str(root), "W"),
      "    hwnas " + " ".join(search_argv).replace(str(root), "W"),
      "", "and the same search in the space with `ops: [mult]` "
      "(`pipeline.search` with the supernet's evaluator). "
      + _host(), "",
      f"Supernet: `--config tiny,ps_n2` (450 steps"
      + (f"; `{' '.join(args.supernet_set)}`" if args.supernet_set else "")
      + f"), validation split {ev.data.dataset.info.split_sizes['val']} "
      "images, final "
      f"validation "
      f"accuracy largest {100 * final['eval/top1_largest']:.1f}% (all "
      f"multiply), smallest {100 * final['eval/top1_smallest']:.1f}% (all "
      f"shift). Energy target {target:g} µJ (the median of 2000 random "
      "architectures of the space); accuracy: the supernet's, on the "
      "validation split the search ranks on (BatchNorm recalibrated per "
      f"architecture); latency: `{LATENCY}` (estimated Edge TPU), which "
      "times a shift layer as its multiply equivalent.", "",
      "| network | architecture | ops per active block | val acc. | "
      "energy µJ | latency ms | MMACs | shift-adds |",
      "|---|---|---|---|---|---|---|---|",
      row(f"search winner ({args.objective})", win, w_acc),
      row("its twin, all multiply", archs[1], m_acc),
      row("its twin, all shift", archs[2], s_acc),
      row("best of the all-multiply search (same target)", mbest, b_acc),
  ]
  if eq_best is not None:
    ea = arch.from_dict(eq_best["arch"])
    lines.append(row("lowest-energy all-multiply network of that search "
                     "with >= the winner's accuracy", ea,
                     eq_best["accuracy"]))
  lines += [
      "",
      f"Energy the winner saves against its all-multiply twin (equal "
      f"latency, equal MACs): {100 * (1 - w_e / m_e):.1f}% "
      f"({m_e - w_e:.1f} µJ), at {100 * (w_acc - m_acc):+.1f} points of "
      "validation accuracy."
      + (f" The lowest-energy all-multiply network of equal or better "
         f"accuracy that the all-multiply search found uses "
         f"{eq_best['costs']['energy_uj']:.1f} µJ: the winner uses "
         + (f"{100 * (1 - w_e / eq_best['costs']['energy_uj']):.1f}% less."
            if w_e <= eq_best["costs"]["energy_uj"] else
            f"{100 * (w_e / eq_best['costs']['energy_uj'] - 1):.1f}% more "
            "(a different network, not a shift effect).")
         if eq_best is not None else
         " The all-multiply search found no network as accurate as the "
         "winner under the target."),
      f"At the same energy target the all-multiply search's best reaches "
      f"{100 * b_acc:.1f}% ({e_fn(mbest):.1f} µJ) against the winner's "
      f"{100 * w_acc:.1f}% ({w_e:.1f} µJ).", "",
      "Each active block of the winner with its op flipped (accuracy and "
      "energy of the flipped network):", "",
      "| block | winner's op | flipped: val acc. | flipped: energy µJ |",
      "|---|---|---|---|"]
  for (st, j), acc_ in zip(act, flips):
    lines.append(f"| s{st + 1} block {j + 1} | {win.blocks[st][j].op} | "
                 f"{100 * acc_:.1f}% | {e_fn(_flip(win, st, j)):.1f} |")
  lines += [
      "",
      f"Shift blocks in the search: {100 * np.mean(shares):.0f}% of the "
      f"active blocks of all {len(hist)} evaluated networks, "
      f"{100 * np.mean(top_shares):.0f}% in the 10 most accurate.",
      f"The supernet's accuracy cost of shifting, on {args.pairs} random "
      f"architectures evaluated all-multiply and all-shift: mean "
      f"{100 * np.mean(ps - pm):+.2f} points (all-shift minus "
      f"all-multiply; shift better in {int(np.sum(ps > pm))}, equal in "
      f"{int(np.sum(ps == pm))}, worse in {int(np.sum(ps < pm))}); "
      f"energy ratio all-shift / all-multiply median {np.median(pe):.3f} "
      f"(range {pe.min():.3f}-{pe.max():.3f}).", ""]
  title = TITLE_SEARCH.format(objective=args.objective, seed=args.seed)
  if args.supernet_set:
    title += f", supernet `{' '.join(args.supernet_set)}`"
  _write_section(title, lines)
  print("\n".join(lines))


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--stage", choices=("largest", "search"), default="largest")
  p.add_argument("--steps", type=int, default=300,
                 help="largest: `hwnas train` steps of each network")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workdir", default="")
  p.add_argument("--budget", type=int, default=150,
                 help="search: evaluations per search")
  p.add_argument("--target-uj", type=float, default=None,
                 help="search: energy target (default: the median of 2000 "
                 "random architectures)")
  p.add_argument("--objective", choices=("constraint", "reward"),
                 default="constraint",
                 help="search: best accuracy under the energy target, or "
                 "MnasNet's reward ACC x (E/T)^w")
  p.add_argument("--supernet-set", action="append", default=[],
                 metavar="KEY=VALUE",
                 help="search: a supernet config override (`hwnas supernet "
                 "train --set`), e.g. val_fraction=0.3; repeatable")
  p.add_argument("--pairs", type=int, default=100,
                 help="search: random architectures evaluated all-mult and "
                 "all-shift")
  args = p.parse_args()
  if args.stage == "largest":
    stage_largest(args)
  else:
    stage_search(args)


if __name__ == "__main__":
  main()
