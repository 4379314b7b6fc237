"""Regenerates benchmarks/data/bench4k_table.csv: the search benchmark's table.

Run (about 10 minutes on a 2-core CPU):
  python -m hwnas supernet train --space benchmarks/data/bench4k.yaml \\
      --dataset digits --config tiny --set val_fraction=0.3 --workdir SN
  python benchmarks/bench_search_tabular_data.py --supernet SN

Every one of the 4,608 architectures of `benchmarks/data/bench4k.yaml` is
evaluated once by the trained weight-sharing supernet (BatchNorm
recalibrated per architecture, accuracy on the held-out `val` split of
digits: 30% of the training images), and its MACs are counted. The table
(one row per architecture: `arch.to_string`, accuracy, MMACs) is what
`bench_search_tabular.py` searches, so the true best architecture under
any MACs target is known.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import pathlib
import time

from hwnas import arch as arch_lib
from hwnas import counting, space
from hwnas.search import feasibility

DATA = pathlib.Path(__file__).parent / "data"
SPACE = DATA / "bench4k.yaml"
TABLE = DATA / "bench4k_table.csv"


def enumerate_space(s) -> list:
  """Every architecture of a small space, once, in a fixed order."""
  gs = feasibility.genes(s)
  seen, out = set(), []
  base = arch_lib.smallest(s)
  for values in itertools.product(*[feasibility.options(s, g) for g in gs]):
    a = base
    for g, v in zip(gs, values):
      if feasibility.get(a, g) != v:
        a = _set(s, a, g, v)
    a = arch_lib.canonicalize(s, a)
    if a not in seen:
      seen.add(a)
      out.append(a)
  return out


def _set(s, a, g, v):
  # Unlike feasibility.set_gene this must not canonicalise between genes:
  # a slot's fields are set before the depth that activates it.
  import dataclasses
  if g[0] == "resolution":
    return dataclasses.replace(a, resolution=v)
  if g[0] in ("widths", "depths"):
    vals = list(getattr(a, g[0]))
    vals[g[1]] = v
    return dataclasses.replace(a, **{g[0]: tuple(vals)})
  _, st, j, field = g
  blocks = [list(bs) for bs in a.blocks]
  blocks[st][j] = dataclasses.replace(blocks[st][j], **{field: v})
  return dataclasses.replace(a, blocks=tuple(tuple(b) for b in blocks))


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--supernet", required=True, help="supernet workdir")
  ap.add_argument("--out", default=str(TABLE))
  ap.add_argument("--chunk", type=int, default=64)
  args = ap.parse_args()
  from hwnas.supernet import evaluate
  s = space.load(str(SPACE))
  archs = enumerate_space(s)
  names = [arch_lib.to_string(a) for a in archs]
  assert len(set(names)) == len(names) == s.num_archs(), len(names)
  fn = evaluate.make_evaluator(args.supernet, s)
  acc, t0 = [], time.time()
  for k in range(0, len(archs), args.chunk):
    acc += fn(archs[k:k + args.chunk])[0]
    print(f"{len(acc)}/{len(archs)} evaluated, {time.time() - t0:.0f} s",
          flush=True)
  with open(args.out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["arch", "accuracy", "mmacs"])
    for a, n, v in zip(archs, names, acc):
      macs = counting.count(arch_lib.decode(s, a)).macs / 1e6
      w.writerow([n, f"{v:.6f}", f"{macs:.6f}"])
  print(f"wrote {args.out} ({len(archs)} architectures)")


if __name__ == "__main__":
  main()
