"""`hwnas search`: evolutionary search against a latency table.

Wires a latency table (`hwnas.latency`) and an evaluator (the supernet of
`hwnas.supernet.evaluate`, or a trained predictor) into
`hwnas.search.run`; all logic lives in the library.
"""

from __future__ import annotations

import inspect
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
  p.add_argument("--algorithm", choices=("aging", "ofa", "nsga2"),
                 help="default: aging (nsga2 for pareto)")
  p.add_argument("--population", type=int, default=100)
  p.add_argument("--mutation-prob", type=float, default=0.1)
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
  from hwnas import latency
  costs, loaded = {}, []
  for i, name in enumerate(tables):
    t = latency.load_table(name)
    loaded.append(t)
    key = "latency_ms" if i == 0 else f"latency_ms@{t.backend}"
    if key in costs:
      key = f"latency_ms@{i}"
    costs[key] = latency.make_cost_fn(t, space)
  return costs, loaded


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


def make_supernet_evaluator(workdir: str, space, accuracy: str = "float"):
  """`hwnas.supernet.evaluate.make_evaluator(workdir, ...)`, or a clear
  error if this build has no supernet. `accuracy='int8'`: the simulated
  int8 evaluator of `hwnas.supernet.quant` (also computing float)."""
  if accuracy == "int8":
    from hwnas.supernet import quant
    return quant.make_evaluator(workdir, space, accuracy="int8",
                                also=("float",))
  import importlib
  try:
    # import_module, not `from hwnas.supernet import evaluate`: the package
    # may re-export a function of that name, shadowing the module.
    evaluate = importlib.import_module("hwnas.supernet.evaluate")
  except ModuleNotFoundError as e:
    if e.name and e.name.startswith("hwnas.supernet"):
      raise errors.HwnasError(
          "the supernet evaluator (hwnas.supernet.evaluate) is not available"
          " in this build; use --evaluator predictor --predictor P") from None
    raise
  fn = evaluate.make_evaluator
  params = inspect.signature(fn).parameters
  kw = {"space": space} if "space" in params else {}
  return fn(workdir, **kw)


def _evaluator(args, space):
  if args.evaluator == "predictor":
    if args.accuracy != "float":
      raise errors.HwnasError("--accuracy int8 needs --evaluator supernet "
                              "(the predictor was trained on float accuracy)")
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
  return _Lazy(lambda: make_supernet_evaluator(args.supernet, space,
                                               args.accuracy))


class _Lazy:
  """Builds the evaluator on first use, so an impossible target fails
  before a supernet is loaded."""

  def __init__(self, make_fn):
    self._make_fn, self._fn = make_fn, None

  def __call__(self, archs):
    if self._fn is None:
      self._fn = self._make_fn()
    return self._fn(archs)

  @property
  def last_metrics(self):
    """The wrapped evaluator's other accuracies of its last call."""
    return getattr(self._fn, "last_metrics", None)


def _search(args) -> int:
  from hwnas import space as space_lib
  from hwnas.search import run
  space = space_lib.load(args.space)
  if not args.table and not args.cost:
    raise errors.HwnasError("give a latency table (--table T) or a cost "
                            "(--cost mmacs)")
  costs, tables = _table_costs(args.table, space)
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
  result = run(space, evaluate_fn, costs, budget=args.budget,
               workdir=args.workdir, objective=args.objective,
               target=target, seed=args.seed, algorithm=args.algorithm,
               population=args.population, mutation_prob=args.mutation_prob,
               reward_weight=args.reward_weight,
               eval_batch_size=args.eval_batch_size, provenance=provenance,
               references=references, progress=not args.no_progress)
  if args.no_progress and result.best is not None:
    print(f"best: accuracy {result.best.accuracy:.4f}, "
          f"{dict(result.best.costs)} ({args.workdir}/best.json)")
  if result.best is None:
    print(f"no evaluated architecture met the target; the front is in "
          f"{args.workdir}/pareto.json", file=sys.stderr)
    return 1 if args.objective == "constraint" else 0
  return 0
