"""Search benchmark: evolution vs random search on a planted problem.

Run:  python benchmarks/bench_search.py [--seeds 10] [--quick]

A synthetic constrained problem with a KNOWN optimum over a real space:
a random "planted" architecture P; accuracy(a) = sum of positive random
weights over the genes live in both `a` and P that are equal (resolution,
widths, depths, and each field of a slot that is active, and not a skip for
non-type fields, in both), so P is the unique maximum; latency(a) = an
additive random per-gene cost table; the target is P's latency (+1%),
which P meets and which excludes a large share of the
space. Hence P is the constrained optimum. Every algorithm gets the same
evaluation budget; random search samples feasible architectures uniformly
(rejection sampling, no duplicates). Prints a markdown section.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np

from hwnas import arch, space
from hwnas.search import feasibility, run


class Planted:
  """Additive score with a planted optimum and an additive latency."""

  def __init__(self, s, seed: int):
    self.s = s
    rng = np.random.default_rng([seed, 99])
    self.genes = feasibility.genes(s)
    self.w = {g: float(rng.uniform(0.5, 1.5)) for g in self.genes}
    self.lat = {(g, v): float(rng.uniform(0.0, 1.0))
                for g in self.genes for v in feasibility.options(s, g)}
    samples = [arch.sample(rng, s) for _ in range(400)]
    lats = np.array([self.latency(a) for a in samples])
    lo, hi = np.quantile(lats, [0.3, 0.5])
    self.planted = next(a for a, l in zip(samples, lats) if lo <= l <= hi)
    self.planted_live = set(self._live(self.planted))
    self.target = self.latency(self.planted) * 1.01
    self.opt = self.score(self.planted)
    self.feasible_share = float(np.mean(lats <= self.target))

  def _live(self, a):
    for g in self.genes:
      if g[0] == "block":
        _, s, j, f = g
        if j >= a.depths[s] or (f != "type" and
                                a.blocks[s][j].type == "skip"):
          continue
      yield g

  def score(self, a) -> float:
    p = self.planted
    total = 0.0
    for g in self._live(a):
      if g not in self.planted_live:   # a gene P does not have scores 0
        continue
      if feasibility.get(a, g) == feasibility.get(p, g):
        total += self.w[g]
    return total

  def latency(self, a) -> float:
    return sum(self.lat[(g, feasibility.get(a, g))] for g in self._live(a))


def random_search(prob: Planted, budget: int, seed: int) -> list[float]:
  rng = np.random.default_rng([seed, 5])
  seen, scores = set(), []
  for _ in range(budget * 1000):
    if len(scores) == budget:
      break
    a = arch.sample(rng, prob.s)
    if a in seen or prob.latency(a) > prob.target:
      continue
    seen.add(a)
    scores.append(prob.score(a))
  return scores


def evolution(prob: Planted, budget: int, seed: int, algorithm: str,
              population: int) -> list[float]:
  with tempfile.TemporaryDirectory() as d:
    r = run(prob.s, lambda archs: ([prob.score(a) for a in archs],
                                   [{} for _ in archs]),
            {"latency_ms": prob.latency}, target=prob.target, budget=budget,
            workdir=d, seed=seed, algorithm=algorithm,
            population=population, progress=False, plot=False)
  assert all(x.costs["latency_ms"] <= prob.target for x in r.records)
  return [x.accuracy for x in r.records]


def summarise(curves: list[list[float]], opts: list[float]) -> dict:
  best = [max(c) / o for c, o in zip(curves, opts)]
  hits = [next((i + 1 for i, v in enumerate(c) if v >= o - 1e-9), None)
          for c, o in zip(curves, opts)]
  found = [h for h in hits if h is not None]
  return {"best": 100 * float(np.mean(best)),
          "best_sd": 100 * float(np.std(best)),
          "found": len(found), "evals": float(np.median(found))
          if found else None}


def bench(space_name: str, budget: int, population: int, seeds: int):
  s = space.load(space_name)
  algos = {"random": None, "aging": "aging", "ofa": "ofa",
           "surrogate": "surrogate"}
  curves = {k: [] for k in algos}
  opts, shares, times = [], [], {k: 0.0 for k in algos}
  for seed in range(seeds):
    prob = Planted(s, seed)
    opts.append(prob.opt)
    shares.append(prob.feasible_share)
    for name, algo in algos.items():
      t = time.perf_counter()
      # surrogate: its budget-aware defaults (population = random start)
      pop = None if algo == "surrogate" else population
      c = (random_search(prob, budget, seed) if algo is None else
           evolution(prob, budget, seed, algo, pop))
      times[name] += time.perf_counter() - t
      curves[name].append(c)
  rows = []
  for name in algos:
    m = summarise(curves[name], opts)
    evals = "-" if m["evals"] is None else f"{m['evals']:.0f}"
    rows.append(f"| {space_name} | {name} | {budget} | "
                f"{m['best']:.1f} ± {m['best_sd']:.1f} | "
                f"{m['found']}/{seeds} | {evals} | "
                f"{times[name] / seeds:.1f} |")
  return rows, float(np.mean(shares))


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--seeds", type=int, default=10)
  ap.add_argument("--quick", action="store_true")
  args = ap.parse_args()
  configs = [("tiny", 400, 40), ("mobilenetv3", 2000, 100)]
  if args.quick:
    configs = [("tiny", 150, 20)]
  print("## Search: evolution vs random search on a planted problem\n")
  print(f"`python benchmarks/bench_search.py --seeds {args.seeds}` "
        f"({platform.machine()}, {time.strftime('%Y-%m-%d')}); "
        f"{args.seeds} seeds, each a new planted optimum.\n")
  print("| space | algorithm | budget | best found, % of optimum "
        "(mean ± sd) | runs that found the optimum | median evals to "
        "optimum (those runs) | s/run |")
  print("|---|---|---|---|---|---|---|")
  notes = []
  for name, budget, pop in configs:
    rows, share = bench(name, budget, pop, args.seeds)
    print("\n".join(rows))
    notes.append(f"{name}: {space.load(name).num_archs():.2g} "
                 f"architectures, {100 * share:.0f}% of random ones "
                 f"feasible, population {pop} (surrogate: its budget "
                 "defaults)")
  print("\n" + "; ".join(notes) + ".")


if __name__ == "__main__":
  main()
