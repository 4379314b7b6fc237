"""Input-pipeline throughput of hwnas.data, and the standalone train step.

Run: python benchmarks/bench_data.py [--quick]
(about 2-4 min on 2 shared cores). Prints a markdown section and writes it
to benchmarks/results/data.md.

Measures, in one process (the machine is shared, so compare ratios within
one run):
- `data.load("digits")` time;
- batches/s of `data.batches` for digits (numpy path) at 32x32, batch 64,
  with and without augmentation;
- batches/s of the tf.data path on an image folder of generated 32x32 PNGs
  (decode + augment + resize + normalise), which is what `folder:` and
  `tfds:` datasets run;
- the standalone train step (`hwnas.train_standalone.train_step`, jitted,
  batch 64, 32x32) of the tiny space's largest architecture and of the
  mobilenetv3 space's largest one, for comparison with supernet steps.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "data.md"


def _rate(it, n: int) -> float:
  next(it)  # warm-up: resize / tf.data graph construction
  t = time.perf_counter()
  for _ in range(n):
    next(it)
  return n / (time.perf_counter() - t)


def _folder(root: pathlib.Path, per_class: int) -> str:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for c in range(10):
    d = root / "train" / f"class{c}"
    d.mkdir(parents=True)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(
          d / f"{i}.png")
  return f"folder:{root}"


def bench_data(quick: bool) -> list[str]:
  from hwnas import data  # pylint: disable=g-import-not-at-top
  n = 50 if quick else 200
  t = time.perf_counter()
  ds = data.load("digits")
  load_s = time.perf_counter() - t
  kw = dict(batch_size=64, resolution=32, seed=0)
  plain = _rate(data.batches(ds, "train", **kw), n)
  aug = _rate(data.batches(ds, "train", augment=True, **kw), n)
  with tempfile.TemporaryDirectory() as tmp:
    fds = data.load(_folder(pathlib.Path(tmp), 100 if quick else 300))
    folder_aug = _rate(data.batches(fds, "train", augment=True, **kw), n // 2)
    folder_eval = _rate(data.batches(fds, "train", shuffle=False, **kw),
                        n // 2)
  return [
      "| input | batches/s (batch 64, 32x32) | images/s |",
      "|---|---|---|",
      f"| digits, no augmentation (numpy) | {plain:.0f} | {64 * plain:.0f} |",
      f"| digits, pad-crop augmentation (numpy) | {aug:.0f} | "
      f"{64 * aug:.0f} |",
      f"| folder of PNGs, augment (tf.data) | {folder_aug:.0f} | "
      f"{64 * folder_aug:.0f} |",
      f"| folder of PNGs, no augment (tf.data) | {folder_eval:.0f} | "
      f"{64 * folder_eval:.0f} |",
      "",
      f"`data.load('digits')`: {load_s:.2f} s (scikit-learn import included).",
  ]


def _step_ms(space_name: str, repeats: int) -> tuple[float, float, int]:
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas import arch, netspec, space  # pylint: disable=g-import-not-at-top
  from hwnas import train_standalone as ts  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network  # pylint: disable=g-import-not-at-top
  s = space.load(space_name)
  spec = netspec.with_resolution(
      arch.decode(s, arch.largest(s), num_classes=10), 32)
  cfg = ts.get_config(**{"train.steps": 1000})
  model = nnx.jit(lambda: Network(spec, rngs=nnx.Rngs(0)))()
  graphdef, state = ts.initial_state(model, cfg)
  step = ts._jitted_train_step(graphdef, cfg)  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  batch = {"image": rng.normal(size=(64, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, 64).astype(np.int32)}
  t = time.perf_counter()
  state, m = step(state, batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    times.append(1000 * (time.perf_counter() - t))
  params = sum(int(np.size(p)) for p in jax.tree.leaves(state["params"]))
  return statistics.median(times), compile_s, params


def bench_steps(quick: bool) -> list[str]:
  lines = ["| standalone largest subnet (batch 64, 32x32, SGD) | params | "
           "compile + 1st step s | step median ms |", "|---|---|---|---|"]
  for name in ("tiny", "mobilenetv3"):
    ms, comp, params = _step_ms(name, 5 if quick else 20)
    lines.append(f"| {name} | {params:,} | {comp:.1f} | {ms:.0f} |")
  return lines


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  lines = ["## Data pipeline and standalone training (hwnas.data, "
           "hwnas.train_standalone)", "",
           f"Command: `python benchmarks/bench_data.py"
           f"{' --quick' if args.quick else ''}`; one run on the shared "
           "2-core CPU (other jobs running: compare within the table).", ""]
  lines += bench_data(args.quick) + [""] + bench_steps(args.quick)
  text = "\n".join(lines) + "\n"
  print(text)
  OUT.parent.mkdir(parents=True, exist_ok=True)
  OUT.write_text(text)


if __name__ == "__main__":
  main()
