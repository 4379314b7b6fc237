"""Frontier: at equal Edge TPU latency, does hwnas's search winner beat the
networks a person would pick?

  python benchmarks/bench_frontier.py --workdir /work/frontier_run    # full
  python benchmarks/bench_frontier.py --workdir /work/fm --medium    # half
  python benchmarks/bench_frontier.py --workdir /tmp/fq --quick       # smoke

Needs the `animals` data: pip install --no-deps animal-mnist==0.4

On `animals` (28x28 silhouettes, hwnas.data.animals) and the
`edgetpu-mini` space of Edge TPU blocks, with the shipped estimated Edge TPU
(USB 3) table `edgetpu-usb3/edgetpu-mini` as the latency model:

1. data: dataset sizes and a logistic-regression baseline (val and test);
2. supernet: trained with the default recipe (progressive shrinking, 2
   random subnets per step; hwnas/configs/supernet.py);
3. at each of three latency targets:
   a. search: `hwnas search` (surrogate-assisted evolution) with the
      supernet as evaluator, `--budget` evaluations;
   b. random: the best of `--budget` random architectures under the target
      (the same evaluator; `aging` with one random generation);
   c. hand design: the MobileNetV2- and MobileNetV3-style templates of the
      space (hwnas.hand_design), each scaled by width multiplier and
      resolution to its largest member under the target;
4. standalone: every network of 3 (and a stratified sample over latency,
   for the rank check) trained from scratch with one recipe under every
   seed (`hwnas.rank_check.run`, which also gives the supernet's rank
   fidelity on exactly these networks);
5. report: per target, test accuracy mean +- sd over seeds of the search
   winner, the better template (chosen on *val* accuracy: the test split
   decides nothing) and random search; the paired difference winner -
   baseline (per seed) against 2 x its sd; stage wall times; a plot.

Options that continue a finished run in the same workdir (its stages are
reused): `--rerank K` re-ranks the K best networks of every search by
fine-tuning them from the supernet; `--long-steps N` retrains each
target's search winner and baseline for N steps under every seed;
`--at-baseline [K]` (with `--long-steps N`) runs, per target, one more
search whose latency target is the baseline template's own predicted
latency, so that the winner is at equal or lower latency by
construction (how MnasNet compares with MobileNetV2 at MobileNetV2's
latency), re-ranked with K > 0, and retrains its winner and the
baseline for N steps under every seed.

Every stage is cached in the workdir (`stages.json` plus each stage's own
resumable workdir), so an interrupted run continues where it stopped: rerun
the same command. `--quick` runs every stage with tiny settings (a depth-1
copy of the space, a few steps) to check the script end to end; its numbers
mean nothing.

Writes WORKDIR/frontier.json, WORKDIR/frontier.md and WORKDIR/frontier.png;
with `--publish` (full runs) also benchmarks/results/frontier.md and
docs/frontier.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import shutil
import sys
import time

import numpy as np
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPACE = "edgetpu-mini"
TABLE = "edgetpu-usb3/edgetpu-mini"
# From where both templates' smallest members fit (0.545 / 0.566 ms) to
# where the MobileNetV2 family has reached its largest member (0.605 ms)
# and MobileNetV3's is at 3/4 width: the budgets a person would scale
# these designs to (`hand_design.family` with the table, in the report).
TARGETS_MS = (0.58, 0.62, 0.80)

SETTINGS = {
    # 2000 supernet steps of 4 subnets, 6 searches of 150 evaluations,
    # about 18 networks x 3 seeds of 800 steps at batch 64 = 8.8 epochs.
    # With edgetpu-mini version 1 the supernet step alone ran at about 26 s
    # under load 5-7 (its largest member cost 179 MMACs); version 2's
    # sandwich costs 5.2x fewer MACs (40 vs 209 MMACs per image for the
    # largest + smallest + 2 random subnets, by hwnas.counting). Several
    # hours on an idle 2-core CPU (an estimate, not yet measured);
    # stages.json records what each stage took.
    "full": dict(supernet_steps=2000, batch_size=64, budget=150,
                 standalone_steps=800, seeds=(0, 1, 2), rank_extra=4,
                 max_depth=None, resolutions=None, targets_ms=TARGETS_MS,
                 bn_batches=4),
    # The full design at about half the training (supernet 1000 steps =
    # 11 epochs, standalone 400 steps = 4.4 epochs, 100 evaluations per
    # search): what fits a 2-3 h session on a 2-core CPU.
    "medium": dict(supernet_steps=1000, batch_size=64, budget=100,
                   standalone_steps=400, seeds=(0, 1, 2), rank_extra=0,
                   max_depth=None, resolutions=None, targets_ms=TARGETS_MS,
                   bn_batches=4),
    # Every stage, tiny (depth 1, one resolution: one compile of each
    # model; one target): proves the script runs end to end.
    "quick": dict(supernet_steps=4, batch_size=16, budget=6,
                  standalone_steps=4, seeds=(0, 1), rank_extra=0,
                  max_depth=1, resolutions=(28,), targets_ms=(0.62,),
                  bn_batches=1),
}


class Stages:
  """`stages.json`: what is finished and how long it took."""

  def __init__(self, workdir: pathlib.Path):
    self.path = workdir / "stages.json"
    self.d = json.loads(self.path.read_text()) if self.path.is_file() else {}

  def run(self, name: str, fn):
    if name in self.d:
      print(f"[{name}] cached ({self.d[name]['wall_s']:.0f} s when run)",
            flush=True)
      return self.d[name]["value"]
    print(f"[{name}] ...", flush=True)
    t = time.perf_counter()
    value = fn()
    self.d[name] = {"wall_s": time.perf_counter() - t, "value": value}
    tmp = self.path.with_suffix(".tmp")
    tmp.write_text(json.dumps(self.d, indent=1) + "\n")
    tmp.replace(self.path)
    print(f"[{name}] done in {self.d[name]['wall_s']:.0f} s", flush=True)
    return value


def space_file(workdir: pathlib.Path, max_depth: int | None,
               resolutions) -> pathlib.Path:
  """The space the run uses: edgetpu-mini, or a copy with depths capped
  and fewer resolutions (--quick)."""
  from hwnas import resources  # pylint: disable=g-import-not-at-top
  src = resources.search_spaces_dir() / f"{SPACE}.yaml"
  d = yaml.safe_load(src.read_text())
  if max_depth:
    for st in d["stages"]:
      st["depths"] = [x for x in st["depths"] if x <= max_depth] or [1]
  if resolutions:
    d["resolutions"] = list(resolutions)
  out = workdir / "space.yaml"
  out.write_text(yaml.safe_dump(d, sort_keys=False))
  return out


def data_stage() -> dict:
  """Sizes of `animals` and a logistic regression on raw pixels."""
  from sklearn import linear_model, preprocessing  # pylint: disable=g-import-not-at-top
  from hwnas import data  # pylint: disable=g-import-not-at-top
  from hwnas.data import animals  # pylint: disable=g-import-not-at-top
  raw, _ = animals.read_arrays()
  ds = data.load("animals")
  flat = {s: ds[s].images[..., 0].reshape(len(ds[s]), -1) for s in
          data.SPLITS}
  scale = preprocessing.StandardScaler().fit(flat["train"])
  lr = linear_model.LogisticRegression(max_iter=500, C=0.1)
  lr.fit(scale.transform(flat["train"]), ds["train"].labels)
  acc = {s: float(lr.score(scale.transform(flat[s]), ds[s].labels))
         for s in ("val", "test")}
  return {"raw_images": int(len(raw)),
          "duplicates_removed": int(len(raw) - sum(
              ds.info.split_sizes.values())),
          "split_sizes": dict(ds.info.split_sizes),
          "logistic_regression": acc}


def supernet_config(space: pathlib.Path, s: dict):
  from hwnas.configs import supernet as supernet_config_lib  # pylint: disable=g-import-not-at-top
  c = supernet_config_lib.get_config("tiny,ps_n2")
  c.space, c.dataset = str(space), "animals"
  c.train.steps, c.train.batch_size = s["supernet_steps"], s["batch_size"]
  c.train.checkpoint_every = max(1, min(500, s["supernet_steps"]))
  c.train.log_every = max(1, min(50, s["supernet_steps"]))
  c.optimizer.warmup_steps = min(100, max(1, s["supernet_steps"] // 10))
  c.eval.batch_size, c.eval.bn_batches = 256, s["bn_batches"]
  return c


def train_supernet(workdir: pathlib.Path, space: pathlib.Path,
                   s: dict) -> dict:
  from hwnas.supernet import loop  # pylint: disable=g-import-not-at-top
  row = loop.train(supernet_config(space, s), workdir / "supernet",
                   progress=False)
  return {k: float(v) for k, v in row.items()
          if isinstance(v, (int, float)) and k.startswith("eval/")}


def search_stage(workdir, space, target, budget, algorithm,
                 rerank=None, prefix: str = "") -> dict:
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import pipeline  # pylint: disable=g-import-not-at-top
  kw = {} if algorithm == "surrogate" else {"population": budget}
  if rerank is not None:
    kw["rerank"] = rerank
  wd = workdir / f"{prefix}{'search' if algorithm == 'surrogate' else 'random'}" \
      f"_{target:.{3 if prefix else 2}f}ms"
  r = pipeline.search(str(space), wd, tables=[TABLE], target_ms=target,
                      supernet=workdir / "supernet", budget=budget, seed=0,
                      algorithm=algorithm, progress=False, references=[],
                      echo=lambda m: print("  " + m, flush=True), **kw)
  if r.best is None:
    return {"arch": None}
  out = {"arch": arch_lib.to_dict(r.best.arch),
         "supernet_val": float(r.best.accuracy)}
  if rerank is not None:
    rr = json.loads((wd / "rerank.json").read_text())
    out["rerank"] = {k: rr[k] for k in ("search_best", "pick", "changed",
                                        "wall_s")}
    out["rerank"]["candidates"] = [
        {k: c[k] for k in ("arch_string", "supernet", "finetuned")}
        for c in rr["candidates"]]
  return out


def templates_stage(space_path, target) -> dict:
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import hand_design  # pylint: disable=g-import-not-at-top
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas.latency import load_table, make_cost_fn  # pylint: disable=g-import-not-at-top
  sp = space_lib.load(space_path)
  cost = make_cost_fn(load_table(TABLE), sp)
  out = {}
  for name in hand_design.TEMPLATES:
    a = hand_design.largest_under(sp, name, cost, target)
    out[name] = None if a is None else {
        "arch": arch_lib.to_dict(a), "what": hand_design.describe(a, sp)}
  return out


def rank_config(s: dict, n_include: int):
  from hwnas.configs import rank_check as rank_config_lib  # pylint: disable=g-import-not-at-top
  c = rank_config_lib.get_config()
  c.samples = n_include + 2 + s["rank_extra"]   # + largest, smallest
  c.seeds = tuple(s["seeds"])
  c.standalone.train.steps = s["standalone_steps"]
  c.standalone.train.batch_size = 64 if s["max_depth"] is None else 16
  c.standalone.train.checkpoint_every = s["standalone_steps"]
  c.standalone.train.log_every = max(1, min(100, s["standalone_steps"]))
  c.standalone.optimizer.warmup_steps = min(
      50, max(1, s["standalone_steps"] // 10))
  c.standalone.eval.batch_size = 256
  c.eval.bn_batches = s["bn_batches"]
  return c


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--quick", action="store_true",
                 help="tiny settings: checks the script, numbers mean "
                 "nothing")
  p.add_argument("--medium", action="store_true",
                 help="the full design at about half the training "
                 "(SETTINGS['medium'])")
  p.add_argument("--rerank", type=int, default=0, metavar="K",
                 help="re-rank the K best networks of the search and of "
                 "random search by fine-tuning from the supernet "
                 "(hwnas.rerank) before picking; continues a finished run "
                 "in the same workdir, reusing its supernet and searches")
  p.add_argument("--rerank-steps", type=int, default=100)
  p.add_argument("--long-steps", type=int, default=0, metavar="N",
                 help="also retrain, at every target, the search winner "
                 "and the baseline template from scratch for N steps under "
                 "every seed (same recipe otherwise): does the comparison "
                 "hold with longer training?")
  p.add_argument("--at-baseline", type=int, nargs="?", const=0,
                 default=None, metavar="K",
                 help="with --long-steps N: also search at each target "
                 "with the baseline template's own predicted latency as "
                 "the target (equal latency by construction; K > 0 "
                 "re-ranks its K best with --rerank-steps fine-tuning "
                 "steps), and retrain its winner and the baseline N steps "
                 "under every seed")
  p.add_argument("--publish", action="store_true",
                 help="also write benchmarks/results/frontier.md and "
                 "docs/frontier.png")
  args = p.parse_args()
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import rank_check  # pylint: disable=g-import-not-at-top
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas.latency import load_table, make_cost_fn  # pylint: disable=g-import-not-at-top
  mode = "quick" if args.quick else "medium" if args.medium else "full"
  s = SETTINGS[mode]
  wd = pathlib.Path(args.workdir)
  wd.mkdir(parents=True, exist_ok=True)
  saved = wd / "settings.json"
  want = {"mode": mode, **s}
  if saved.is_file() and json.loads(saved.read_text()) != json.loads(
      json.dumps(want)):
    sys.exit(f"error: {wd} holds a run with other settings "
             f"({saved}); use another --workdir")
  saved.write_text(json.dumps(want, indent=1) + "\n")
  stages = Stages(wd)
  space_path = space_file(wd, s["max_depth"], s["resolutions"])
  sp = space_lib.load(space_path)
  cost = make_cost_fn(load_table(TABLE), sp)

  rerank = tag = None
  if args.rerank:
    from hwnas import rerank as rerank_lib  # pylint: disable=g-import-not-at-top
    rerank = rerank_lib.Settings(top=args.rerank, steps=args.rerank_steps,
                                 batch_size=s["batch_size"])
    tag = f"rerank{args.rerank}x{args.rerank_steps}"
  data = stages.run("data", data_stage)
  sn = stages.run("supernet", lambda: train_supernet(wd, space_path, s))
  per_target = {}
  for t in s["targets_ms"]:
    key = f"{t:.2f}"
    per_target[key] = {
        "search": stages.run(f"search {key} ms", lambda t=t: search_stage(
            wd, space_path, t, s["budget"], "surrogate")),
        "random": stages.run(f"random {key} ms", lambda t=t: search_stage(
            wd, space_path, t, s["budget"], "aging")),
        "templates": stages.run(f"templates {key} ms",
                                lambda t=t: templates_stage(space_path, t))}
    if rerank is not None:
      v = per_target[key]
      v["search_plain"], v["random_plain"] = v["search"], v["random"]
      v["search"] = stages.run(f"search {key} ms {tag}", lambda t=t: (
          search_stage(wd, space_path, t, s["budget"], "surrogate",
                       rerank)))
      v["random"] = stages.run(f"random {key} ms {tag}", lambda t=t: (
          search_stage(wd, space_path, t, s["budget"], "aging", rerank)))
  include, seen = [], set()
  for v in per_target.values():
    for d in [v["search"], v["random"], *v["templates"].values(),
              v.get("search_plain")]:
      if d and d.get("arch"):
        a = arch_lib.from_dict(d["arch"])
        if arch_lib.to_string(a) not in seen:
          seen.add(arch_lib.to_string(a))
          include.append(a)
  rc_cfg = rank_config(s, len(include))

  out = wd / ("standalone" if tag is None else f"standalone_{tag}")

  def standalone():
    if tag is not None:
      reuse_standalone(wd / "standalone", out, rank_check, wd / "supernet",
                       rc_cfg, include, cost)
    r = rank_check.run(wd / "supernet", rc_cfg, out=out,
                       include=include, cost=cost)
    return {"summary": r["summary"], "rows": r["rows"],
            "lines": rank_check.summary_lines(r)}
  rc = stages.run("standalone + rank check" + (f" {tag}" if tag else ""),
                  standalone)
  result = report(wd, sp, cost, data, sn, per_target, rc, stages, mode, s,
                  None if rerank is None else {"top": rerank.top,
                                               "steps": rerank.steps})
  if args.long_steps:
    result["long"] = stages.run(
        f"long standalone {args.long_steps}" + (f" {tag}" if tag else ""),
        lambda: long_stage(wd, sp, result, rc_cfg, args.long_steps))
    result["wall_s"] = {k: v["wall_s"] for k, v in stages.d.items()}
  if args.at_baseline is not None:
    if not args.long_steps:
      sys.exit("error: --at-baseline retrains with --long-steps N; give N")
    ab_rerank = None
    if args.at_baseline:
      from hwnas import rerank as rerank_lib  # pylint: disable=g-import-not-at-top
      ab_rerank = rerank_lib.Settings(
          top=args.at_baseline, steps=args.rerank_steps,
          batch_size=s["batch_size"])
    result["at_baseline"] = stages.run(
        f"at baseline {args.long_steps}" + (
            f" rerank{args.at_baseline}x{args.rerank_steps}"
            if ab_rerank else ""),
        lambda: at_baseline_stage(wd, space_path, sp, cost, result, rc_cfg,
                                  s, args.long_steps, ab_rerank))
    result["wall_s"] = {k: v["wall_s"] for k, v in stages.d.items()}
  (wd / "frontier.json").write_text(json.dumps(result, indent=1) + "\n")
  md = markdown(result, args)
  (wd / "frontier.md").write_text(md)
  plot(result, wd / "frontier.png")
  print(md)
  if args.publish:
    (ROOT / "benchmarks" / "results" / "frontier.md").write_text(md)
    shutil.copy(wd / "frontier.png", ROOT / "docs" / "frontier.png")


class LongRuns:
  """Networks retrained from scratch for `steps` steps under every seed
  (the rank-check recipe otherwise: the same warm-up, learning rate and
  batch); `wd/long_<steps>/<network>_s<seed>/` holds one resumable run
  each, so a network shared by two stages trains once."""

  def __init__(self, wd, sp, rc_cfg, steps: int):
    from hwnas import data as data_lib  # pylint: disable=g-import-not-at-top
    from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
    import ml_collections  # pylint: disable=g-import-not-at-top
    self.wd, self.sp, self.steps, self.seeds = wd, sp, steps, rc_cfg.seeds
    self.sn_config = ml_collections.ConfigDict(
        checkpoint.read_config(wd / "supernet")["config"])
    self.ds = data_lib.load_for(self.sn_config)
    self.cfg = copy.deepcopy(rc_cfg)
    self.cfg.standalone.train.steps = steps
    self.cfg.standalone.train.checkpoint_every = steps
    self.done = {}

  def __call__(self, name: str, arch_dict: dict) -> dict:
    """{'val': [...], 'test': [...]} accuracies, one per seed."""
    from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
    from hwnas import rank_check  # pylint: disable=g-import-not-at-top
    if name not in self.done:
      a = arch_lib.from_dict(arch_dict)
      accs = {"val": [], "test": []}
      for sd in self.seeds:
        r = rank_check._train_one(  # pylint: disable=protected-access
            self.sp, a, rank_check._standalone_config(  # pylint: disable=protected-access
                self.cfg, self.sn_config.dataset, int(sd)),
            self.wd / f"long_{self.steps}" / f"{_short(name)}_s{int(sd)}",
            self.ds)
        accs["val"].append(r["val/accuracy"])
        accs["test"].append(r["test/accuracy"])
        print(f"  long {self.steps}: {name} seed {sd}: val "
              f"{r['val/accuracy']:.4f}", flush=True)
      self.done[name] = accs
    return self.done[name]


def _paired(search: dict, baseline: dict) -> dict:
  """Search minus baseline per seed (test): mean, sd, and whether it wins
  by more than 2 sd at equal or lower predicted latency."""
  d = np.asarray(search["test"]) - np.asarray(baseline["test"])
  sd_ = float(d.std(ddof=1)) if len(d) > 1 else 0.0
  return {"mean": float(d.mean()), "sd": sd_,
          "beats": bool(d.mean() > 2 * sd_ and search["latency_ms"] <=
                        baseline["latency_ms"] + 1e-9)}


def long_stage(wd, sp, result, rc_cfg, steps: int) -> dict:
  """Per target, the search winner and the baseline template retrained
  from scratch for `steps` steps under every seed (`LongRuns`)."""
  runs = LongRuns(wd, sp, rc_cfg, steps)
  out = {}
  for key, e in result["targets"].items():
    base = e["baseline"] and e["templates"][e["baseline"]]
    out[key] = {}
    for who, c in {"search": e["search"], "baseline": base}.items():
      if c:
        out[key][who] = {"arch": c["arch"], "what": c["what"],
                         "latency_ms": c["latency_ms"],
                         **runs(c["arch"], c["arch_dict"])}
    if len(out[key]) == 2:
      out[key]["diff"] = _paired(out[key]["search"], out[key]["baseline"])
  return {"steps": steps, "targets": out}


def at_baseline_stage(wd, space_path, sp, cost, result, rc_cfg, s,
                      steps: int, rerank) -> dict:
  """Equal latency by construction: per target, a search whose latency
  target is the baseline template's own predicted latency (as MnasNet
  compares with MobileNetV2 at MobileNetV2's latency), then its winner
  and the baseline retrained for `steps` steps under every seed."""
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import counting  # pylint: disable=g-import-not-at-top
  runs = LongRuns(wd, sp, rc_cfg, steps)
  searched, out = {}, {}
  for key, e in result["targets"].items():
    if not e["baseline"]:
      continue
    base = e["templates"][e["baseline"]]
    lat = float(base["latency_ms"])
    if lat not in searched:
      searched[lat] = search_stage(wd, space_path, lat, s["budget"],
                                   "surrogate", rerank, prefix="at_base_")
    found = searched[lat]
    if not found.get("arch"):
      continue
    a = arch_lib.from_dict(found["arch"])
    name = arch_lib.to_string(a)
    win = {"what": "hwnas search at the baseline's latency", "arch": name,
           "arch_dict": found["arch"], "latency_ms": cost(a),
           "mmacs": counting.macs(arch_lib.decode(sp, a)) / 1e6,
           "supernet_val": found["supernet_val"],
           "rerank": found.get("rerank")}
    win.update(runs(name, found["arch"]))
    b = {k: base[k] for k in ("what", "arch", "latency_ms", "mmacs")}
    b.update(runs(base["arch"], base["arch_dict"]))
    out[key] = {"target_ms": lat, "search": win, "baseline": b,
                "diff": _paired(win, b)}
  return {"steps": steps, "rerank": None if rerank is None else {
      "top": rerank.top, "steps": rerank.steps}, "targets": out}


def _short(arch_string: str) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  return hashlib.sha1(arch_string.encode()).hexdigest()[:12]


def reuse_standalone(old: pathlib.Path, new: pathlib.Path, rank_check,
                     supernet, rc_cfg, include, cost) -> None:
  """Seeds `new` (a rank check of another sample) with the finished
  standalone runs in `old` of the same networks: same recipe, same seeds,
  so the same result (`hwnas.rank_check` reuses a run with a result.json)."""
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  if not (old / "archs.json").is_file() or (new / "archs.json").is_file():
    return
  saved = checkpoint.read_config(supernet)
  sp = space_lib.load(saved.get("space_path") or saved["config"]["space"])
  resolutions = tuple(saved["config"]["train"]["resolutions"]) or \
      sp.resolutions
  old_archs = [arch_lib.to_string(arch_lib.from_dict(d)) for d in
               json.loads((old / "archs.json").read_text())["archs"]]
  new_archs = rank_check.sample_architectures(
      sp, int(rc_cfg.samples), seed=int(rc_cfg.seed), cost=cost,
      include=include, resolutions=resolutions, pool=int(rc_cfg.pool))
  for i, a in enumerate(new_archs):
    name = arch_lib.to_string(a)
    if name not in old_archs:
      continue
    j = old_archs.index(name)
    for sd in rc_cfg.seeds:
      src = old / "standalone" / f"a{j:02d}_s{int(sd)}"
      dst = new / "standalone" / f"a{i:02d}_s{int(sd)}"
      if (src / "result.json").is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst)


def _acc(row: dict, split: str) -> np.ndarray:
  key = "standalone" if split == "val" else "standalone_test"
  return np.asarray([row[key][k] for k in sorted(row[key])], np.float64)


def report(wd, sp, cost, data, sn, per_target, rc, stages, mode, s,
           rerank_info=None) -> dict:
  """Joins the stages: per target, each contender's accuracies."""
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import counting  # pylint: disable=g-import-not-at-top
  rows = {r["arch_string"]: r for r in rc["rows"]}

  def entry(d, what):
    if not d or not d.get("arch"):
      return None
    a = arch_lib.from_dict(d["arch"])
    r = rows[arch_lib.to_string(a)]
    val, test = _acc(r, "val"), _acc(r, "test")
    return {"what": what, "arch": arch_lib.to_string(a),
            "arch_dict": arch_lib.to_dict(a),
            "latency_ms": cost(a),
            "mmacs": counting.macs(arch_lib.decode(sp, a)) / 1e6,
            "supernet_val": r["supernet"], "val": val.tolist(),
            "test": test.tolist(), "val_mean": float(val.mean()),
            "test_mean": float(test.mean()),
            "test_sd": float(test.std(ddof=1)) if len(test) > 1 else 0.0}

  targets = {}
  for key, v in per_target.items():
    tpl = {n: entry(d, f"{n} ({d['what']})") for n, d in
           v["templates"].items() if d}
    base_name = max(tpl, key=lambda n: tpl[n]["val_mean"]) if tpl else None
    rr = bool(v.get("search_plain"))
    e = {"search": entry(v["search"], "hwnas search" + (
             " + re-rank" if rr else "")),
         "random": entry(v["random"], "random search" + (
             " + re-rank" if rr else "")), "templates": tpl,
         "baseline": base_name}
    if rr:
      e["search_plain"] = entry(v["search_plain"],
                                "hwnas search, no re-rank")
      e["rerank"] = v["search"].get("rerank")
    if e["search"] and base_name:
      diff = np.asarray(e["search"]["test"]) - np.asarray(
          tpl[base_name]["test"])
      sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
      e["vs_baseline"] = {"mean": float(diff.mean()), "sd": sd,
                          "beats": bool(diff.mean() > 2 * sd and
                                        e["search"]["latency_ms"] <=
                                        tpl[base_name]["latency_ms"]
                                        + 1e-9)}
    if e["search"] and e["random"]:
      e["vs_random"] = float(e["search"]["test_mean"] -
                             e["random"]["test_mean"])
    targets[key] = e
  return {"mode": mode, "settings": s, "data": data, "supernet": sn,
          "targets": targets, "rank_check": rc["summary"],
          "rerank": rerank_info,
          "rank_lines": rc["lines"],
          "wall_s": {k: v["wall_s"] for k, v in stages.d.items()}}


def _verdict(mean: float, sd: float, lat_search: float,
             lat_base: float) -> str:
  if mean <= 2 * sd:
    return "does not beat it by more than 2 sd"
  if lat_search <= lat_base + 1e-9:
    return "beats it by more than 2 sd at equal or lower latency"
  return (f"beats it by more than 2 sd in accuracy, but at "
          f"{lat_search - lat_base:.3f} ms more predicted latency (both "
          "under the target): not at equal or lower latency")


def _fmt(e) -> str:
  return (f"{100 * e['test_mean']:.1f} ± {100 * e['test_sd']:.1f}"
          if e else "n/a")


def markdown(r: dict, args) -> str:
  s = r["settings"]
  cmd = "python benchmarks/bench_frontier.py --workdir WORKDIR" + {
      "quick": " --quick", "medium": " --medium --publish"}.get(
          r["mode"], " --publish")
  if r.get("long"):
    cmd += f" --long-steps {r['long']['steps']}"
  if r.get("rerank"):
    cmd += f" --rerank {r['rerank']['top']} --rerank-steps " \
        f"{r['rerank']['steps']}"
  if r.get("at_baseline"):
    rr = r["at_baseline"].get("rerank")
    cmd += (f" --at-baseline {rr['top']} --rerank-steps {rr['steps']}"
            if rr else " --at-baseline")
  lr = r["data"]["logistic_regression"]
  lines = [
      "## Frontier: search vs hand design at equal Edge TPU latency "
      "(issue 22)", "",
      f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {r['mode']} "
      "settings). Data `animals` (animal-mnist silhouettes, 28x28, "
      f"{r['data']['duplicates_removed']} exact duplicates removed, split "
      f"{r['data']['split_sizes']}); logistic regression on raw pixels: "
      f"val {100 * lr['val']:.1f}%, test {100 * lr['test']:.1f}%. Space "
      f"`{SPACE}`, latency from the shipped estimated table `{TABLE}`. "
      f"Supernet: {s['supernet_steps']} steps at batch {s['batch_size']}, "
      "progressive shrinking + 2 random subnets. Search and random search: "
      f"{s['budget']} supernet evaluations each. Every network retrained "
      f"from scratch, {s['standalone_steps']} steps, seeds "
      f"{list(s['seeds'])}; accuracies are on the **test** split (mean ± "
      "sd over seeds); the baseline template is the one with the better "
      "*val* accuracy.", "",
      "| target ms | network | latency ms | MMACs | supernet val % | "
      "test % |", "|---:|---|---:|---:|---:|---:|"]
  for key, e in r["targets"].items():
    contenders = [e["search"], e.get("search_plain"), e["random"],
                  *e["templates"].values()]
    for c in contenders:
      if c:
        mark = (" (baseline)" if e["baseline"] and c is e["templates"].get(
            e["baseline"]) else "")
        lines.append(f"| {key} | {c['what']}{mark} | {c['latency_ms']:.3f} "
                     f"| {c['mmacs']:.1f} | {100 * c['supernet_val']:.1f} | "
                     f"{_fmt(c)} |")
  lines += ["", "Search winner minus the baseline (paired by seed, test):"]
  for key, e in r["targets"].items():
    v = e.get("vs_baseline")
    if v:
      base = e["templates"][e["baseline"]]
      lines.append(f"- {key} ms: {100 * v['mean']:+.1f} ± "
                   f"{100 * v['sd']:.1f} points: "
                   + _verdict(v["mean"], v["sd"], e["search"]["latency_ms"],
                              base["latency_ms"])
                   + "; vs random search "
                   f"{100 * e.get('vs_random', float('nan')):+.1f} points")
  reranked = [(k, e) for k, e in r["targets"].items() if e.get("rerank")]
  if reranked:
    lines += ["", f"Re-ranking (`hwnas search --rerank "
              f"{r.get('rerank', {}).get('top')} --rerank-steps "
              f"{r.get('rerank', {}).get('steps')}`): the search's best "
              "distinct networks fine-tuned from the supernet, picked on "
              "val:"]
    for key, e in reranked:
      c = ", ".join(f"{x['arch_string']} {100 * x['supernet']:.1f} -> "
                    f"{100 * x['finetuned']:.1f}"
                    for x in e["rerank"]["candidates"])
      lines.append(f"- {key} ms: {'changed the pick' if e['rerank']['changed'] else 'kept the search best'} "
                   f"({e['rerank']['wall_s']:.0f} s); supernet -> "
                   f"fine-tuned val %: {c}")
  lines += ["", "Rank fidelity of the supernet on these networks plus a "
            "sample stratified over latency (`hwnas.rank_check`, val "
            "split):", ""] + [f"    {x}" for x in r["rank_lines"]]
  if r.get("long"):
    n = r["long"]["steps"]
    lines += ["", f"Longer training (`--long-steps {n}`): the search winner "
              f"and the baseline retrained from scratch for {n} steps "
              f"instead of {s['standalone_steps']} (seeds "
              f"{list(s['seeds'])}, test %, mean ± sd):", "",
              "| target ms | network | latency ms | test % | val % |",
              "|---:|---|---:|---:|---:|"]
    for key, t in r["long"]["targets"].items():
      for who in ("search", "baseline"):
        c = t.get(who)
        if c:
          te, va = np.asarray(c["test"]), np.asarray(c["val"])
          lines.append(
              f"| {key} | {c['what']} | {c['latency_ms']:.3f} | "
              f"{100 * te.mean():.1f} ± {100 * te.std(ddof=1) if len(te) > 1 else 0:.1f} | "
              f"{100 * va.mean():.1f} |")
    for key, t in r["long"]["targets"].items():
      v = t.get("diff")
      if v:
        lines.append(f"- {key} ms: search minus baseline "
                     f"{100 * v['mean']:+.1f} ± {100 * v['sd']:.1f} points: "
                     + _verdict(v["mean"], v["sd"],
                                t["search"]["latency_ms"],
                                t["baseline"]["latency_ms"]))
  if r.get("at_baseline"):
    ab = r["at_baseline"]
    how = (f", re-ranked (top {ab['rerank']['top']}, "
           f"{ab['rerank']['steps']} fine-tune steps)" if ab.get("rerank")
           else "")
    lines += ["", "Search at the baseline's latency (`--at-baseline`): at "
              "each target a search whose latency target is the baseline "
              f"template's own predicted latency{how}, {s['budget']} "
              f"evaluations; its winner and the baseline retrained "
              f"{ab['steps']} steps (seeds {list(s['seeds'])}, test %, "
              "mean ± sd):", "",
              "| target ms | searched at ms | network | latency ms | "
              "test % | val % |", "|---:|---:|---|---:|---:|---:|"]
    for key, t in ab["targets"].items():
      for who in ("search", "baseline"):
        c = t[who]
        te, va = np.asarray(c["test"]), np.asarray(c["val"])
        lines.append(
            f"| {key} | {t['target_ms']:.3f} | {c['what']} (`{c['arch']}`) | "
            f"{c['latency_ms']:.3f} | {100 * te.mean():.1f} ± "
            f"{100 * te.std(ddof=1) if len(te) > 1 else 0:.1f} | "
            f"{100 * va.mean():.1f} |")
    for key, t in ab["targets"].items():
      v = t["diff"]
      lines.append(f"- {key} ms: search minus baseline "
                   f"{100 * v['mean']:+.1f} ± {100 * v['sd']:.1f} points: "
                   + _verdict(v["mean"], v["sd"], t["search"]["latency_ms"],
                              t["baseline"]["latency_ms"]))
  lines += ["", "Stage wall times (s): " + ", ".join(
      f"{k} {v:.0f}" for k, v in r["wall_s"].items()), ""]
  return "\n".join(lines)


def plot(r: dict, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4.2))
  styles = {"search": ("C3", "o", "hwnas search"),
            "search_plain": ("C4", "D", "hwnas search, no re-rank"),
            "random": ("C0", "s", "random search"),
            "mobilenetv2": ("C2", "^", "MobileNetV2-style"),
            "mobilenetv3": ("C1", "v", "MobileNetV3-style")}
  seen = set()
  for key, e in r["targets"].items():
    ax.axvline(float(key), color="0.85", lw=0.8, zorder=0)
    for name, c in [("search", e["search"]),
                    ("search_plain", e.get("search_plain")),
                    ("random", e["random"]),
                    *e["templates"].items()]:
      if not c:
        continue
      color, marker, label = styles[name]
      ax.errorbar(c["latency_ms"], 100 * c["test_mean"],
                  yerr=100 * c["test_sd"], fmt=marker, color=color,
                  capsize=3, label=None if name in seen else label)
      seen.add(name)
  ax.set_xlabel("predicted Edge TPU (USB 3) latency, ms (estimated table)")
  ax.set_ylabel("test accuracy %, mean ± sd over seeds")
  ax.set_title(f"animals, {SPACE}: networks at {len(r['targets'])} "
               "latency target(s) (grey lines)", fontsize=9)
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  main()
