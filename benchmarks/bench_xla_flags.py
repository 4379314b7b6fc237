"""XLA:CPU options against hwnas's supernet steps, one fresh process each.

  python benchmarks/bench_xla_flags.py [--resolution 64] [--repeats 5]
      [--setting= --setting=--xla_cpu_use_onednn=true ...]

(`--setting=VALUE`, repeatable, one `XLA_FLAGS` value each; the `=` lets a
value start with `--`, and `--setting=` is no flags. Default: `FLAGS`.)

`XLA_FLAGS` is read once, when JAX starts its backend, so every setting
runs in its own process (this script with `--child`). Each process builds
the calls of `bench_peer_ofa.py` (mobilenetv3 space, batch 64, 10
classes; the persistent compilation cache off so that each compiles),
runs the smallest and the largest subnet's one-architecture training step
and the largest's eval forward once (compile + first call, and the step's
loss: an option must not change results), then `--repeats` interleaved
rounds, and prints their medians. The default settings are the options
that could plausibly speed up convolutions, matrix products and
elementwise passes on a CPU (oneDNN, XNNPACK / YNNPACK library fusions,
fast math). Prints a markdown table; only ratios within one run compare.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

FLAGS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_experimental_xnn_graph_fusion_mode="
    "XNN_GRAPH_FUSION_MODE_GREEDY",
    "--xla_cpu_experimental_onednn_fusion_type="
    "dot,eltwise,individual_convolution",
    "--xla_cpu_experimental_ynn_fusion_type="
    "eltwise,reduce,dot,individual_dot,individual_convolution",
)
KINDS = ("smallest", "largest", "eval_largest")


def child(resolution: int, repeats: int) -> dict:
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import bench_peer_ofa  # pylint: disable=g-import-not-at-top
  calls = bench_peer_ofa._hwnas_calls(resolution, 64, 0)  # pylint: disable=protected-access
  out = {}
  for k in KINDS:
    t = time.perf_counter()
    r = jax.block_until_ready(calls[k]())
    out[f"{k}_first_s"] = time.perf_counter() - t
    if k != "eval_largest":
      out[f"{k}_loss"] = float(jax.device_get(r[1]["train/loss"]))
  times = {k: [] for k in KINDS}
  for _ in range(repeats):
    for k in KINDS:
      t = time.perf_counter()
      jax.block_until_ready(calls[k]())
      times[k].append(time.perf_counter() - t)
  out.update({f"{k}_ms": float(np.median(v)) * 1e3 for k, v in times.items()})
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--setting", action="append", dest="flags",
                 metavar="XLA_FLAGS")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.child:
    print(json.dumps(child(a.resolution, a.repeats)))
    return
  from hwnas.latency.backends import cpu_model  # pylint: disable=g-import-not-at-top
  t0, rows = time.time(), []
  for flags in a.flags or FLAGS:
    env = dict(os.environ, XLA_FLAGS=flags, HWNAS_COMPILE_CACHE="0",
               JAX_ENABLE_COMPILATION_CACHE="false")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--resolution",
         str(a.resolution), "--repeats", str(a.repeats)],
        env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
      rows.append((flags, None, proc.stderr.strip().splitlines()[-1:]))
    else:
      rows.append((flags, json.loads(proc.stdout.strip().splitlines()[-1]),
                   None))
    print(f"  {flags or '(none)'}: done", flush=True)
  print(f"\n### XLA:CPU options, mobilenetv3 at {a.resolution} px, batch 64 "
        f"({cpu_model()}, {os.cpu_count()} cores)\n")
  settings = "".join(f" --setting={f}" for f in a.flags or ())
  print(f"`python benchmarks/bench_xla_flags.py --resolution {a.resolution} "
        f"--repeats {a.repeats}{settings}`; medians of {a.repeats} interleaved rounds "
        f"per process, ms; load average {os.getloadavg()[0]:.1f} at the "
        f"end; wall {time.time() - t0:.0f} s.\n")
  print("| XLA_FLAGS | smallest step | largest step | eval largest | "
        "smallest step's loss | compile + first call s |")
  print("|---|---:|---:|---:|---:|---:|")
  for flags, r, err in rows:
    name = f"`{flags}`" if flags else "(none, the default)"
    if r is None:
      print(f"| {name} | failed: {err} | | | | |")
      continue
    print(f"| {name} | {r['smallest_ms']:.1f} | {r['largest_ms']:.1f} | "
          f"{r['eval_largest_ms']:.1f} | {r['smallest_loss']:.7f} | "
          f"{r['smallest_first_s'] + r['eval_largest_first_s']:.0f} |")


if __name__ == "__main__":
  main()
