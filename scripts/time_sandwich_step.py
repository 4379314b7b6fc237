"""Times the supernet's jitted sandwich step, scan vs unrolled.

Run: python scripts/time_sandwich_step.py [--space tiny] [--resolution 32]
     [--unroll]

Uses the space's supernet config ('tiny' for the tiny space), random images
and the config's sandwich (largest, smallest, n_random random); prints the
compile time and three step times. The numbers behind `config.train.unroll`
in benchmarks/results/supernet.md come from this script.
"""

import argparse
import dataclasses
import time

import jax
import numpy as np

from hwnas import space as space_lib
from hwnas.configs import supernet as config_lib
from hwnas.supernet import loop, model as model_lib, train as train_lib


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--space", default="tiny")
  p.add_argument("--resolution", type=int, default=32)
  p.add_argument("--unroll", action="store_true")
  args = p.parse_args()
  config = config_lib.get_config("tiny" if args.space == "tiny" else "")
  space = dataclasses.replace(space_lib.load(args.space),
                              resolutions=(args.resolution,), num_classes=10)
  graphdef, state, tx = loop.build(space, config, 10)
  step = train_lib.jit_train_step(
      graphdef, tx, resolution=args.resolution, label_smoothing=0.0,
      kd_ratio=config.train.kd_ratio, unroll=args.unroll)
  rng = np.random.default_rng(0)
  bs, r = config.train.batch_size, args.resolution
  batch = {"image": rng.random((bs, r, r, 3), np.float32),
           "label": np.zeros(bs, np.int32)}
  archs = train_lib.sandwich(rng, space, n_random=config.train.n_random,
                             resolution=r)
  arrays = model_lib.stack_arch_arrays(space, archs)
  t = time.time()
  state, m = step(state, batch, jax.random.key(0), arrays)
  jax.block_until_ready(m)
  print(f"{args.space}@{r} batch {bs}, {len(archs)} archs, unroll="
        f"{args.unroll}: compile+first {time.time() - t:.1f} s")
  for i in range(3):
    t = time.time()
    state, m = step(state, batch, jax.random.key(i + 1), arrays)
    jax.block_until_ready(m)
    print(f"  step {time.time() - t:.3f} s")


if __name__ == "__main__":
  main()
