"""`hwnas export`: standalone Flax model, SavedModel, TFLite float/int8,
checks and a report for one architecture or network spec."""

from __future__ import annotations

import sys

from hwnas import pipeline

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


def _export(args) -> int:
  report = pipeline.export(
      args.out, arch=args.arch, reference=args.reference,
      netspec=args.netspec, supernet=args.supernet, weights=args.weights,
      table=args.table, resolution=args.resolution, formats=args.formats,
      calibration_steps=args.calibration_steps, dataset=args.dataset,
      eval_split=args.eval_split, eval_samples=args.eval_samples,
      bn_batches=args.bn_batches, batch_size=args.batch_size,
      latency_repeats=args.latency_repeats, seed=args.seed,
      overwrite=args.overwrite, compile_edgetpu=not args.no_compile,
      int8_min_agreement=args.int8_min_agreement,
      allow_int8_drop=args.allow_int8_drop)
  gate = report["checks"].get("int8_gate")
  if gate and not gate["ok"]:
    print(f"int8 gate FAILED: the int8 model agrees with the float model on "
          f"{100 * gate['top1_agreement']:.1f}% of inputs, below "
          f"{100 * gate['min_agreement']:.1f}%; everything is written to "
          f"{report['out']}; pass --allow-int8-drop to accept",
          file=sys.stderr)
  return 0 if pipeline.export_passed(report) else 1
