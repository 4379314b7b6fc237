"""`hwnas search`: evolutionary search against a latency table.

Wires a latency table (`hwnas.latency`) and an evaluator (the supernet of
`hwnas.supernet.evaluate`, or a trained predictor) into
`hwnas.search.run`; all logic lives in the library.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

from hwnas import errors

_EXTRA_COSTS = ("mmacs", "mparams")


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
  p.add_argument("--supernet", help="supernet workdir (--evaluator supernet)")
  p.add_argument("--evaluator", choices=("supernet", "predictor"),
                 default="supernet")
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
                 choices=_EXTRA_COSTS,
                 help="extra cost (repeatable): mmacs (MACs in millions), "
                 "mparams (parameters in millions)")
  p.add_argument("--reference", action="append", default=None,
                 help="reference network to mark on pareto.png (default: "
                 "every shipped one the table can predict)")
  p.add_argument("--eval-batch-size", type=int,
                 help="architectures per evaluator call (default: a "
                 "generation)")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=_search)


def _table_costs(tables, space):
  """({cost name: fn}, [tables], {cost name: table identity})."""
  from hwnas import latency
  costs, loaded, sources = {}, [], {}
  for i, name in enumerate(tables):
    t = latency.load_table(name)
    loaded.append(t)
    key = "latency_ms" if i == 0 else f"latency_ms@{t.backend}"
    if key in costs:
      key = f"latency_ms@{i}"
    costs[key] = latency.make_cost_fn(t, space)
    sources[key] = {"table": str(t.path), "sha256": _sha256([t.path])}
  return costs, loaded, sources


def _sha256(paths) -> str:
  """Hash of the files' contents (in the given order)."""
  h = hashlib.sha256()
  for p in paths:
    h.update(pathlib.Path(p).read_bytes())
  return h.hexdigest()


def _evaluator_source(args) -> dict:
  """Identity of the evaluator, so a resume against another is refused."""
  if args.evaluator == "predictor":
    from hwnas.search import predictor
    d = pathlib.Path(args.predictor)
    return {"predictor": str(d), "sha256": _sha256(
        [d / predictor.CONFIG, d / predictor.WEIGHTS])}
  ckpt = pathlib.Path(args.supernet) / "checkpoints"
  steps = [int(c.name) for c in ckpt.iterdir() if c.name.isdigit()] \
      if ckpt.is_dir() else []
  return {"supernet": str(args.supernet),
          "checkpoint_step": max(steps, default=None)}


def _count_costs(names, space):
  from hwnas import arch as arch_lib
  from hwnas import counting
  cache = {}

  def counts(a):
    if a not in cache:
      cache[a] = counting.count(arch_lib.decode(space, a))
    return cache[a]
  fns = {"mmacs": lambda a: counts(a).macs / 1e6,
         "mparams": lambda a: counts(a).params / 1e6}
  return {n: fns[n] for n in names}


def _describe(table) -> str:
  line = table.describe()
  p = table.provenance
  if p.get("kind") == "estimated" and "measure" not in line:
    line += ("; " + p["measure_real"]) if p.get("measure_real") else (
        "; measure a real table with `hwnas table measure --space S "
        "--backend B --out T`")
  return line


def _reference_ms(table, spec) -> float:
  """The table's prediction, or for an estimated Edge TPU table whose
  entries do not cover the network, the same cost model's estimate."""
  try:
    return float(table.predict(spec))
  except errors.HwnasError:
    p = table.provenance
    if p.get("model") != "edgetpu-model":
      raise
    from hwnas.latency import edgetpu_model
    return float(edgetpu_model.estimate(
        spec, link=p.get("link", "usb3"), clock=p.get("clock", "max")
    ).total_ms)


def _references(table, names, space):
  from hwnas import references
  out = {}
  for name in names if names is not None else references.names():
    try:
      spec = references.load(name, num_classes=space.num_classes)
      out[name] = (_reference_ms(table, spec), None)
    except errors.HwnasError:
      if names is not None:
        raise
  return out


def make_supernet_evaluator(workdir: str, space):
  """`hwnas.supernet.evaluate.make_evaluator(workdir, space)`."""
  from hwnas.supernet import evaluate as evaluate_lib
  return evaluate_lib.make_evaluator(workdir, space)


def _evaluator(args, space):
  if args.evaluator == "predictor":
    if not args.predictor:
      raise errors.HwnasError("--evaluator predictor needs --predictor P "
                              "(train one with `hwnas predictor train`)")
    from hwnas.search import predictor
    p = predictor.load(args.predictor)
    held = p.metrics.get("heldout", {})
    if held:
      print(f"predictor {args.predictor}: held-out Spearman "
            f"{held['spearman']:.3f}, Kendall {held['kendall']:.3f} "
            f"(n={held['n']})")
    return predictor.make_evaluator(p, space)
  if not args.supernet:
    raise errors.HwnasError("--evaluator supernet needs --supernet W (a "
                            "supernet workdir from `hwnas supernet train`)")
  if not pathlib.Path(args.supernet).exists():
    raise errors.HwnasError(f"--supernet {args.supernet}: no such directory;"
                            " train one with `hwnas supernet train`")
  return _Lazy(lambda: make_supernet_evaluator(args.supernet, space))


class _Lazy:
  """Builds the evaluator on first use, so an impossible target fails
  before a supernet is loaded."""

  def __init__(self, make_fn):
    self._make_fn, self._fn = make_fn, None

  def __call__(self, archs):
    if self._fn is None:
      self._fn = self._make_fn()
    return self._fn(archs)


def _search(args) -> int:
  from hwnas import space as space_lib
  from hwnas import search as search_lib
  space = space_lib.load(args.space)
  if not args.table and not args.cost:
    raise errors.HwnasError("give a latency table (--table T) or a cost "
                            "(--cost mmacs)")
  algorithm = search_lib.default_algorithm(args.objective, args.algorithm)
  settings = search_lib.default_settings(
      algorithm, args.budget, population=args.population,
      batch_size=args.batch_size, mutation_prob=args.mutation_prob)
  costs, tables, sources = _table_costs(args.table, space)
  costs.update(_count_costs(args.cost, space))
  if args.target_ms is not None and not tables:
    raise errors.HwnasError("--target-ms needs --table; without a table use "
                            "--target on the first --cost")
  target = args.target_ms if args.target_ms is not None else args.target
  provenance = None
  references = None
  if tables:
    t = tables[0]
    print(f"latency table {t.path}: {_describe(t)}")
    provenance = {"table": str(t.path), "description": t.describe(),
                  **dict(t.provenance),
                  "header": {k: t.header.get(k) for k in (
                      "device", "backend", "runtime", "precision",
                      "batch_size", "statistic") if k in t.header}}
    references = _references(t, args.reference, space)
  evaluate_fn = _evaluator(args, space)
  sources["evaluator"] = _evaluator_source(args)
  print(search_lib.describe_settings(algorithm, settings, args.budget))
  result = search_lib.run(
      space, evaluate_fn, costs, budget=args.budget, workdir=args.workdir,
      objective=args.objective, target=target, seed=args.seed,
      algorithm=algorithm, population=settings.population,
      sample_size=settings.sample_size, batch_size=settings.batch_size,
      candidates=settings.candidates or None,
      mutation_prob=args.mutation_prob, reward_weight=args.reward_weight,
      eval_batch_size=args.eval_batch_size, provenance=provenance,
      sources=sources, references=references,
      progress=not args.no_progress)
  if args.no_progress and result.best is not None:
    print(f"best: accuracy {result.best.accuracy:.4f}, "
          f"{dict(result.best.costs)} ({args.workdir}/best.json)")
  if result.best is None:
    print(f"no evaluated architecture met the target; the front is in "
          f"{args.workdir}/pareto.json", file=sys.stderr)
    return 1 if args.objective == "constraint" else 0
  return 0
