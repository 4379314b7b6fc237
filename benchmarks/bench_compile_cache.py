"""The persistent compilation cache: a first and a second quickstart.

  python benchmarks/bench_compile_cache.py [--runs 2] [--train-steps N]

Runs `python -m hwnas quickstart --no-progress` `--runs` times, each in a
new workdir, all with one new, empty cache folder (`HWNAS_CACHE_DIR`), so
run 1 compiles everything and writes the cache and the later runs read it.
For each run: the whole wall time, the time from the process start to the
end of the first supernet step (the line `compiling (first step)…` plus
metrics.jsonl's `train/first_step_s`), each stage's seconds
(quickstart.json) and the cache folder's size. Prints a markdown section
(benchmarks/RESULTS.md holds runs); the load average is printed beside it
because a shared machine's numbers only compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from hwnas.latency.backends import cpu_model


def _run_once(workdir: pathlib.Path, cache: pathlib.Path,
              train_steps: int | None) -> dict:
  argv = [sys.executable, "-u", "-m", "hwnas", "quickstart", "--workdir",
          str(workdir), "--no-progress"]
  if train_steps:
    argv += ["--train-steps", str(train_steps)]
  env = dict(os.environ, HWNAS_CACHE_DIR=str(cache))
  env.pop("HWNAS_COMPILE_CACHE", None)
  t0 = time.perf_counter()
  proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  compiling_at = None
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if compiling_at is None and line.startswith("compiling (first step)"):
      compiling_at = time.perf_counter() - t0
  if proc.wait():
    raise SystemExit("".join(lines[-30:]) + f"\nexit {proc.returncode}")
  wall = time.perf_counter() - t0
  rows = [json.loads(r) for r in
          (workdir / "supernet" / "metrics.jsonl").read_text().splitlines()]
  first_step = next(r["train/first_step_s"] for r in rows
                    if "train/first_step_s" in r)
  stages = json.loads((workdir / "quickstart.json").read_text())["seconds"]
  size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
  return {"wall_s": wall, "first_step_s": compiling_at + first_step,
          "compile_first_step_s": first_step, "stages": stages,
          "cache_mib": size / 2**20,
          "cache_files": sum(1 for p in cache.rglob("*-cache"))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=2)
  parser.add_argument("--train-steps", type=int)
  args = parser.parse_args()
  base = pathlib.Path(tempfile.mkdtemp(prefix="hwnas-cache-bench-"))
  cache = base / "cache"
  load = os.getloadavg()
  results = [_run_once(base / f"qs{i}", cache, args.train_steps)
             for i in range(1, args.runs + 1)]
  load_end = os.getloadavg()
  print(f"#### Quickstart, cold vs warm compilation cache ({cpu_model()})\n")
  print(f"`python benchmarks/bench_compile_cache.py --runs {args.runs}"
        + (f" --train-steps {args.train_steps}" if args.train_steps else "")
        + f"`; load average {load[0]:.1f} at the start, {load_end[0]:.1f} "
        "at the end (2 cores).\n")
  stages = list(results[0]["stages"])
  print("| run | cache | process start -> first supernet step done | "
        "of which in the loop (compile + step) | "
        + " | ".join(stages) + " | whole run | cache folder |")
  print("|---|---|---:|---:|" + "---:|" * len(stages) + "---:|---:|")
  for i, r in enumerate(results, 1):
    cells = " | ".join(f"{r['stages'].get(s, 0.0):.1f} s" for s in stages)
    print(f"| {i} | {'cold' if i == 1 else 'warm'} | "
          f"{r['first_step_s']:.1f} s | {r['compile_first_step_s']:.1f} s | "
          f"{cells} | {r['wall_s']:.1f} s | {r['cache_mib']:.0f} MiB, "
          f"{r['cache_files']} entries |")
  first, last = results[0], results[-1]
  print(f"\nLast / first: first step {last['first_step_s'] / first['first_step_s']:.2f}x, "
        f"whole run {last['wall_s'] / first['wall_s']:.2f}x.")


if __name__ == "__main__":
  main()
