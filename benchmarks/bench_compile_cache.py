"""The compilation caches: a first and a second quickstart.

  python benchmarks/bench_compile_cache.py [--runs 2] [--train-steps N]
  python benchmarks/bench_compile_cache.py --supernet-only [--runs 2]

Runs `python -m hwnas quickstart --no-progress` `--runs` times, each in a
new workdir, all with one new, empty cache folder (`HWNAS_CACHE_DIR`), so
run 1 compiles everything and writes the cache and the later runs read it.
`--supernet-only` runs `hwnas supernet train --space tiny --dataset digits
--config tiny --steps 2` instead (the quickstart's first stage, its first
step and final evaluation; minutes less on a busy host). For each run:
the whole wall time, the time from the process start to the end of the
first supernet step (the line `compiling (first step)…` plus
metrics.jsonl's `train/first_step_s`), each stage's seconds
(quickstart.json), whether the step was loaded as a whole executable
(`hwnas.aot_cache`: the line `loaded the compiled step`) and the cache
folder's size (JAX's `jax/` entries, hwnas's `aot/` executables). Prints
a markdown section (benchmarks/RESULTS.md holds runs); the load average
is printed beside it because a shared machine's numbers only compare
within one run. The script runs whichever hwnas `PYTHONPATH` names, so
the same command measures another checkout.
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


def _argv(workdir: pathlib.Path, train_steps: int | None,
          supernet_only: bool) -> list[str]:
  if supernet_only:
    return [sys.executable, "-u", "-m", "hwnas", "supernet", "train",
            "--space", "tiny", "--dataset", "digits", "--config", "tiny",
            "--steps", str(train_steps or 2), "--workdir",
            str(workdir / "supernet"), "--no-progress"]
  argv = [sys.executable, "-u", "-m", "hwnas", "quickstart", "--workdir",
          str(workdir), "--no-progress"]
  if train_steps:
    argv += ["--train-steps", str(train_steps)]
  return argv


def _run_once(workdir: pathlib.Path, cache: pathlib.Path,
              train_steps: int | None, supernet_only: bool) -> dict:
  argv = _argv(workdir, train_steps, supernet_only)
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
  stages = ({} if supernet_only else json.loads(
      (workdir / "quickstart.json").read_text())["seconds"])
  size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
  aot = cache / "aot"
  return {"wall_s": wall, "first_step_s": compiling_at + first_step,
          "compile_first_step_s": first_step, "stages": stages,
          "cache_mib": size / 2**20,
          "cache_files": sum(1 for p in cache.rglob("*-cache")),
          "aot_files": len(list(aot.glob("*.exe"))) if aot.exists() else 0,
          "step_loaded": any(line.startswith("loaded the compiled step")
                             for line in lines)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=2)
  parser.add_argument("--train-steps", type=int)
  parser.add_argument("--supernet-only", action="store_true",
                      help="time `hwnas supernet train --steps 2` instead "
                      "of the whole quickstart")
  args = parser.parse_args()
  base = pathlib.Path(tempfile.mkdtemp(prefix="hwnas-cache-bench-"))
  cache = base / "cache"
  load = os.getloadavg()
  results = [_run_once(base / f"qs{i}", cache, args.train_steps,
                       args.supernet_only)
             for i in range(1, args.runs + 1)]
  load_end = os.getloadavg()
  what = "`supernet train --steps 2`" if args.supernet_only else "Quickstart"
  print(f"#### {what}, cold vs warm compilation cache ({cpu_model()})\n")
  print(f"`python benchmarks/bench_compile_cache.py --runs {args.runs}"
        + (f" --train-steps {args.train_steps}" if args.train_steps else "")
        + (" --supernet-only" if args.supernet_only else "")
        + f"`; load average {load[0]:.1f} at the start, {load_end[0]:.1f} "
        f"at the end ({os.cpu_count()} cores).\n")
  stages = list(results[0]["stages"])
  print("| run | cache | process start -> first supernet step done | "
        "of which in the loop (compile + step) | step executable | "
        + "".join(f"{s} | " for s in stages) + "whole run | cache folder |")
  print("|---|---|---:|---:|---|" + "---:|" * len(stages) + "---:|---:|")
  for i, r in enumerate(results, 1):
    cells = "".join(f"{r['stages'].get(s, 0.0):.1f} s | " for s in stages)
    print(f"| {i} | {'cold' if i == 1 else 'warm'} | "
          f"{r['first_step_s']:.1f} s | {r['compile_first_step_s']:.1f} s | "
          f"{'loaded (aot/)' if r['step_loaded'] else 'traced'} | "
          f"{cells}{r['wall_s']:.1f} s | {r['cache_mib']:.0f} MiB: "
          f"{r['cache_files']} jax/ entries, {r['aot_files']} aot/ |")
  first, last = results[0], results[-1]
  print(f"\nLast / first: first step {last['first_step_s'] / first['first_step_s']:.2f}x, "
        f"whole run {last['wall_s'] / first['wall_s']:.2f}x.")


if __name__ == "__main__":
  main()
