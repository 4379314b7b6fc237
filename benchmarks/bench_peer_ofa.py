"""hwnas against Once-for-All's PyTorch supernet on this host, interleaved.

  python benchmarks/bench_peer_ofa.py --ofa-python $OFA_PEER/venv/bin/python \
      --ofa-dir $OFA_PEER/once-for-all [--resolutions 32 64 128] [--repeats 3]

The peer is set up outside the repository (docs/supernet.md, "A same-host
peer: Once-for-All"): a checkout of mit-han-lab/once-for-all and a venv
with the CPU torch wheel. Both sides train the mobilenetv3 space (Once-for-
All's MobileNetV3 space: kernels 3/5/7, expansions 3/4/6, depths 2/3/4),
10 classes, batch 64, no dropout, SGD-Nesterov, on one fixed random batch;
both on the same 2 threads' worth of cores (torch.set_num_threads(2); XLA's
CPU client uses every core). Per resolution: the peer runs
(`benchmarks/peer_ofa_timing.py`), hwnas runs, the peer runs again, so
drift on a shared machine shows as the spread of the peer's two runs.
hwnas's steps are compiled before its timed rounds (compile time is
reported apart); each side times `--repeats` rounds of one call of each
kind and reports medians. Timed: sandwich step (largest + smallest + 2
random, one update), the largest / smallest / a random subnet's step alone
(the random architectures differ between the two sides), eval forward of
the largest. Prints a markdown section with the CPU model, the load and
the ratios hwnas / peer (one per peer run).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hwnas import arch as arch_lib
from hwnas import space as space_lib
from hwnas.configs.supernet import get_config
from hwnas.latency.backends import cpu_model
from hwnas.supernet import model as model_lib
from hwnas.supernet import train as train_lib

KINDS = ("sandwich", "largest", "smallest", "random", "eval_largest")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _hwnas_calls(resolution: int, batch: int, seed: int):
  """{kind: call} of hwnas's jitted steps at `resolution` (not yet run)."""
  space = dataclasses.replace(space_lib.load("mobilenetv3"),
                              resolutions=(resolution,), num_classes=10)
  config = get_config()
  config.dropout = 0.0
  net = model_lib.Supernet(space, rngs=nnx.Rngs(0))
  tx = train_lib.make_optimizer(config, 1000)
  graphdef, state = train_lib.create_state(net, tx)
  x = jax.random.normal(jax.random.key(0), (batch, resolution, resolution, 3))
  data = {"image": x, "label": jnp.arange(batch) % 10}
  step = jax.jit(functools.partial(
      train_lib.train_step, graphdef=graphdef, tx=tx, resolution=resolution,
      label_smoothing=config.train.label_smoothing,
      kd_ratio=config.train.kd_ratio))   # no donation: the state is reused
  rng = np.random.default_rng(seed)
  sandwich = train_lib.sandwich(rng, space, n_random=2,
                                resolution=resolution)
  big, small, rand = sandwich[:3]

  def train(archs):
    arrays = model_lib.stack_arch_arrays(space, archs)
    return lambda: step(state, data, jax.random.key(0), arrays)

  fwd = jax.jit(lambda st, arr: train_lib.merge(graphdef, st)(x, arr))
  big_arrays = jax.tree.map(jnp.asarray, model_lib.arch_arrays(space, big))
  return {"sandwich": train(sandwich), "largest": train([big]),
          "smallest": train([small]), "random": train([rand]),
          "eval_largest": lambda: fwd(state, big_arrays)}


def _time_hwnas(calls, repeats: int) -> tuple[dict, dict]:
  """(median ms per kind, compile + first call seconds per kind)."""
  first = {}
  for kind, call in calls.items():
    t = time.perf_counter()
    jax.block_until_ready(call())
    first[kind] = time.perf_counter() - t
  times = {k: [] for k in calls}
  for _ in range(repeats):
    for kind, call in calls.items():
      t = time.perf_counter()
      jax.block_until_ready(call())
      times[kind].append((time.perf_counter() - t) * 1e3)
  return {k: float(np.median(v)) for k, v in times.items()}, first


def _time_peer(args, resolution: int) -> dict:
  out = subprocess.run(
      [args.ofa_python, os.path.join(_HERE, "peer_ofa_timing.py"),
       "--ofa-dir", args.ofa_dir, "--resolution", str(resolution),
       "--repeats", str(args.repeats), "--threads", str(args.threads)],
      capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--ofa-python", required=True,
                 help="the peer venv's python (with torch)")
  p.add_argument("--ofa-dir", required=True,
                 help="a checkout of mit-han-lab/once-for-all")
  p.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128])
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--threads", type=int, default=2,
                 help="torch threads of the peer")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  if args.batch != 64:
    raise SystemExit("--batch: the peer's script times batch 64")
  t_start, load_start = time.time(), os.getloadavg()
  print(f"### hwnas vs Once-for-All, same host, interleaved "
        f"({cpu_model()}, {os.cpu_count()} cores)\n")
  print(f"`python benchmarks/bench_peer_ofa.py --resolutions "
        f"{' '.join(map(str, args.resolutions))} --repeats {args.repeats}`; "
        f"jax {jax.__version__}; medians of {args.repeats} rounds; the peer "
        "ran before and after hwnas at each resolution.\n", flush=True)
  for res in args.resolutions:
    before = _time_peer(args, res)
    ms, first = _time_hwnas(_hwnas_calls(res, args.batch, args.seed),
                            args.repeats)
    after = _time_peer(args, res)
    load = os.getloadavg()
    print(f"#### {res} px (torch {before['torch']}, {args.threads} threads; "
          f"load average {load[0]:.1f} after)\n")
    print("| step | hwnas ms | Once-for-All ms (before / after) | "
          "hwnas / Once-for-All | hwnas compile + first call |")
    print("|---|---:|---:|---:|---:|")
    for kind in KINDS:
      peer = (before[kind], after[kind])
      ratios = sorted(ms[kind] / v for v in peer)
      print(f"| {kind.replace('_', ' ')} | {ms[kind]:.0f} | "
            f"{peer[0]:.0f} / {peer[1]:.0f} | "
            f"{ratios[0]:.2f}-{ratios[1]:.2f}x | {first[kind]:.1f} s |")
    print(flush=True)
  print(f"Load average {load_start[0]:.1f} at the start; wall "
        f"{time.time() - t_start:.0f} s.")


if __name__ == "__main__":
  main()
