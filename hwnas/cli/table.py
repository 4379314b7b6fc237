"""`hwnas table ...`: measure, check, validate, import, show, export latency
tables (see `hwnas.latency`)."""

from __future__ import annotations

import json
import pathlib
import sys


def register(sub) -> None:
  p = sub.add_parser("table", help="latency lookup tables: measure, check, "
                     "validate, calibrate, import, show, export")
  t = p.add_subparsers(dest="table_command", metavar="SUBCOMMAND")
  t.required = True

  q = t.add_parser("measure", help="time every layer of a space on a "
                   "backend (resumable)")
  q.add_argument("--space", required=True, help="space name or YAML file")
  q.add_argument("--backend", required=True,
                 help="xla | litert | litert-int8 | edgetpu | edgetpu-model")
  q.add_argument("--out", required=True, help="table JSON to write")
  q.add_argument("--resolutions", type=int, nargs="+",
                 help="subset of the space's resolutions (default: all)")
  q.add_argument("--threads", type=int, default=1,
                 help="litert: interpreter threads; xla on CPU: cores the "
                      "process is pinned to while timing (0: every core)")
  q.add_argument("--batch-size", type=int, default=1)
  q.add_argument("--warmup", type=int, default=10)
  q.add_argument("--repeats", type=int, default=50)
  q.add_argument("--seed", type=int, default=0)
  q.add_argument("--timer", default="wall", choices=["wall", "cpu"],
                 help="wall time, or process CPU time (steadier on a shared "
                 "machine)")
  q.add_argument("--rounds", type=int, default=5,
                 help="interleaved timing rounds over --chunk layers built "
                 "together (default 5; 1: one burst per layer)")
  q.add_argument("--chunk", type=int, default=16)
  q.add_argument("--max-entries", type=int,
                 help="stop after this many new entries (run again to go on)")
  q.add_argument("--option", action="append", default=[], metavar="K=V",
                 help="backend option (repeatable), e.g. link=usb3")
  q.add_argument("--link", help="shorthand for --option link=... "
                 "(edgetpu-model)")
  q.add_argument("--no-progress", action="store_true")
  q.set_defaults(func=_measure)

  q = t.add_parser("check", help="coverage of a space: missing signatures "
                   "and the choices that need them")
  q.add_argument("--table", required=True)
  q.add_argument("--space", required=True)
  q.add_argument("--resolutions", type=int, nargs="+")
  q.add_argument("--limit", type=int, default=20,
                 help="missing signatures to list (default 20)")
  q.add_argument("--json", action="store_true")
  q.set_defaults(func=_check)

  q = t.add_parser("validate", help="predicted vs measured latency of "
                   "random whole networks (fidelity report)")
  q.add_argument("--table", required=True)
  q.add_argument("--space", required=True)
  q.add_argument("--samples", type=int, default=30)
  q.add_argument("--seed", type=int, default=0)
  q.add_argument("--warmup", type=int, default=10)
  q.add_argument("--repeats", type=int, default=50)
  q.add_argument("--rounds", type=int,
                 help="interleaved timing rounds (default: the table's)")
  q.add_argument("--chunk", type=int, default=0,
                 help="networks built, then timed together in interleaved "
                      "rounds (default 0: all of them, so every network "
                      "sees the same machine conditions)")
  q.add_argument("--fit-calibration", action="store_true",
                 help="fit measured ~ a*sum + b on half, report the other "
                 "half, store it in the table")
  q.add_argument("--plot", help="scatter PNG (default: <table>.fidelity.png)")
  q.add_argument("--out", help="write the calibrated table here instead of "
                 "updating --table")
  q.add_argument("--report-json", metavar="FILE",
                 help="write the report as JSON to FILE")
  q.add_argument("--json", dest="json_path", metavar="FILE",
                 help="deprecated spelling of --report-json")
  q.add_argument("--overwrite", action="store_true",
                 help="replace existing --out / --report-json files")
  q.set_defaults(func=_validate)

  q = t.add_parser("calibrate", help="adapt a measured table to this host "
                   "from whole-network timings (refuses a calibration that "
                   "hurts)")
  q.add_argument("--table", required=True, help="table name or file")
  q.add_argument("--space", help="space to sample networks from (default: "
                 "the table's first space)")
  q.add_argument("--networks", type=int, default=20,
                 help="networks timed here to fit on (default 20)")
  q.add_argument("--holdout", type=int, default=30,
                 help="further networks timed to score before/after "
                 "(default 30)")
  g = q.add_mutually_exclusive_group()
  g.add_argument("--out", help="calibrated table to write (default: "
                 "<device dir>-<table>.calibrated.json here)")
  g.add_argument("--in-place", action="store_true",
                 help="update --table itself (never a shipped table)")
  q.add_argument("--drop", action="store_true",
                 help="remove the table's calibration instead (times "
                 "nothing); writes --out, or --table with --in-place")
  q.add_argument("--seed", type=int, default=0,
                 help="seed of the network sample (default 0)")
  q.add_argument("--warmup", type=int, default=10,
                 help="untimed runs per network (default 10)")
  q.add_argument("--repeats", type=int, default=50,
                 help="timed runs per network (default 50)")
  q.add_argument("--rounds", type=int,
                 help="interleaved timing rounds (default: the table's)")
  q.add_argument("--chunk", type=int, default=0,
                 help="networks built, then timed together (default 0: all)")
  q.add_argument("--report-json", metavar="FILE",
                 help="write the report (timings, fit, before/after) as JSON")
  q.add_argument("--no-progress", action="store_true",
                 help="no progress bar")
  q.set_defaults(func=_calibrate)

  q = t.add_parser("retime", help="re-read a measured table with the other "
                   "clock recorded in the same runs (wall | cpu)")
  q.add_argument("--table", required=True)
  q.add_argument("--timer", required=True, choices=["wall", "cpu"])
  q.add_argument("--out", help="default: overwrite --table")
  q.set_defaults(func=_retime)

  q = t.add_parser("import", help="convert a table from another format")
  q.add_argument("--from", dest="fmt", required=True, choices=["ofa"])
  q.add_argument("file", help="the file to import (OFA/ProxylessNAS YAML)")
  q.add_argument("--space", required=True)
  q.add_argument("--out", required=True)
  q.add_argument("--device", default="unknown (imported)")
  q.add_argument("--precision", default="float32",
                 choices=["float32", "int8"])
  q.add_argument("--overwrite", action="store_true",
                 help="replace an existing --out table")
  q.set_defaults(func=_import)

  q = t.add_parser("energy", help="estimated energy table (µJ) of a space "
                   "on an Eyeriss-like accelerator (docs/energy.md)")
  q.add_argument("--space", required=True, help="space name or YAML file")
  q.add_argument("--accelerator", default="eyeriss-v1",
                 help="accelerator YAML/JSON file (default: eyeriss-v1, "
                 "the shipped Eyeriss v1 description)")
  q.add_argument("--out", help="output JSON (default: the shipped "
                 "latency_tables/energy/<space>.json)")
  q.set_defaults(func=_energy)

  q = t.add_parser("show", help="header and a summary of a table")
  q.add_argument("--table", dest="table_flag", help="table name or file "
                 "(omit: list shipped tables)")
  q.add_argument("table", nargs="?", help="deprecated spelling of --table")
  q.set_defaults(func=_show)

  q = t.add_parser("export-csv", help="write a table as CSV")
  q.add_argument("--table", dest="table_flag", help="table name or file")
  q.add_argument("table", nargs="?", help="deprecated spelling of --table")
  q.add_argument("--out", help="CSV file (default: stdout)")
  q.add_argument("--overwrite", action="store_true",
                 help="replace an existing --out file")
  q.set_defaults(func=_export_csv)


def _options(args) -> dict:
  from hwnas import errors
  out = {}
  for kv in args.option:
    if "=" not in kv:
      raise errors.HwnasError(f"--option {kv!r}: expected KEY=VALUE")
    k, v = kv.split("=", 1)
    out[k.strip()] = v.strip()
  if args.link:
    out["link"] = args.link
  return out


def _measure(args) -> int:
  from hwnas import errors, validate, workdir
  from hwnas import space as space_lib
  from hwnas.latency import measure
  for flag in ("batch_size", "repeats", "rounds", "chunk"):
    errors.positive(getattr(args, flag), "--" + flag.replace("_", "-"))
  errors.positive(args.warmup, "--warmup", zero_ok=True)
  errors.positive(args.threads, "--threads", zero_ok=True)
  if args.max_entries is not None:
    errors.positive(args.max_entries, "--max-entries")
  # An existing table is resumed or extended, never replaced; its path
  # must be writable before hours of measuring.
  validate.check_out(args.out, overwrite=True)
  s = space_lib.load(args.space)
  with workdir.lock_file(args.out):
    return _measure_locked(args, s, measure)


def _measure_locked(args, s, measure) -> int:
  from hwnas.latency import load_table
  if pathlib.Path(args.out).is_file():
    spaces = load_table(args.out).header["spaces"]
    if s.id not in spaces:
      print(f"note: {args.out} covers {', '.join(spaces)}; adding space "
            f"{s.id} (entries of layers both spaces share are reused: a "
            "layer's latency does not depend on the space)")
  r = measure.measure_space(
      s, args.backend, args.out, resolutions=args.resolutions,
      batch_size=args.batch_size, threads=args.threads, warmup=args.warmup,
      repeats=args.repeats, seed=args.seed, timer=args.timer,
      max_entries=args.max_entries, rounds=args.rounds, chunk=args.chunk,
      progress=not args.no_progress, backend_options=_options(args),
      command="hwnas " + " ".join(sys.argv[1:]))
  if r.table is None:
    print(f"measured {r.measured} new entries ({r.reused} already done); "
          f"{r.remaining} remain in {r.journal}; rerun the same command to "
          "continue")
    return 0
  print(f"wrote {args.out}: {len(r.table)} entries ({r.measured} measured "
        f"now, {r.reused} reused)")
  print(r.table.describe())
  return 0


def _check(args) -> int:
  from hwnas import space as space_lib
  from hwnas.latency import describe_missing, load_table
  t = load_table(args.table)
  s = space_lib.load(args.space)
  cov = describe_missing(t, s, tuple(args.resolutions) if args.resolutions
                         else None)
  if args.json:
    print(json.dumps(cov, indent=1))
    return 0 if not cov["missing"] else 1
  print(f"{t.path}: {t.describe()}")
  print(f"space {s.id}: {cov['covered']}/{cov['total']} signatures covered")
  if not cov["missing"]:
    print("complete: every network of the space can be predicted")
    return 0
  print("missing by type: " + ", ".join(
      f"{k} {v}" for k, v in sorted(cov["by_type"].items())))
  res = sorted({int(o.split()[0][1:]) for os_ in cov["missing"].values()
                for o in os_})
  print(f"missing at resolutions: {res}")
  for key, origins in list(cov["missing"].items())[:args.limit]:
    more = f" (+{len(origins) - 3} more)" if len(origins) > 3 else ""
    print(f"  {key}\n      needed by: {'; '.join(origins[:3])}{more}")
  if len(cov["missing"]) > args.limit:
    print(f"  ... {len(cov['missing']) - args.limit} more (--limit N or "
          "--json)")
  from hwnas.latency import table as tbl
  if not tbl.covers_space(t, s.name):
    print(f"note: {tbl.wrong_space_message(t, s.name)}")
  if t.provenance["kind"] == "measured" and not _shipped(t.path):
    print(f"fix: hwnas table measure --space {args.space} --backend "
          f"{t.backend} --out {t.path} (adds only what is missing)")
  elif t.provenance["kind"] == "measured":
    name = pathlib.Path(t.path).name
    print(f"fix: copy the shipped table and extend the copy (adds only what "
          f"is missing): cp {t.path} {name} && hwnas table measure --space "
          f"{args.space} --backend {t.backend} --out {name}")
  else:
    print(f"fix: measure a table: hwnas table measure --space {args.space} "
          "--backend xla|litert|litert-int8|edgetpu --out NEW.json")
  return 1


def _shipped(path: str) -> bool:
  """A table inside the installed package (shipped or site-packages): never
  a place to write to."""
  from hwnas import resources
  p = pathlib.Path(path).resolve()
  roots = [resources.latency_tables_dir().resolve(),
           pathlib.Path(__file__).resolve().parents[1]]
  return "site-packages" in p.parts or any(
      r == p or r in p.parents for r in roots)


def _validate(args) -> int:
  import numpy as np
  from hwnas import errors
  from hwnas import space as space_lib
  from hwnas.latency import fidelity, load_table
  errors.positive(args.samples, "--samples")
  errors.positive(args.repeats, "--repeats")
  errors.positive(args.warmup, "--warmup", zero_ok=True)
  errors.positive(args.chunk, "--chunk", zero_ok=True)
  if args.rounds is not None:
    errors.positive(args.rounds, "--rounds")
  from hwnas import validate  # outputs checked before any timing
  report_json = _report_json(args)
  if report_json:
    validate.check_out(report_json, overwrite=args.overwrite,
                       flag="--report-json")
  if args.out:
    validate.check_out(args.out, overwrite=args.overwrite)
  t = load_table(args.table)
  if t.units == "uJ":
    raise errors.HwnasError(
        f"--table {args.table}: an energy table; `table validate` times "
        "networks against latency tables. The energy model's check against "
        "the Eyeriss chip is `python benchmarks/bench_energy.py`")
  s = space_lib.load(args.space)
  plot = args.plot or str(pathlib.Path(t.path).with_suffix(".fidelity.png"))
  rep = fidelity.validate(
      t, s, args.samples, rng=np.random.default_rng(args.seed),
      warmup=args.warmup, repeats=args.repeats,
      fit_calibration=args.fit_calibration, plot_path=plot, progress=True,
      rounds=args.rounds, chunk=args.chunk)
  print(fidelity.format_report(rep))
  _warn_high_mape(rep, args)
  if report_json:
    pathlib.Path(report_json).write_text(json.dumps(rep.to_dict(), indent=1))
  if args.fit_calibration or args.out:
    out = args.out or t.path
    why = fidelity.calibration_harm(rep)
    fidelity.store(t, rep).save(out)
    if why:
      print(f"refused: not storing the fitted calibration: {why}; stored the "
            f"fidelity summary only in {out} (the table's own calibration "
            "stays)", file=sys.stderr)
    else:
      print(f"stored calibration and fidelity summary in {out}")
  return 0


def _calibrated_out(t, args) -> str:
  """Where `table calibrate` writes (never into the installed package)."""
  from hwnas import errors
  if args.in_place:
    if _shipped(t.path):
      raise errors.HwnasError(
          f"--in-place: {t.path} is a shipped table inside the package; "
          "write a copy with --out FILE instead")
    return t.path
  if args.out:
    out = args.out
  else:
    p = pathlib.Path(t.path)
    out = f"{p.parent.name}-{p.stem}.calibrated.json"
  if pathlib.Path(out).exists() and pathlib.Path(out).resolve() != \
      pathlib.Path(t.path).resolve():
    raise errors.HwnasError(f"--out {out}: exists; calibrate it with "
                            f"--table {out} --in-place, or pick another --out")
  if _shipped(out):
    raise errors.HwnasError(f"--out {out}: inside the installed package; "
                            "write outside it")
  return out


def _calibrate(args) -> int:
  import numpy as np
  from hwnas import errors
  from hwnas import space as space_lib
  from hwnas.latency import host_calibration, load_table
  t = load_table(args.table)
  out = _calibrated_out(t, args)
  if args.drop:
    host_calibration.drop(t).save(out)
    print(f"wrote {out}: {t.path} without its calibration")
    return 0
  for flag in ("networks", "holdout", "repeats"):
    errors.positive(getattr(args, flag), "--" + flag)
  errors.positive(args.warmup, "--warmup", zero_ok=True)
  if t.provenance.get("kind") != "measured":
    raise errors.HwnasError(
        f"{t.path}: a {t.provenance.get('kind')} table; only measured "
        "tables are calibrated to a host (an estimated Edge TPU table does "
        "not depend on the host)")
  s = space_lib.load(args.space or t.header["spaces"][0].split("@")[0])
  r = host_calibration.calibrate(
      t, s, networks=args.networks, holdout=args.holdout,
      rng=np.random.default_rng(args.seed), warmup=args.warmup,
      repeats=args.repeats, rounds=args.rounds, chunk=args.chunk,
      progress=not args.no_progress)
  c = r.calibration
  print(f"table: {t.path}\n  {t.describe()}\nhost: {r.host}\n"
        f"machine: {r.load}")
  print(f"fit on {args.networks} networks: measured ≈ {c['a']:.4f}·sum "
        f"{c['b']:+.4f} ms {c['c_per_layer']:+.4f} ms·layers ({c['form']})")
  print(f"held out ({args.holdout}), as is:      "
        f"{fidelity_line(r.before)}")
  print(f"held out ({args.holdout}), calibrated: {fidelity_line(r.after)}")
  if args.report_json:
    pathlib.Path(args.report_json).write_text(
        json.dumps(r.to_dict(), indent=1))
  if not r.accepted:
    print(f"refused: not storing the calibration: {r.refused}; {t.path} "
          "is unchanged", file=sys.stderr)
    return 1
  host_calibration.apply(t, r).save(out)
  print(f"wrote {out}: calibrated for this host (drop it with `hwnas table "
        f"calibrate --table {out} --drop --in-place`)")
  return 0


def fidelity_line(m) -> str:
  return (f"MAPE {m['mape_pct']:.1f}%, within ±10% {m['within_10_pct']:.0f}%"
          f", Kendall tau {m['kendall_tau']:.3f}")


# Above this validation error a table's sums do not describe whole networks
# well enough to rank close candidates.
HIGH_MAPE_PCT = 25.0


def _warn_high_mape(rep, args) -> None:
  m = (rep.holdout_after if rep.calibration else rep.metrics)["mape_pct"]
  if m <= HIGH_MAPE_PCT:
    return
  print(f"warning: MAPE {m:.0f}% is high (> {HIGH_MAPE_PCT:.0f}%): the "
        "table's layer sums do not predict whole networks well. On a shared "
        "machine re-measure with --timer cpu and more --rounds; fit "
        "measured ~ a*sum + b with `hwnas table validate --fit-calibration`;"
        f" and validate on an idle machine (`--table {args.table}`)",
        file=sys.stderr)


def _retime(args) -> int:
  from hwnas.latency import load_table, measure
  t = measure.retime(load_table(args.table), args.timer)
  out = t.save(args.out or t.path)
  print(f"wrote {out}: latency_ms = {args.timer} clock medians; validate "
        "again (hwnas table validate --fit-calibration)")
  return 0


def _import(args) -> int:
  from hwnas import errors, validate
  from hwnas import space as space_lib
  from hwnas.latency import ofa_import
  validate.check_out(args.out, overwrite=args.overwrite)
  s = space_lib.load(args.space)
  r = ofa_import.import_ofa(args.file, s, device=args.device,
                            precision=args.precision)
  if not len(r.table):   # nothing to write: keep what --out holds
    why = "; ".join(f"{validate.printable(k, 60)}: {w}"
                    for k, w in list(r.unmapped.items())[:2])
    raise errors.HwnasError(
        f"{args.file}: no entry of its {r.total} keys maps onto space {s.id} "
        f"({why}); nothing written. Check --space and the file")
  r.table.save(args.out)
  print(f"wrote {args.out}: {len(r.table)} entries mapped from "
        f"{r.total} keys of {args.file}")
  for key, why in r.unmapped.items():
    print(f"  not mapped: {key}: {why}")
  return 0


def _report_json(args) -> str | None:
  if args.json_path and not args.report_json:
    from hwnas.cli import _help
    _help.deprecated("table validate --json FILE",
                     "table validate --report-json FILE")
  return args.report_json or args.json_path


def _table_arg(args, command: str, required: bool = False) -> str | None:
  """`--table T`, or the old positional spelling (with a note)."""
  from hwnas import errors
  if args.table and args.table_flag and args.table != args.table_flag:
    raise errors.HwnasError(f"table {command}: give the table once "
                            f"(--table {args.table_flag})")
  if args.table and not args.table_flag:
    from hwnas.cli import _help
    _help.deprecated(f"hwnas table {command} TABLE",
                     f"hwnas table {command} --table TABLE")
  name = args.table_flag or args.table
  if required and not name:
    raise errors.HwnasError(f"table {command}: give --table T (a shipped "
                            "name or a JSON file)")
  return name


def _show(args) -> int:
  from hwnas.latency import list_tables, load_table
  args.table = _table_arg(args, "show")
  if not args.table:
    for name in list_tables():
      print(name)
    return 0
  t = load_table(args.table)
  print(f"{t.path}\n{t.describe()}")
  for k, v in t.header.items():
    print(f"  {k}: {json.dumps(v)}")
  by_type: dict[str, list[float]] = {}
  for e in t.entries.values():
    by_type.setdefault(e.layer.type, []).append(e.latency_ms)
  print(f"entries: {len(t)}")
  for k, v in sorted(by_type.items()):
    print(f"  {k:10s} {len(v):5d}  {min(v):.4f} .. {max(v):.4f} {t.units}")
  return 0


def _energy(args) -> int:
  from hwnas.latency import energy_table
  out = args.out or str(energy_table.default_out(
      pathlib.Path(args.space).stem))
  acc = f" --accelerator {args.accelerator}" if (
      args.accelerator != "eyeriss-v1") else ""
  t = energy_table.write_table(
      args.space, out, accelerator=args.accelerator,
      command=f"hwnas table energy --space {args.space}{acc}" + (
          f" --out {args.out}" if args.out else ""))
  print(f"wrote {out}: {len(t)} entries, {t.describe()}")
  return 0


def _export_csv(args) -> int:
  from hwnas import validate
  from hwnas.latency import load_table
  if args.out:
    validate.check_out(args.out, overwrite=args.overwrite)
  text = load_table(_table_arg(args, "export-csv", required=True)).to_csv()
  if args.out:
    pathlib.Path(args.out).write_text(text)
  else:
    sys.stdout.write(text)
  return 0

