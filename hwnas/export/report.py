"""`report.json` and `report.md` of an export directory."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any


def _fmt_ms(x: float | None) -> str:
  return "n/a" if x is None else f"{x:.3f} ms"


def _fmt_pct(x: float | None) -> str:
  return "n/a" if x is None else f"{100 * x:.2f}%"


def _fmt_norm(n: dict[str, Any] | None) -> str:
  if not n:
    return "none recorded (no dataset)"
  mean = ", ".join(f"{m:.4g}" for m in n["mean"])
  std = ", ".join(f"{x:.4g}" for x in n["std"])
  return (f"`(raw / {n['pixel_max']:g} - mean) / std` with mean ({mean}), "
          f"std ({std}) of {n['dataset']}")


def _latency_lines(lat: dict[str, Any]) -> list[str]:
  out = []
  pred = lat.get("predicted")
  if pred:
    out.append(f"- predicted: {_fmt_ms(pred['ms'])} by table `{pred['table']}`"
               f" ({pred['provenance']})")
  else:
    out.append("- predicted: no latency table given (`--table T`)")
  comp = lat.get("comparison") or {}
  if comp.get("ratio") is not None:
    out.append(f"- measured / predicted ({comp['model']}): "
               f"{comp['ratio']:.2f} ({comp['note']})")
  elif comp.get("note"):
    out.append(f"- {comp['note']}")
  for name, m in lat.get("measured", {}).items():
    out.append(f"- measured on this machine, {name}: median "
               f"{_fmt_ms(m['median_ms'])} (p10 {_fmt_ms(m['p10_ms'])}, p90 "
               f"{_fmt_ms(m['p90_ms'])}, {m['count']} runs; {lat['runtime']})")
  return out


def _edgetpu_lines(e: dict[str, Any]) -> list[str]:
  if not e:
    return ["- not checked (no int8 model exported)"]
  out = [f"- verdict: **{e['verdict']}**",
         f"- static check: {e['ops']['summary']}"]
  for op, why in e["ops"]["reasons"].items():
    out.append(f"  - `{op}`: {why}")
  if e["float_ops"]:
    out.append(f"- float operators: {', '.join(e['float_ops'])}")
  comp = e.get("compiler")
  if comp and comp.get("result"):
    r = comp["result"]
    on_tpu, on_cpu = r["ops_on_edgetpu"], r["ops_on_cpu"]
    if on_tpu is None and r["all_mapped"]:  # printed only on fallback
      on_tpu, on_cpu = r["total_ops"], 0
    out.append(f"- edgetpu_compiler {r['compiler_version']}: {on_tpu} ops on "
               f"the Edge TPU, {on_cpu} on the CPU, {r['num_subgraphs']} "
               f"subgraph(s); parameters on-chip {r['on_chip_used_bytes']} B, "
               f"off-chip (streamed) {r['off_chip_bytes']} B; log "
               f"`{comp['log']}`")
  elif comp and comp.get("error"):
    out.append(f"- edgetpu_compiler failed: {comp['error']}")
  else:
    out.append(f"- edgetpu_compiler not installed here; compile with: "
               f"`{e['compile_command']}`")
  return out


def to_markdown(r: dict[str, Any]) -> str:
  """Human-readable report."""
  a, net = r.get("architecture") or {}, r["network"]
  lines = [f"# Export report: {net['name']}", ""]
  lines += ["## Source", "", f"- {r['source']['description']}"]
  if r.get("bn_recalibration"):
    b = r["bn_recalibration"]
    lines.append(f"- BatchNorm recalibrated on {b['batches']} batches of "
                 f"{b['batch_size']} from `{b['dataset']}` {b['split']}")
  lines += ["", "## Architecture", ""]
  if a:
    lines += [f"- `{a['string']}`", f"- `{json.dumps(a['json'])}`"]
  lines += [f"- resolution {net['resolution']}, {net['num_layers']} layers, "
            f"{net['num_classes']} classes",
            f"- MACs: {net['macs']:,}", f"- params: {net['params']:,} "
            f"(trainable incl. BN: {net['trainable_params']:,}; int8 "
            f"{net['int8_bytes']:,} bytes)",
            f"- input normalisation: {_fmt_norm(r.get('normalisation'))}",
            "", "## Checks", ""]
  c = r["checks"]
  if c.get("float_tflite_vs_flax"):
    f = c["float_tflite_vs_flax"]
    lines.append(f"- float TFLite vs Flax: max |diff| {f['max_abs_diff']:.2e} "
                 f"(tolerance {f['tolerance']:.2e}) on {f['num_samples']} "
                 f"inputs, top-1 agreement {_fmt_pct(f['top1_agreement'])}: "
                 f"**{'PASS' if f['passed'] else 'FAIL'}**")
  g = c.get("int8_gate")
  if g:
    lines.append(
        f"- int8 gate (full-int8 TFLite vs Flax, {g['num_samples']} inputs): "
        f"top-1 agreement {_fmt_pct(g['top1_agreement'])} (threshold "
        f"{_fmt_pct(g['min_agreement'])}), output error max "
        f"{g['max_error_steps']:.2f} / mean {g['mean_error_steps']:.2f} "
        f"output quantisation steps: **{g['status']}**")
    lines.append(
        f"- int8 quantisation: input scale {g['input_scale']:.6g} zero point "
        f"{g['input_zero_point']}, output scale {g['output_scale']:.6g} zero "
        f"point {g['output_zero_point']} (real = scale * (q - zero point))")
  sw = c.get("shift_weights")
  if sw:
    lo = -(2 ** (sw["bits"] - 1) - 1)
    lines.append(
        f"- shift layers: {sw['convs']} convolution kernels exported as "
        f"exactly 0 or ±2^k, k in [{lo}, 0] (the Flax weights the TFLite "
        "models are converted from; TFLite folds BatchNorm into the "
        "filters, so its filters are powers of two times a per-channel "
        "scale): "
        + ("**PASS**" if sw["passed"] else
           f"**FAIL** ({', '.join(sw['not_powers_of_two'][:3])})"))
    lines += _shift_int8_lines(sw.get("int8"))
  acc = c.get("accuracy")
  if acc:
    lines.append(f"- accuracy on `{acc['dataset']}` {acc['split']} "
                 f"({acc['num_samples']} samples): Flax "
                 f"{_fmt_pct(acc.get('flax'))}, TFLite float "
                 f"{_fmt_pct(acc.get('tflite_float'))}, TFLite int8 "
                 f"{_fmt_pct(acc.get('tflite_int8'))}; int8 drop "
                 f"{_fmt_pct(acc.get('int8_drop'))}")
  else:
    lines.append("- accuracy: not measured (no dataset)")
  lines += ["", "## Latency", ""] + _latency_lines(r["latency"])
  lines += ["", "## Operators", ""]
  for name, ops in r.get("operators", {}).items():
    counts = ", ".join(f"{k}×{v}" for k, v in ops["counts"].items())
    lines.append(f"- {name} ({ops['total']}): {counts}")
  lines += ["", "## Edge TPU", ""] + _edgetpu_lines(r.get("edgetpu") or {})
  lines += ["", "## Files", ""]
  lines += [f"- `{f}`" for f in r["files"]]
  lines += ["", f"hwnas {r['hwnas_version']}, {r['created']}", ""]
  return "\n".join(lines)


def write(directory: str | os.PathLike[str], report: dict[str, Any]) -> None:
  """Writes `report.json` and `report.md` into `directory`."""
  d = pathlib.Path(directory)
  (d / "report.json").write_text(json.dumps(report, indent=1) + "\n")
  (d / "report.md").write_text(to_markdown(report))


def _shift_int8_lines(i8) -> list[str]:
  """Per shift kernel, which output channels the int8 model holds as
  exact powers of two and why the others are not."""
  if not i8:
    return []
  top = 2 ** (i8["levels"] - 1)
  out = [f"- int8 shift weights: {i8['exact_channels']} of {i8['channels']} "
         "output channels exact (int8 weight = the channel's scale x a "
         f"power of two, {top} ... 1: a channel fits when its weights span "
         f"at most {i8['levels']} powers of two; the others keep the "
         "converter's scale, max / 127, and are rounded):"]
  for l in i8["layers"]:
    head = f"  - `{l['kernel']}`"
    if not l["op"]:
      out.append(f"{head}: no int8 weight tensor of the model matches it: "
                 "**not checked**")
      continue
    line = (f"{head} ({l['op']}): {l['exact_channels']}/{l['channels']} "
            "exact")
    bad = l["not_exact"]
    if bad:
      spans = sorted({b["exponent_span"] for b in bad})
      fits = [b["channel"] for b in bad
              if 0 <= b["exponent_span"] < i8["levels"]]
      line += (f"; not exact: {len(bad)} channel(s) spanning "
               f"{min(spans) + 1}-{max(spans) + 1} powers of two"
               + (f" (channels {fits[:5]} fit but were not re-quantised)"
                  if fits else ""))
    out.append(line)
  return out

