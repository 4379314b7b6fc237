"""The pipeline stages as library calls: supernet training, search, export.

`hwnas supernet train`, `hwnas search` and `hwnas export` parse their flags
and call these functions; `hwnas.quickstart` calls the same functions with
its own settings. Each stage takes plain values (names, paths, numbers),
prints what a user should see through `echo`, resumes from (or refuses to
overwrite) its workdir, and returns its result:

* `train_supernet(workdir, config)` -> the final metrics dict, after
  `supernet_config(...)` built the `ConfigDict`;
* `search(space, workdir, ...)` -> the `hwnas.search.SearchResult`;
* `export(out, arch=... | reference=... | netspec=..., ...)` -> the report
  dict (`export_passed(report)` says whether the float TFLite file matches
  the Flax model).

Layer: above `train` / `export`, below `cli` (see docs/architecture.md).

Size: about 480 lines, one section per stage (supernet, search, export);
each stage is the CLI's logic moved here so that the quickstart and the
CLI share it, and splitting by stage would only add three small modules.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Callable, Sequence

from hwnas import errors

Echo = Callable[[str], None]
PathLike = str | os.PathLike[str]

# Extra search costs computed from the network itself (no table).
COUNT_COSTS = ("mmacs", "mparams")


# --------------------------------------------------------------- supernet --


def supernet_config(config: str | None = None, *, space: str | None = None,
                    dataset: str | None = None, steps: int | None = None,
                    overrides: Sequence[str] = ()):
  """The run `ConfigDict`: `config` (variant or FILE.py[:VARIANT]), then
  `space`, `dataset`, `steps` and each `key.sub=value` of `overrides`."""
  from hwnas.configs import loader  # pylint: disable=g-import-not-at-top
  c = loader.load(config, space=space)
  if space:
    c.space = space
  if dataset:
    c.dataset = dataset
  if steps is not None:
    if steps < 1:
      raise errors.HwnasError(f"--steps {steps}: must be >= 1")
    c.train.steps = steps
  return loader.override(c, overrides)


def train_supernet(workdir: PathLike, config, *, progress: bool = False,
                   echo: Echo = print) -> dict[str, Any]:
  """Trains (or resumes, or reuses a finished) supernet in `workdir`."""
  from hwnas.supernet import loop  # pylint: disable=g-import-not-at-top
  echo(f"training the {config.space} supernet on {config.dataset} for "
       f"{config.train.steps} steps in {workdir}")
  final = loop.train(config, workdir, progress=progress)
  accs = ", ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in final.items()
                   if k.startswith("eval/"))
  echo(f"step {final.get('step')}: val accuracy {accs}; "
       f"{pathlib.Path(workdir) / 'metrics.jsonl'}")
  return final


# ----------------------------------------------------------------- search --


def _table_costs(tables, space):
  """({cost name: fn}, [tables], {cost name: table identity})."""
  from hwnas import latency  # pylint: disable=g-import-not-at-top
  costs, loaded, sources = {}, [], {}
  for i, name in enumerate(tables):
    t = latency.load_table(name)
    loaded.append(t)
    # The first table of each quantity (latency_ms, energy_uj) is plain.
    key = t.cost_name
    if key in costs:
      key = f"{t.cost_name}@{t.backend}"
    if key in costs:
      key = f"{t.cost_name}@{i}"
    costs[key] = latency.make_cost_fn(t, space)
    sources[key] = {"table": str(t.path), "sha256": _sha256([t.path])}
  return costs, loaded, sources


def _targets(cost_fns, target_ms, target_uj, target):
  """The run's target: a bare number (the primary cost's) or, with an
  energy target, {cost name: bound}."""
  if target_uj is None:
    if target_ms is not None and next(iter(cost_fns)) != "latency_ms":
      return {"latency_ms": float(target_ms)}  # primary is another cost
    return target_ms if target_ms is not None else target
  for flag, name, v in (("--target-uj", "energy_uj", target_uj),
                        ("--target-ms", "latency_ms", target_ms)):
    if v is not None and name not in cost_fns:
      what = "an energy table (`hwnas table energy`)" if "energy" in name \
          else "a latency table"
      raise errors.HwnasError(f"{flag} needs {what} among --table")
  out = {"energy_uj": float(target_uj)}
  if target_ms is not None:
    out["latency_ms"] = float(target_ms)
  return out


def _sha256(paths) -> str:
  """Hash of the files' contents (in the given order)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for p in paths:
    h.update(pathlib.Path(p).read_bytes())
  return h.hexdigest()


def _evaluator_source(evaluator, supernet, predictor) -> dict[str, Any]:
  """Identity of the evaluator, so a resume against another is refused."""
  if callable(evaluator):
    return {"callable": getattr(evaluator, "__qualname__",
                                type(evaluator).__name__)}
  if evaluator == "predictor":
    from hwnas.search import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
    d = pathlib.Path(predictor)
    return {"predictor": str(d), "sha256": _sha256(
        [d / predictor_lib.CONFIG, d / predictor_lib.WEIGHTS])}
  ckpt = pathlib.Path(supernet) / "checkpoints"
  steps = [int(c.name) for c in ckpt.iterdir() if c.name.isdigit()] \
      if ckpt.is_dir() else []
  return {"supernet": str(supernet),
          "checkpoint_step": max(steps, default=None)}


def _count_costs(names, space):
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import counting  # pylint: disable=g-import-not-at-top
  unknown = sorted(set(names) - set(COUNT_COSTS))
  if unknown:
    raise errors.HwnasError(f"--cost {unknown[0]}: unknown; use one of "
                            f"{', '.join(COUNT_COSTS)}")
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
  if p.get("kind") == "estimated" and "measure" not in line and (
      table.units == "ms"):
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
    if table.units == "uJ":   # an energy table: the same model, whole net
      from hwnas import energy  # pylint: disable=g-import-not-at-top
      from hwnas.latency import energy_table  # pylint: disable=g-import-not-at-top
      return energy.total_uj(spec, energy_table.accelerator_of(table))
    if p.get("model") != "edgetpu-model":
      raise
    from hwnas.edgetpu import cost_model  # pylint: disable=g-import-not-at-top
    return float(cost_model.estimate(
        spec, link=p.get("link", "usb3"), clock=p.get("clock", "max")
    ).total_ms)


def _references(table, names, space):
  from hwnas import references  # pylint: disable=g-import-not-at-top
  out = {}
  for name in names if names is not None else references.names():
    try:
      spec = references.load(name, num_classes=space.num_classes)
      out[name] = (_reference_ms(table, spec), None)
    except errors.HwnasError:
      if names is not None:
        raise
  return out


def make_supernet_evaluator(workdir: PathLike, space,
                            accuracy: str = "float"):
  """`hwnas.supernet.evaluate.make_evaluator(workdir, space=space)`;
  `accuracy='int8'`: the simulated int8 evaluator of
  `hwnas.supernet.quant` (which also computes float accuracy). Either is
  `fn(archs) -> (accuracies, metrics)`."""
  if accuracy == "int8":
    from hwnas.supernet import quant  # pylint: disable=g-import-not-at-top
    return quant.make_evaluator(workdir, space, accuracy="int8",
                                also=("float",))
  if accuracy != "float":
    raise errors.HwnasError(f"--accuracy {accuracy}: use float or int8")
  from hwnas.supernet import evaluate  # pylint: disable=g-import-not-at-top
  return evaluate.make_evaluator(workdir, space=space)


def _evaluator(evaluator, space, *, supernet, predictor, echo,
               accuracy="float"):
  if callable(evaluator):
    return evaluator
  if evaluator == "predictor":
    if accuracy != "float":
      raise errors.HwnasError(
          "--accuracy int8 (API: accuracy='int8') needs --evaluator "
          "supernet (the predictor was trained on float accuracy)")
    if not predictor:
      raise errors.HwnasError(
          "--evaluator predictor needs --predictor P (API: predictor=P; "
          "train one with `hwnas predictor train`)")
    from hwnas.search import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
    p = predictor_lib.load(predictor)
    held = p.metrics.get("heldout", {})
    if held:
      echo(f"predictor {predictor}: held-out Spearman "
           f"{held['spearman']:.3f}, Kendall {held['kendall']:.3f} "
           f"(n={held['n']})")
    return predictor_lib.make_evaluator(p, space)
  if evaluator != "supernet":
    raise errors.HwnasError(
        f"--evaluator {evaluator}: use supernet or predictor (API: "
        "evaluator='supernet' | 'predictor' | your evaluate_fn)")
  if not supernet:
    raise errors.HwnasError(
        "--evaluator supernet needs --supernet W (API: supernet=W; a "
        "supernet workdir from `hwnas supernet train`)")
  if not pathlib.Path(supernet).exists():
    raise errors.HwnasError(f"--supernet {supernet}: no such directory;"
                            " train one with `hwnas supernet train`")
  return _Lazy(lambda: make_supernet_evaluator(supernet, space, accuracy))


class _Lazy:
  """Builds the evaluator on first use, so an impossible target fails
  before a supernet is loaded."""

  def __init__(self, make_fn):
    self._make_fn, self._fn = make_fn, None

  def __call__(self, archs):
    if self._fn is None:
      self._fn = self._make_fn()
    return self._fn(archs)


def _shift_note(tables, space) -> str:
  """For a space with shift blocks: which latency tables time them as
  their multiply equivalents (provenance of the search)."""
  from hwnas.latency import space_layers, table as tbl  # pylint: disable=g-import-not-at-top
  if all(st.ops == ("mult",) for st in space.stages):
    return ""
  layers = [l for l in space_layers.enumerate_layers(space) if l.op != "mult"]
  names = [str(t.path or t.name) for t in tables if t.shift_as_mult(layers)]
  return f"{', '.join(names)}: {tbl.SHIFT_NOTE}" if names else ""


def _table_provenance(t) -> dict[str, Any]:
  return {"table": str(t.path), "description": t.describe(),
          **dict(t.provenance),
          "header": {k: t.header.get(k) for k in (
              "device", "backend", "runtime", "precision", "batch_size",
              "statistic") if k in t.header}}


def _annotate_best(workdir: pathlib.Path, space, best_arch, table,
                   conservative: bool = False) -> None:
  """Adds to best.json what only this stage knows: the user's space file
  (so `hwnas arch stats best.json` finds it) and, for a table with an
  uncertainty band (estimated Edge TPU tables), the band of the best
  architecture's latency."""
  import json  # pylint: disable=g-import-not-at-top
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas.search import history  # pylint: disable=g-import-not-at-top
  path = workdir / "best.json"
  d = json.loads(path.read_text())
  d["arch"] = arch_lib.to_dict(best_arch, space=space)
  d["conservative"] = conservative
  band = (table.predict_band(arch_lib.decode(space, best_arch))
          if table is not None else None)
  if band is not None:
    d["latency_band_ms"] = {
        "low": band[0], "high": band[1],
        "what": "leave-one-network-out band of the estimate "
                "(docs/edgetpu.md); use `high` for a conservative target"}
  history.write_json_atomic(path, d)


def search(space, workdir: PathLike, *, tables: Sequence[str] = (),
           costs: Sequence[str] = (), target_ms: float | None = None,
           target: float | None = None, target_uj: float | None = None,
           evaluator: Any = "supernet",
           supernet: PathLike | None = None, predictor: PathLike | None = None,
           references: Sequence[str] | None = None, progress: bool = True,
           accuracy: str = "float", allow_cpu_fallback: bool = False,
           conservative: bool = False, rerank: Any = None,
           echo: Echo = print, **run_options):
  """Searches `space` against latency `tables` and/or counted `costs`.

  Args:
    space: a space name or YAML path (or a loaded `SearchSpace`).
    workdir: the search workdir (resumed when it holds a run).
    tables: latency table names or paths; the first is the target's.
    costs: extra costs counted from the network, of `COUNT_COSTS`.
    target_ms: latency target on the first latency table.
    target_uj: energy target (µJ) on the first energy table
      (`hwnas table energy`); with `target_ms`, both must hold.
    target: target on the primary cost when there is no table.
    evaluator: 'supernet' (with `supernet`, a workdir of
      `train_supernet`), 'predictor' (with `predictor`, a directory of
      `hwnas predictor train`) or your own `evaluate_fn(archs) ->
      accuracies`.
    references: reference networks to mark on pareto.png (None: every
      shipped one the first table can predict).
    accuracy: rank by 'float' or simulated 'int8' supernet accuracy.
    allow_cpu_fallback: with an Edge TPU table, also search networks part
      of which the Edge TPU compiler leaves on the CPU (by default the
      search keeps to the space's choices that map: `edgetpu_search_space`).
    conservative: the latency costs of tables with an uncertainty band
      (estimated Edge TPU tables) are the band's upper end, for the target
      and the reward alike; recorded in best.json.
    rerank: a `hwnas.rerank.Settings` (or None): after the search, fine-tune
      its top `rerank.top` networks from the supernet's weights and pick the
      best by fine-tuned val accuracy (`hwnas.rerank`; supernet evaluator
      only).
    progress: show a progress bar.
    echo: where lines for the user go.
    **run_options: passed on to `hwnas.search.run` (budget, objective,
      algorithm, population, batch_size, mutation_prob, reward_weight,
      seed, eval_batch_size, ...); the algorithm and the population and
      batch size left out follow the budget
      (`hwnas.search.default_settings`), and the chosen ones are echoed.

  Returns:
    The `hwnas.search.SearchResult`; `best` is None when no evaluated
    architecture met the target.
  """
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from hwnas.search import run  # pylint: disable=g-import-not-at-top
  if isinstance(space, (str, os.PathLike)):
    space = space_lib.load(space)
  if not tables and not costs:
    raise errors.HwnasError("give a latency table (--table T; API: "
                            "tables=[T]) or a cost (--cost mmacs; API: "
                            "costs=['mmacs'])")
  from hwnas import search as search_lib  # pylint: disable=g-import-not-at-top
  budget = run_options.pop("budget", 1000)
  objective = run_options.get("objective", "constraint")
  algorithm = search_lib.default_algorithm(objective,
                                           run_options.pop("algorithm", None))
  settings = search_lib.default_settings(
      algorithm, budget, population=run_options.pop("population", None),
      batch_size=run_options.pop("batch_size", None),
      mutation_prob=run_options.get("mutation_prob", 0.1))
  cost_fns, loaded, sources = _table_costs(tables, space)
  table_keys = list(cost_fns)
  bands, conservative_note = _bands(cost_fns, table_keys, loaded, space,
                                    conservative)
  if conservative:
    sources["conservative"] = True
  cost_fns.update(_count_costs(costs, space))
  if target_ms is not None and not loaded:
    raise errors.HwnasError(
        "--target-ms (API: target_ms=) needs --table (API: tables=); "
        "without a table use --target (API: target=) on the first --cost")
  goal = _targets(cost_fns, target_ms, target_uj, target)
  from hwnas.latency import host_calibration  # pylint: disable=g-import-not-at-top
  for t in loaded:
    host_calibration.warn_if_other_host(t, space.name)
  search_space = edgetpu_search_space(space, loaded, allow_cpu_fallback,
                                      echo=echo)
  if search_space is not space:
    sources["edgetpu_mapped_only"] = True
  provenance = refs = None
  if loaded:
    t = loaded[0]
    for key, other in zip(table_keys, loaded):
      what = "energy" if other.units == "uJ" else "latency"
      echo(f"{what} table {other.path} ({key}): {_describe(other)}")
    provenance = _table_provenance(t)
    shift_note = _shift_note(loaded, space)
    if shift_note:
      provenance["shift_layers"] = shift_note
      echo(shift_note)
    if conservative_note:
      provenance["conservative"] = conservative_note
      echo(conservative_note)
    refs = _references(t, references, space)
  if rerank is not None:
    rerank.check()
    if evaluator != "supernet" or supernet is None:
      raise errors.HwnasError(
          "--rerank fine-tunes the candidates from the supernet's weights: "
          "give --supernet WORKDIR (--evaluator supernet), or leave --rerank "
          "out")
  evaluate_fn = _evaluator(evaluator, space, supernet=supernet,
                           predictor=predictor, echo=echo, accuracy=accuracy)
  sources["evaluator"] = _evaluator_source(evaluator, supernet, predictor)
  echo(search_lib.describe_settings(algorithm, settings, budget))
  with workdir_lib.lock(workdir):  # one search per workdir
    result = run(search_space, evaluate_fn, cost_fns, workdir=str(workdir),
                 target=goal,
                 budget=budget, algorithm=algorithm,
                 population=settings.population,
                 sample_size=settings.sample_size,
                 batch_size=settings.batch_size,
                 candidates=settings.candidates or None,
                 provenance=provenance, sources=sources, references=refs,
                 bands=bands, titles=_panel_titles(table_keys, loaded),
                 progress=progress, **run_options)
    if rerank is not None and result.best is not None:
      from hwnas import rerank as rerank_lib  # pylint: disable=g-import-not-at-top
      result = rerank_lib.run(result, supernet, rerank, echo=echo)
    if result.best is not None:
      _annotate_best(pathlib.Path(workdir), space, result.best.arch,
                     loaded[0] if loaded else None, conservative)
  if not progress and result.best is not None:
    echo(f"best: accuracy {result.best.accuracy:.4f}, "
         f"{dict(result.best.costs)} ({workdir}/best.json)")
  return result


def _bands(cost_fns, keys, tables, space, conservative: bool):
  """({cost name: band fn} of the tables that have a band, the note that
  says what `conservative` changed); with `conservative`, replaces those
  tables' cost functions by the band's upper end (in place)."""
  from hwnas import latency  # pylint: disable=g-import-not-at-top
  bands = {}
  for key, t in zip(keys, tables):
    band = latency.make_band_fn(t, space)
    if band is not None:
      bands[key] = band
      if conservative:
        cost_fns[key] = lambda a, band=band: band(a)[1]
  if not conservative:
    return bands, None
  if not bands:
    raise errors.HwnasError(
        "--conservative (API: conservative=True) needs a latency table with "
        "an uncertainty band (the estimated Edge TPU tables, e.g. "
        "edgetpu-usb3/tiny); measured tables have none")
  return bands, (f"conservative: {', '.join(bands)} use the upper end of "
                 "the table's uncertainty band (target, reward and the "
                 "recorded costs)")


def _panel_titles(keys, tables) -> dict[str, str]:
  from hwnas.search import report  # pylint: disable=g-import-not-at-top
  return {k: report.plot_title({"table": t.path, **dict(t.provenance)})
          for k, t in zip(keys, tables)}


def edgetpu_search_space(space, tables, allow_cpu_fallback: bool = False,
                         *, echo: Echo = print):
  """The space a search against `tables` explores.

  For an Edge TPU table (estimated or measured) and unless
  `allow_cpu_fallback`, `space` less the choices that table's compiler
  version does not map (`hwnas.edgetpu.ops.mapped_only_space`, the operator
  table the export check reads), so that no architecture the search
  returns falls back to the CPU; otherwise `space` itself.
  """
  from hwnas.edgetpu import ops  # pylint: disable=g-import-not-at-top
  from hwnas.latency import edgetpu_table  # pylint: disable=g-import-not-at-top
  out = space
  for t in tables:
    if not edgetpu_table.is_edgetpu_table(t):
      continue
    compiler = edgetpu_table.compiler_of(t)
    dropped = ops.fallback_choices(space, compiler)
    if not dropped:
      continue
    if allow_cpu_fallback:
      echo(f"{t.path}: CPU fallback allowed: {'; '.join(dropped)} "
           f"(Edge TPU compiler {compiler}) stay in the search")
      continue
    out = ops.mapped_only_space(out, compiler)
    echo(f"{t.path}: Edge TPU mapped-only search (compiler {compiler}): "
         f"left out {'; '.join(dropped)}; --allow-cpu-fallback keeps them")
  return out


# ----------------------------------------------------------------- export --


def export(out: PathLike, *, arch: PathLike | None = None,
           reference: str | None = None, netspec: PathLike | None = None,
           supernet: PathLike | None = None, weights: PathLike | None = None,
           table: str | None = None, resolution: int | None = None,
           echo: Echo = print, **options) -> dict[str, Any]:
  """Exports one network to `out`, checks it and prints a summary.

  Args:
    out: the export directory (new unless `overwrite=True`).
    arch: an architecture JSON (a choice or a search's best.json).
    reference: a shipped reference network name (instead of `arch`).
    netspec: a network-spec JSON file (instead of `arch`).
    supernet: a trained supernet workdir: `arch` takes its weights.
    weights: an export dir or Flax checkpoint (without `supernet`);
      default: random weights.
    table: latency table to compare the measured latency with.
    resolution: input resolution of a `reference` network.
    echo: where the summary lines go.
    **options: `hwnas.export.ExportOptions` fields (`formats` may be a
      comma-separated string; `latency_warmup` defaults to
      min(20, latency_repeats)).

  Returns:
    The report dict (also written as `out/report.json`).
  """
  given = [n for n, v in (("arch", arch), ("reference", reference),
                          ("netspec", netspec)) if v]
  if len(given) != 1:
    raise errors.HwnasError("give exactly one of --arch, --reference, "
                            "--netspec")
  if supernet and not arch:
    raise errors.HwnasError("--supernet needs --arch (the architecture to "
                            "take from it)")
  if supernet and weights:
    raise errors.HwnasError("give --supernet or --weights, not both")
  from hwnas import export as export_lib  # pylint: disable=g-import-not-at-top
  if "formats" in options:
    options["formats"] = export_lib.parse_formats(options["formats"])
  if "latency_repeats" in options and "latency_warmup" not in options:
    options["latency_warmup"] = min(20, options["latency_repeats"])
  opts = export_lib.ExportOptions(**options)
  if supernet:
    report = export_lib.export_arch(arch, supernet, out, options=opts,
                                    table=table)
  else:
    spec, choice, source = _export_source(arch, reference, netspec,
                                          resolution)
    report = export_lib.export_spec(spec, out, weights=weights, options=opts,
                                    table=table, arch=choice, source=source)
  for line in summary_lines(report):
    echo(line)
  return report


def _export_source(arch, reference, netspec, resolution):
  """(NetSpec, ArchChoice or None, report source) of what to export."""
  # pylint: disable=g-import-not-at-top
  from hwnas import arch as arch_lib
  from hwnas import netspec as netspec_lib
  from hwnas import references
  from hwnas import space as space_lib
  # pylint: enable=g-import-not-at-top
  if arch:
    choice, space_name = arch_lib.load_with_space(arch)
    space = space_lib.load(space_name)
    return (arch_lib.decode(space, choice), choice,
            {"kind": "arch", "description": f"{arch} ({space.name})"})
  if reference:
    return (references.load(reference, resolution=resolution), None,
            {"kind": "reference",
             "description": f"reference network {reference}"})
  return (netspec_lib.load(netspec), None,
          {"kind": "netspec", "description": f"network spec {netspec}"})


def export_passed(report: dict[str, Any]) -> bool:
  """False when the float TFLite file does not match the Flax model, or
  the int8 model fails the int8 gate (unless its drop was allowed)."""
  check = report["checks"].get("float_tflite_vs_flax")
  gate = report["checks"].get("int8_gate")
  return (not check or bool(check["passed"])) and (
      not gate or bool(gate["ok"]))


def summary_lines(r: dict[str, Any]) -> list[str]:
  """The human summary of an export report."""
  out = pathlib.Path(r["out"])
  net = r["network"]
  lines = [f"exported {net['name']} to {out}/",
           f"  MACs {net['macs']:,}  params {net['params']:,}"]
  c = r["checks"]
  if "float_tflite_vs_flax" in c:
    f = c["float_tflite_vs_flax"]
    lines.append(f"  float TFLite vs Flax: max |diff| "
                 f"{f['max_abs_diff']:.2e} "
                 f"({'PASS' if f['passed'] else 'FAIL'})")
  if "int8_gate" in c:
    g = c["int8_gate"]
    lines.append(f"  int8 gate: top-1 agreement "
                 f"{100 * g['top1_agreement']:.1f}% (>= "
                 f"{100 * g['min_agreement']:.1f}%), output error max "
                 f"{g['max_error_steps']:.2f} steps: {g['status']}")
  if "accuracy" in c:
    a = c["accuracy"]
    parts = [f"{k} {100 * v:.2f}%" for k, v in a.items()
             if k in ("flax", "tflite_float", "tflite_int8")]
    lines.append(f"  accuracy ({a['split']}, {a['num_samples']}): "
                 f"{', '.join(parts)}")
  lat = r["latency"]
  if lat.get("predicted"):
    lines.append(f"  predicted {lat['predicted']['ms']:.3f} ms "
                 f"({lat['predicted']['provenance']})")
  for name, m in lat["measured"].items():
    lines.append(f"  measured {name}: {m['median_ms']:.3f} ms median "
                 "(this CPU)")
  comp = lat.get("comparison") or {}
  if comp.get("ratio") is not None:
    lines.append(f"  measured / predicted ({comp['model']}): "
                 f"{comp['ratio']:.2f}")
  e = r.get("edgetpu")
  if e:
    lines.append(f"  Edge TPU: {e['verdict']}")
    if not e.get("compiler"):
      lines.append(f"  compile with: {e['compile_command']}")
  lines.append(f"  report: {out / 'report.md'}")
  return lines
