"""int8 in the search loop: simulated vs real int8 accuracy, cost, and a
float-ranked vs int8-ranked search.

Run (after `hwnas supernet train --space tiny --dataset digits --workdir W`):

  python benchmarks/bench_int8_search.py --supernet W [--archs 24]
      [--budget 60] [--workdir /tmp/bench_int8]
      [--out benchmarks/results/int8.md]

1. >= --archs architectures of the supernet's space (at least a third with
   hard-swish, a third with squeeze-excite): float, simulated int8
   (`hwnas.supernet.quant`) and real full-int8 TFLite accuracy (LiteRT, the
   same weights, calibration and held-out images;
   `hwnas.export.faithfulness`); mean |simulated - TFLite|, Kendall tau /
   Spearman rho.
2. Cost of one int8 evaluation relative to one float evaluation
   (compilation excluded, the two interleaved over the same architectures,
   several rounds; ratio of total times in this one run).
3. `hwnas search --accuracy float` and `--accuracy int8` under the same
   latency target (the median predicted latency of the sampled
   architectures), each winner exported with `hwnas export --supernet`, and
   both winners' real int8 (TFLite) accuracy from the export reports.

Writes the markdown section to --out and the raw numbers to
WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _archs(space, n: int, seed: int):
  from hwnas import arch as arch_lib
  rng = np.random.default_rng(seed)
  out, hs, se = [], 0, 0
  want = -(-n // 3)
  for _ in range(20000):
    if len(out) >= n and hs >= want and se >= want:
      break
    a = arch_lib.sample(rng, space)
    blocks = [b for _, _, b in a.active_blocks()]
    is_hs = any(b.activation == "hswish" for b in blocks)
    is_se = any(b.se for b in blocks)
    short = hs < want or se < want
    if a in out or (short and len(out) >= n - 2 * want and not (
        (is_hs and hs < want) or (is_se and se < want))):
      continue
    out.append(a)
    hs += is_hs
    se += is_se
  return out


def _cost(ev_float, ev_int8, archs, rounds: int):
  """Seconds per evaluation of each kind (compiled; interleaved)."""
  for r in sorted({a.resolution for a in archs}):
    a = next(x for x in archs if x.resolution == r)
    t0 = time.perf_counter()
    ev_float([a])
    cf = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev_int8([a])
    ci = time.perf_counter() - t0
    print(f"  first call at r{r}: float {cf:.1f} s, int8 {ci:.1f} s "
          "(compilation)", flush=True)
  tf = ti = 0.0
  for _ in range(rounds):
    for a in archs:
      t0 = time.perf_counter()
      ev_float([a])
      tf += time.perf_counter() - t0
      t0 = time.perf_counter()
      ev_int8([a])
      ti += time.perf_counter() - t0
  n = rounds * len(archs)
  return {"float_s": tf / n, "int8_s": ti / n, "ratio": ti / tf,
          "evaluations_each": n}


def _run(cmd, **kw):
  print("  $", " ".join(map(str, cmd)), flush=True)
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  t0 = time.perf_counter()
  p = subprocess.run([str(c) for c in cmd], env=env, capture_output=True,
                     text=True, **kw)
  return p, time.perf_counter() - t0


def _search_and_export(args, space, archs, work: pathlib.Path):
  from hwnas import arch as arch_lib
  from hwnas import latency
  table = latency.load_table(args.table)
  ms = [float(table.predict(arch_lib.decode(space, a))) for a in archs]
  target = float(np.median(ms))
  out = {"table": args.table, "target_ms": target, "runs": {}}
  for kind in ("float", "int8"):
    wd = work / f"search_{kind}"
    p, wall = _run([sys.executable, "-m", "hwnas", "search", "--space",
                    space.path or space.name, "--supernet", args.supernet,
                    "--table", args.table, "--target-ms", f"{target:.6f}",
                    "--budget", args.budget, "--population",
                    args.population, "--seed", 0, "--workdir", wd,
                    "--accuracy", kind, "--no-progress"])
    if p.returncode:
      raise SystemExit(f"search {kind} failed:\n{p.stdout}\n{p.stderr}")
    best = json.loads((wd / "best.json").read_text())
    rows = [json.loads(l) for l in
            (wd / "history.jsonl").read_text().splitlines() if l.strip()]
    winner = next(r for r in rows if r["arch"] == best["arch"])
    exp = work / f"export_{kind}"
    pe, ewall = _run([sys.executable, "-m", "hwnas", "export", "--arch",
                      wd / "best.json", "--supernet", args.supernet, "--out",
                      exp, "--overwrite", "--formats", "flax,tflite,"
                      "tflite-int8", "--latency-repeats", 20,
                      "--no-compile"])
    report = json.loads((exp / "report.json").read_text())
    acc = report["checks"]["accuracy"]
    out["runs"][kind] = {
        "search_wall_s": wall, "export_wall_s": ewall,
        "export_exit": pe.returncode,
        "arch": winner["arch_string"], "search_accuracy": winner["accuracy"],
        "search_metrics": winner.get("metrics", {}),
        "latency_ms": winner["costs"],
        "test_flax": acc["flax"], "test_tflite_float": acc.get(
            "tflite_float"), "test_tflite_int8": acc["tflite_int8"],
        "test_samples": acc["num_samples"],
        "int8_gate": report["checks"].get("int8_gate")}
    print(f"  {kind}: {out['runs'][kind]}", flush=True)
  return out


def _markdown(res, command: str) -> str:
  f = res["faithfulness"]
  c = res["cost"]
  rows = res["rows"]
  lines = [
      "## int8 in the search loop (simulated int8 accuracy)", "",
      f"Command: `{command}` ({res['date']}, shared {os.cpu_count()}-core "
      "machine; "
      f"supernet: the tiny space trained on digits with the default tiny "
      f"config, {res['val_samples']} val images, calibration = the "
      f"evaluator's {res['calib_samples']} BN-recalibration images).", "",
      f"### Simulated vs real TFLite int8 ({f['num_archs']} architectures, "
      f"{res['n_hswish']} with hard-swish, {res['n_se']} with SE)", "",
      "| architecture | float | simulated int8 | TFLite int8 | sim - TFLite |",
      "|---|---:|---:|---:|---:|"]
  for r in rows:
    sim, real = r["accuracy_int8_simulated"], r["accuracy_int8_tflite"]
    lines.append(
        f"| `{r['arch']}` | {100 * r['accuracy_float']:.2f} | "
        f"{100 * sim:.2f} | {100 * real:.2f} | {100 * (sim - real):+.2f} |")
  s = f["simulated_vs_tflite"]
  fl = f["float_vs_tflite_int8"]
  lines += [
      "", f"- mean |simulated - TFLite| = **{f['mean_abs_diff_points']:.2f} "
      f"points** (max {f['max_abs_diff_points']:.2f}, mean signed "
      f"{f['mean_diff_points']:+.2f}); one val image = "
      f"{100 / res['val_samples']:.2f} points",
      f"- simulated vs TFLite int8 rank correlation: Kendall tau "
      f"**{s['kendall_tau']:.3f}**, Spearman rho **{s['spearman_rho']:.3f}**",
      f"- float vs TFLite int8: Kendall tau {fl['kendall_tau']:.3f}, "
      f"Spearman rho {fl['spearman_rho']:.3f}; mean int8 drop "
      f"{f['mean_int8_drop_points']:.2f} points",
      "", "### Cost of an evaluation (compiled, interleaved, same archs)", "",
      f"- float {c['float_s'] * 1e3:.0f} ms, int8 {c['int8_s'] * 1e3:.0f} ms "
      f"per architecture ({c['evaluations_each']} each): int8 / float = "
      f"**{c['ratio']:.2f}x** (BN recalibration + range calibration + "
      "fake-quantised val pass vs BN recalibration + float val pass)"]
  s = res.get("search")
  if s:
    lines += ["", f"### Search by float vs by int8 accuracy "
              f"(table `{s['table']}`, target {s['target_ms']:.4f} ms, "
              f"budget {res['budget']})", "",
              "| ranked by | winner | search acc (val) | float / int8 sim "
              "(val) | Flax test | TFLite int8 test | int8 gate |",
              "|---|---|---:|---:|---:|---:|---|"]
    for kind, r in s["runs"].items():
      m = r["search_metrics"]
      g = r["int8_gate"] or {}
      sim = (f"{100 * m['accuracy_float']:.2f} / "
             f"{100 * m['accuracy_int8']:.2f}" if m else "-")
      lines.append(
          f"| {kind} | `{r['arch']}` | {100 * r['search_accuracy']:.2f} | "
          f"{sim} | {100 * r['test_flax']:.2f} | "
          f"{100 * r['test_tflite_int8']:.2f} | "
          f"{'pass' if g.get('passed') else 'FAIL'} "
          f"({100 * g.get('top1_agreement', float('nan')):.1f}% agree) |")
    lines.append("")
    lines.append(f"Test accuracies on {s['runs']['float']['test_samples']} "
                 "digits test images from each winner's export report.")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--supernet", required=True)
  p.add_argument("--archs", type=int, default=24)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--budget", type=int, default=60)
  p.add_argument("--population", type=int, default=20)
  p.add_argument("--table", default="litert-int8/tiny")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workdir", default="/tmp/bench_int8")
  p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                      "int8.md"))
  p.add_argument("--skip-search", action="store_true")
  p.add_argument("--resume", action="store_true",
                 help="reuse parts 1-2 from WORKDIR/results.json")
  args = p.parse_args()
  from hwnas.export import faithfulness
  from hwnas.supernet import evaluate, quant
  work = pathlib.Path(args.workdir)
  work.mkdir(parents=True, exist_ok=True)
  ev = quant.make_evaluator(args.supernet, accuracy="int8")
  ev_float = evaluate.Evaluator(ev.graphdef, {"params": ev.params,
                                              "stats": ev.stats}, ev.space,
                                ev.data)
  archs = _archs(ev.space, args.archs, args.seed)
  blocks = [[b for _, _, b in a.active_blocks()] for a in archs]
  res = {"date": datetime.date.today().isoformat(), "budget": args.budget,
         "n_hswish": sum(any(b.activation == "hswish" for b in bs)
                         for bs in blocks),
         "n_se": sum(any(b.se for b in bs) for bs in blocks)}
  d = ev.data.at(archs[0].resolution)
  res["val_samples"] = int(np.asarray(d.mask).sum())
  res["calib_samples"] = int(np.prod(d.calib.shape[:2]))
  old = (json.loads((work / "results.json").read_text())
         if args.resume and (work / "results.json").is_file() else {})
  if "rows" in old:
    res.update({k: old[k] for k in ("cost", "rows", "faithfulness", "date")})
  else:
    print(f"{len(archs)} architectures; cost of an evaluation:", flush=True)
    res["cost"] = _cost(ev_float, ev, archs, args.rounds)
    print(f"  {res['cost']}", flush=True)
    print("faithfulness (TFLite conversion per architecture):", flush=True)
    rows = faithfulness.measure(ev, archs)
    res["rows"] = [r.to_dict() for r in rows]
    res["faithfulness"] = faithfulness.compare(rows)
    print(f"  {res['faithfulness']}", flush=True)
    (work / "results.json").write_text(json.dumps(res, indent=1))
  if not args.skip_search:
    print("searches:", flush=True)
    res["search"] = _search_and_export(args, ev.space, archs, work)
    (work / "results.json").write_text(json.dumps(res, indent=1))
  command = "python benchmarks/bench_int8_search.py " + " ".join(
      sys.argv[1:])
  text = _markdown(res, command)
  pathlib.Path(args.out).write_text(text)
  print(text)


if __name__ == "__main__":
  main()
