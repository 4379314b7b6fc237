"""`hwnas search`: evolutionary search against a latency table.

Wires a latency table (`hwnas.latency`) and an evaluator (the supernet of
`hwnas.supernet.evaluate`, or a trained predictor) into
`hwnas.search.run` through `hwnas.pipeline.search`; all logic lives in the
library.
"""

from __future__ import annotations

import sys

from hwnas import pipeline


def register(sub) -> None:
  p = sub.add_parser("search", help="evolutionary architecture search "
                     "against a latency table (resumes from --workdir)")
  p.add_argument("--space", required=True, help="space name or YAML file")
  p.add_argument("--table", action="append", default=[],
                 help="latency table name or path; repeat for several "
                 "devices (the first is the target's and the plot's)")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--target-ms", type=float,
                 help="latency target on the (first) table, in ms")
  g.add_argument("--target", type=float,
                 help="target on the primary cost when searching without a "
                 "table (e.g. --cost mmacs --target 300)")
  p.add_argument("--target-uj", type=float,
                 help="energy target in µJ on the first energy table "
                 "(`hwnas table energy`); combines with --target-ms")
  p.add_argument("--supernet", help="supernet workdir (--evaluator supernet)")
  p.add_argument("--evaluator", choices=("supernet", "predictor"),
                 default="supernet")
  p.add_argument("--accuracy", choices=("float", "int8"), default="float",
                 help="rank by float or by simulated int8 (TFLite full-int8"
                 " post-training quantisation) supernet accuracy; int8 also "
                 "records float accuracy in history.jsonl (see docs/search.md)")
  p.add_argument("--predictor", help="predictor directory (--evaluator "
                 "predictor; train with `hwnas predictor train`)")
  p.add_argument("--budget", type=int, default=1000,
                 help="total evaluations (default 1000)")
  p.add_argument("--workdir", required=True)
  p.add_argument("--objective", choices=("constraint", "reward", "pareto"),
                 default="constraint")
  p.add_argument("--algorithm",
                 choices=("surrogate", "aging", "ofa", "nsga2"),
                 help="default: surrogate (nsga2 for pareto); see "
                 "docs/search.md")
  p.add_argument("--population", type=int,
                 help="population (surrogate: the random first generation);"
                 " default: follows --budget, printed at the start")
  p.add_argument("--batch-size", type=int,
                 help="evaluations per generation (surrogate, aging); "
                 "default: follows --budget")
  p.add_argument("--mutation-prob", type=float, default=0.1,
                 help="per-gene mutation probability, in (0, 1]")
  p.add_argument("--reward-weight", type=float, default=-0.07,
                 help="MnasNet exponent w for --objective reward")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--cost", action="append", default=[],
                 choices=pipeline.COUNT_COSTS,
                 help="extra cost (repeatable): mmacs (MACs in millions), "
                 "mparams (parameters in millions)")
  p.add_argument("--reference", action="append", default=None,
                 help="reference network to mark on pareto.png (default: "
                 "every shipped one the table can predict)")
  p.add_argument("--eval-batch-size", type=int,
                 help="architectures per evaluator call (default: a "
                 "generation)")
  p.add_argument("--allow-cpu-fallback", action="store_true",
                 help="with an Edge TPU table, also search choices the Edge "
                 "TPU compiler leaves on the CPU (e.g. hard-swish); by "
                 "default such networks are left out (docs/search.md)")
  p.add_argument("--conservative", action="store_true",
                 help="use the upper end of an estimated table's latency "
                 "band for the target and the reward (recorded in "
                 "best.json)")
  p.add_argument("--rerank", type=int, default=0, metavar="K",
                 help="after the search, fine-tune its K best networks from "
                 "the supernet's weights and pick the best on val "
                 "(docs/search.md; --supernet only)")
  p.add_argument("--rerank-steps", type=int, default=100,
                 help="fine-tune steps per --rerank candidate (default 100)")
  p.add_argument("--rerank-lr", type=float, default=1e-3,
                 help="fine-tune learning rate (AdamW; default 1e-3)")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar; print one summary line at the end")
  p.set_defaults(func=_search)


def _search(args) -> int:
  rerank = None
  if args.rerank:
    from hwnas import rerank as rerank_lib  # pylint: disable=g-import-not-at-top
    rerank = rerank_lib.Settings(top=args.rerank, steps=args.rerank_steps,
                                 learning_rate=args.rerank_lr,
                                 seed=args.seed)
  result = pipeline.search(
      args.space, args.workdir, tables=args.table, costs=args.cost,
      target_ms=args.target_ms, target=args.target,
      target_uj=args.target_uj, evaluator=args.evaluator,
      supernet=args.supernet, predictor=args.predictor,
      accuracy=args.accuracy, allow_cpu_fallback=args.allow_cpu_fallback,
      conservative=args.conservative, rerank=rerank,
      references=args.reference, progress=not args.no_progress,
      budget=args.budget, objective=args.objective, seed=args.seed,
      algorithm=args.algorithm, population=args.population,
      batch_size=args.batch_size, mutation_prob=args.mutation_prob, reward_weight=args.reward_weight,
      eval_batch_size=args.eval_batch_size)
  if result.best is None:
    print(f"no evaluated architecture met the target; the front is in "
          f"{args.workdir}/pareto.json", file=sys.stderr)
    return 1 if args.objective == "constraint" else 0
  return 0
