"""`hwnas table ...`: measure, check, validate, import, show, export latency
tables (see `hwnas.latency`)."""

from __future__ import annotations

import json
import pathlib
import sys


def register(sub) -> None:
  p = sub.add_parser("table", help="latency lookup tables: measure, check, "
                     "validate, import, show, export")
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
  q.add_argument("--json", help="write the report as JSON here")
  q.add_argument("--overwrite", action="store_true",
                 help="replace existing --out / --json files")
  q.set_defaults(func=_validate)

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

  q = t.add_parser("show", help="header and a summary of a table")
  q.add_argument("table", nargs="?", help="table name or file (omit: list "
                 "shipped tables)")
  q.set_defaults(func=_show)

  q = t.add_parser("export-csv", help="write a table as CSV")
  q.add_argument("table")
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
  if args.json:
    validate.check_out(args.json, overwrite=args.overwrite, flag="--json")
  if args.out:
    validate.check_out(args.out, overwrite=args.overwrite)
  t = load_table(args.table)
  s = space_lib.load(args.space)
  plot = args.plot or str(pathlib.Path(t.path).with_suffix(".fidelity.png"))
  rep = fidelity.validate(
      t, s, args.samples, rng=np.random.default_rng(args.seed),
      warmup=args.warmup, repeats=args.repeats,
      fit_calibration=args.fit_calibration, plot_path=plot, progress=True,
      rounds=args.rounds, chunk=args.chunk)
  print(fidelity.format_report(rep))
  _warn_high_mape(rep, args)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rep.to_dict(), indent=1))
  if args.fit_calibration or args.out:
    out = args.out or t.path
    fidelity.store(t, rep).save(out)
    print(f"stored calibration and fidelity summary in {out}")
  return 0


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


def _show(args) -> int:
  from hwnas.latency import list_tables, load_table
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
    print(f"  {k:10s} {len(v):5d}  {min(v):.4f} .. {max(v):.4f} ms")
  return 0


def _export_csv(args) -> int:
  from hwnas import validate
  from hwnas.latency import load_table
  if args.out:
    validate.check_out(args.out, overwrite=args.overwrite)
  text = load_table(args.table).to_csv()
  if args.out:
    pathlib.Path(args.out).write_text(text)
  else:
    sys.stdout.write(text)
  return 0

