"""Rank fidelity: how well supernets trained with different recipes order
architectures compared with training each from scratch.

  python benchmarks/bench_rank_fidelity.py [--samples 16] [--steps 300]
      [--dataset digits-20] [--resolution 24] [--recipes base,n_random2,...]
      [--root /tmp/rank_fidelity]

The tiny space on an offline dataset (default `digits-20`: 20 training
images per class, the other 1237 of digits' training pool as val), one
input resolution. One sample of `--samples` architectures (stratified over
MACs, largest and smallest included) is trained standalone once under 2
seeds (`hwnas.rank_check`, the `rank` recipe of hwnas/configs/train.py) and
shared by every recipe; each supernet recipe is trained into its own
workdir and evaluated on the same architectures. Weight-sharing recipes
hold the training compute fixed: steps x subnets per step is the same
(`base`: 1 random subnet, i.e. 3 per step; `n_random2`: 4 per step for 3/4
of the steps). Evaluation-time variants (BN recalibration batches, a short
fine-tune per candidate) reuse the `base` supernet. Each supernet workdir
and the standalone runs are resumable: rerunning the command reuses them.

Writes a markdown section to benchmarks/results/rank_fidelity.md (and
prints it); `python scripts/collect_results.py` stitches RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from hwnas import rank_check
from hwnas.configs import rank_check as rank_config
from hwnas.configs import supernet as supernet_config
from hwnas.supernet import loop

ROOT = pathlib.Path(__file__).resolve().parents[1]

# name -> (description, supernet config overrides as a function of steps,
#          rank-check eval overrides)
RECIPES = {
    "base": ("tiny config: sandwich largest+smallest+1 random, in-place KD "
             "0.5", {}, {}),
    "n_random2": ("2 random subnets per step, 3/4 of the steps (same "
                  "compute)", {"train.n_random": 2, "steps_factor": 0.75},
                  {}),
    "kd0": ("no in-place distillation (kd_ratio 0)",
            {"train.kd_ratio": 0.0}, {}),
    "kd1": ("in-place distillation weight 1.0", {"train.kd_ratio": 1.0}, {}),
    "ps": ("progressive shrinking, sorted channels",
           {"train.progressive_shrinking": True}, {}),
    "ps_n2": ("progressive shrinking, 2 random subnets per step, 3/4 of "
              "the steps (same compute)",
              {"train.progressive_shrinking": True, "train.n_random": 2,
               "steps_factor": 0.75}, {}),
    "long2x": ("base, twice the steps (2x compute)",
               {"steps_factor": 2.0}, {}),
    "bn1": ("base supernet, 1 BN recalibration batch", None,
            {"eval.bn_batches": 1}),
    "bn8": ("base supernet, 8 BN recalibration batches", None,
            {"eval.bn_batches": 8}),
    "ft20": ("base supernet, 20 fine-tune steps per candidate", None,
             {"eval.finetune_steps": 20}),
}


def _set(c, key, value):
  *parents, leaf = key.split(".")
  for p in parents:
    c = c[p]
  c[leaf] = value


def train_supernet(root: pathlib.Path, name: str, args) -> tuple[
    pathlib.Path, float]:
  """Trains (or reuses) the supernet of recipe `name`; (workdir, wall s)."""
  _, over, _ = RECIPES[name]
  c = supernet_config.get_config("tiny")
  c.dataset = args.dataset
  c.train.resolutions = (args.resolution,)
  c.train.steps = args.steps
  for k, v in over.items():
    if k == "steps_factor":
      c.train.steps = int(round(args.steps * v))
    else:
      _set(c, k, v)
  wd = root / f"sn_{name}"
  if (wd / "checkpoints" / str(c.train.steps)).is_dir():
    return wd, 0.0  # finished earlier (its final evaluation too)
  t = time.perf_counter()
  loop.train(c, wd, progress=False)
  return wd, time.perf_counter() - t


def train_shard(root: pathlib.Path, args) -> None:
  """Trains the standalone runs of shard `i` of `n` (`--shard i/n`): several
  processes share a loaded CPU's time without touching the same run; the
  main invocation then finds every run finished (rank-check reuses them)."""
  from hwnas import arch as arch_lib, data  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  i, n = (int(x) for x in args.shard.split("/"))
  wd, _ = train_supernet(root, "base", args)
  c = rank_config.get_config()
  c.samples = args.samples
  space, _, _, sn_config = evaluate.load_workdir(wd)
  ds = data.load_for(sn_config)
  out = root / "rank_check"
  archs = rank_check._load_sample(out, rank_check.sample_architectures(  # pylint: disable=protected-access
      space, c.samples, seed=c.seed,
      cost=rank_check.cost_function(space, c.stratify),
      resolutions=tuple(sn_config.train.resolutions), pool=c.pool), c)
  jobs = [(a, s) for a in range(len(archs)) for s in c.seeds]
  for j, (a, s) in enumerate(jobs):
    if j % n == i:
      cfg = rank_check._standalone_config(c, sn_config.dataset, s)  # pylint: disable=protected-access
      r = rank_check._train_one(space, archs[a], cfg,  # pylint: disable=protected-access
                                out / "standalone" / f"a{a:02d}_s{s}", ds)
      print(f"a{a:02d} s{s} {arch_lib.to_string(archs[a])} "
            f"{r['val/accuracy']:.4f}", flush=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--samples", type=int, default=16)
  p.add_argument("--steps", type=int, default=300,
                 help="supernet steps of the base recipe")
  p.add_argument("--dataset", default="digits-20")
  p.add_argument("--resolution", type=int, default=24)
  p.add_argument("--recipes", default="base,n_random2,kd0,ps,bn1,bn8,ft20")
  p.add_argument("--root", default="/tmp/rank_fidelity")
  p.add_argument("--shard", help="i/n: only train standalone runs "
                 "j with j % n == i (then exit)")
  p.add_argument("--train-only", action="store_true",
                 help="only train the recipes' supernets (to run beside "
                 "another invocation that trains the standalone set)")
  p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                      "rank_fidelity.md"))
  args = p.parse_args()
  root = pathlib.Path(args.root)
  root.mkdir(parents=True, exist_ok=True)
  if args.shard:
    train_shard(root, args)
    return
  rows, t_all = [], time.perf_counter()
  for name in args.recipes.split(","):
    desc, over, eval_over = RECIPES[name]
    wd, sn_s = train_supernet(root, name if over is not None else "base",
                              args)
    if args.train_only:
      print(name, f"supernet {sn_s:.0f}s", flush=True)
      continue
    c = rank_config.get_config()
    c.samples = args.samples
    for k, v in eval_over.items():
      _set(c, k, v)
    t = time.perf_counter()
    # One output dir for all recipes: the sample and the standalone runs
    # are the same, so they are trained once and reused.
    r = rank_check.run(wd, c, out=root / "rank_check")
    rc_s = time.perf_counter() - t
    (root / f"rank_check_{name}.json").write_text(json.dumps(r, indent=1))
    s = r["summary"]
    rows.append((name, desc, s, sn_s, rc_s, r["timing"]))
    print(name, json.dumps(s), f"supernet {sn_s:.0f}s rank-check "
          f"{rc_s:.0f}s", flush=True)
  total = time.perf_counter() - t_all
  if args.train_only:
    return
  first = json.loads((root / f"rank_check_{rows[0][0]}.json").read_text())
  st = np.asarray([list(r["standalone"].values()) for r in first["rows"]])
  lines = [
      "## Rank fidelity: supernet vs standalone accuracy "
      "(hwnas.rank_check)", "",
      f"Command: `python benchmarks/bench_rank_fidelity.py --samples "
      f"{args.samples} --steps {args.steps} --dataset {args.dataset} "
      f"--resolution {args.resolution} --recipes {args.recipes}` "
      f"({time.strftime('%Y-%m-%d')}); {total / 60:.0f} min wall on the "
      "shared 2-core CPU (heavily loaded by other jobs).", "",
      f"Tiny space at {args.resolution} px, {args.samples} architectures "
      "(stratified over MACs; largest and smallest included), each trained "
      "from scratch under seeds 0 and 1 with the `rank` recipe "
      "(hwnas/configs/train.py: "
      f"{first['config']['standalone']['train']['steps']} steps, batch "
      f"{first['config']['standalone']['train']['batch_size']}, AdamW). "
      f"Accuracies on the {first['dataset']} val split "
      f"({first['split_size']} images). Standalone accuracy (mean of "
      f"seeds) spans {st.mean(1).min():.3f}-{st.mean(1).max():.3f}; "
      f"noise ceiling (Kendall tau, seed 0 vs seed 1) "
      f"{first['summary']['noise_ceiling']:.2f}.", "",
      "| recipe | what | Kendall tau | Spearman rho | tau vs one seed | "
      "of ceiling | best in standalone top 3 | top-3 overlap | mean gap | "
      "supernet acc span | supernet train s | eval s |",
      "|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|"]
  for name, desc, s, sn_s, rc_s, timing in rows:
    frac = s["ceiling_fraction"]
    ev = timing["supernet_eval_s"] + timing["finetune_s"]
    lines.append(
        f"| {name} | {desc} | {s['kendall_tau']:.2f} | "
        f"{s['spearman_rho']:.2f} | {s['kendall_tau_per_seed']:.2f} | "
        f"{'-' if frac is None else f'{frac:.0%}'} | "
        f"{'yes' if s['best_in_top_k'] else 'no'} | "
        f"{s['top_k_overlap']:.2f} | {s['mean_gap']:+.3f} | "
        f"{s['supernet_spread']:.3f} | {sn_s:.0f} | {ev:.0f} |")
  lines += ["", "Supernet train s is 0 where the workdir was reused; "
            "eval s is BN recalibration + val pass of every architecture "
            "(plus the fine-tunes for ft rows: their cost)."]
  text = "\n".join(lines) + "\n"
  print(text)
  pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
  sys.exit(main())
