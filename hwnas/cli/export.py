"""`hwnas export`: standalone Flax model, SavedModel, TFLite float/int8,
checks and a report for one architecture or network spec."""

from __future__ import annotations

import pathlib
import sys

from hwnas import errors

_FORMATS = "flax,saved_model,tflite,tflite-int8"
_MIN_AGREEMENT = 0.98   # = hwnas.export.checks.INT8_MIN_AGREEMENT (tested)


def register(sub) -> None:
  p = sub.add_parser(
      "export", help="export an architecture to Flax, SavedModel and TFLite",
      description="Export a searched architecture (weights from a trained "
      "supernet) or any network spec (random or given weights) to a "
      "standalone Flax model, SavedModel and TFLite float32/int8, check "
      "them and write DIR/report.md and report.json. Nothing is written to "
      "DIR unless the whole export succeeds.")
  src = p.add_argument_group("what to export (one of)")
  src.add_argument("--arch", help="architecture JSON (a choice or best.json)")
  src.add_argument("--reference", help="a shipped reference network name")
  src.add_argument("--netspec", help="a network-spec JSON file")
  p.add_argument("--supernet", help="trained supernet workdir: inherit its "
                 "weights (with --arch) and recalibrate BatchNorm")
  p.add_argument("--weights", help="export dir or Flax checkpoint with the "
                 "network's weights (without --supernet); default: random")
  p.add_argument("--out", required=True, help="export directory (new)")
  p.add_argument("--formats", default=_FORMATS,
                 help=f"comma-separated subset of {_FORMATS}")
  p.add_argument("--calibration-steps", type=int, default=100,
                 help="representative samples for int8 calibration")
  p.add_argument("--table", help="latency table to compare with")
  p.add_argument("--dataset", help="dataset for calibration, BatchNorm and "
                 "accuracy (default: the supernet's; none for references)")
  p.add_argument("--eval-split", default="test", choices=("val", "test"))
  p.add_argument("--eval-samples", type=int, default=500)
  p.add_argument("--bn-batches", type=int, default=20,
                 help="batches for BatchNorm recalibration (0: keep)")
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--latency-repeats", type=int, default=200)
  p.add_argument("--resolution", type=int,
                 help="input resolution of a --reference network")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--overwrite", action="store_true",
                 help="replace an existing --out (after success)")
  p.add_argument("--int8-min-agreement", type=float,
                 default=_MIN_AGREEMENT,
                 help="int8 gate: minimum top-1 agreement of the int8 TFLite "
                 f"model with the float model (default {_MIN_AGREEMENT})")
  p.add_argument("--allow-int8-drop", action="store_true",
                 help="exit 0 even when the int8 model fails the int8 gate "
                 "(the failure is still recorded in the report)")
  p.add_argument("--no-compile", action="store_true",
                 help="do not run edgetpu_compiler even if installed")
  p.set_defaults(func=_export)


def _options(args, dataset):
  from hwnas.export import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.ExportOptions(
      formats=pipeline.parse_formats(args.formats),
      calibration_steps=args.calibration_steps, dataset=dataset,
      eval_split=args.eval_split, eval_samples=args.eval_samples,
      bn_batches=args.bn_batches, batch_size=args.batch_size,
      latency_repeats=args.latency_repeats,
      latency_warmup=min(20, args.latency_repeats), seed=args.seed,
      overwrite=args.overwrite, compile_edgetpu=not args.no_compile,
      int8_min_agreement=args.int8_min_agreement,
      allow_int8_drop=args.allow_int8_drop)


def _export(args) -> int:
  given = [n for n in ("arch", "reference", "netspec") if getattr(args, n)]
  if len(given) != 1:
    raise errors.HwnasError("give exactly one of --arch, --reference, "
                            "--netspec")
  if args.supernet and not args.arch:
    raise errors.HwnasError("--supernet needs --arch (the architecture to "
                            "take from it)")
  if args.supernet and args.weights:
    raise errors.HwnasError("give --supernet or --weights, not both")
  from hwnas import arch as arch_lib  # pylint: disable=g-import-not-at-top
  from hwnas import netspec, references  # pylint: disable=g-import-not-at-top
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  from hwnas.export import pipeline  # pylint: disable=g-import-not-at-top
  pipeline.check_out_dir(args.out, overwrite=args.overwrite)
  if args.supernet:
    report = pipeline.export_arch(args.arch, args.supernet, args.out,
                                  options=_options(args, args.dataset),
                                  table=args.table)
  else:
    arch = None
    if args.arch:
      arch = arch_lib.load(args.arch)
      space = space_lib.load(arch.space)
      arch_lib.validate(space, arch)
      spec = arch_lib.decode(space, arch)
      source = {"kind": "arch", "description": f"{args.arch} ({space.name})"}
    elif args.reference:
      spec = references.load(args.reference, resolution=args.resolution)
      source = {"kind": "reference", "description":
                f"reference network {args.reference}"}
    else:
      spec = netspec.load(args.netspec)
      source = {"kind": "netspec", "description": f"network spec "
                f"{args.netspec}"}
    report = pipeline.export_spec(spec, args.out, weights=args.weights,
                                  options=_options(args, args.dataset),
                                  table=args.table, arch=arch, source=source)
  _print_summary(report)
  check = report["checks"].get("float_tflite_vs_flax")
  gate = report["checks"].get("int8_gate")
  if gate and not gate["ok"]:
    print(f"int8 gate FAILED: the int8 model agrees with the float model on "
          f"{100 * gate['top1_agreement']:.1f}% of inputs, below "
          f"{100 * gate['min_agreement']:.1f}%; everything is written to "
          f"{report['out']}; pass --allow-int8-drop to accept",
          file=sys.stderr)
  return 1 if (check and not check["passed"]) or (gate and not gate["ok"]) \
      else 0


def _print_summary(r) -> None:
  out = pathlib.Path(r["out"])
  net = r["network"]
  print(f"exported {net['name']} to {out}/")
  print(f"  MACs {net['macs']:,}  params {net['params']:,}")
  c = r["checks"]
  if "float_tflite_vs_flax" in c:
    f = c["float_tflite_vs_flax"]
    print(f"  float TFLite vs Flax: max |diff| {f['max_abs_diff']:.2e} "
          f"({'PASS' if f['passed'] else 'FAIL'})")
  if "int8_gate" in c:
    g = c["int8_gate"]
    print(f"  int8 gate: top-1 agreement {100 * g['top1_agreement']:.1f}% "
          f"(>= {100 * g['min_agreement']:.1f}%), output error max "
          f"{g['max_error_steps']:.2f} steps: {g['status']}")
  if "accuracy" in c:
    a = c["accuracy"]
    parts = [f"{k} {100 * v:.2f}%" for k, v in a.items()
             if k in ("flax", "tflite_float", "tflite_int8")]
    print(f"  accuracy ({a['split']}, {a['num_samples']}): "
          f"{', '.join(parts)}")
  lat = r["latency"]
  if lat.get("predicted"):
    print(f"  predicted {lat['predicted']['ms']:.3f} ms "
          f"({lat['predicted']['provenance']})")
  for name, m in lat["measured"].items():
    print(f"  measured {name}: {m['median_ms']:.3f} ms median (this CPU)")
  comp = lat.get("comparison") or {}
  if comp.get("ratio") is not None:
    print(f"  measured / predicted ({comp['model']}): {comp['ratio']:.2f}")
  e = r.get("edgetpu")
  if e:
    print(f"  Edge TPU: {e['verdict']}")
    if not e.get("compiler"):
      print(f"  compile with: {e['compile_command']}")
  print(f"  report: {out / 'report.md'}")
