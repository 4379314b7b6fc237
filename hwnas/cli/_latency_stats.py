"""Latency lines of `hwnas arch stats --table T` (prediction + its parts)."""

from __future__ import annotations

from typing import Any

from hwnas.netspec import NetSpec


def predict(table_path: str, spec: NetSpec) -> dict[str, Any]:
  """The table's breakdown of `spec` as a JSON-ready dict (see
  `LatencyTable.predict_breakdown`)."""
  from hwnas.latency import load_table  # pylint: disable=g-import-not-at-top
  from hwnas.latency import host_calibration  # pylint: disable=g-import-not-at-top
  t = load_table(table_path)
  host_calibration.warn_if_other_host(t)
  d = t.predict_breakdown(spec)
  d["layers"] = [{"key": k, "ms": ms} for k, ms in d["layers"]]
  d["table"] = t.path
  d["extrapolated"] = _extrapolated(t, spec)
  d["cpu_fallback"] = _fallback(t, spec)
  cal = t.provenance.get("calibration")
  if isinstance(cal, dict) and "range" in cal:
    d["calibration_range"] = cal["range"]
  return d


def _extrapolated(t, spec: NetSpec) -> list[str]:
  """What an estimated Edge TPU table's prediction of `spec` extrapolates."""
  from hwnas.edgetpu import cost_model  # pylint: disable=g-import-not-at-top
  from hwnas.latency import edgetpu_table  # pylint: disable=g-import-not-at-top
  nm = t.network_model or {}
  if nm.get("kind", nm.get("name")) != cost_model.MODEL_NAME:
    return []
  rng = (t.provenance.get("calibration") or {}).get("range")
  return cost_model.extrapolations(
      edgetpu_table.estimate_for_table(t, spec), rng)


def _fallback(t, spec: NetSpec) -> list[str]:
  """Why `spec` falls back to the CPU on an Edge TPU table's compiler
  (the operator table the export check reads); [] when it all maps."""
  from hwnas.edgetpu import layer_cost  # pylint: disable=g-import-not-at-top
  from hwnas.latency import edgetpu_table  # pylint: disable=g-import-not-at-top
  if not edgetpu_table.is_edgetpu_table(t):
    return []
  compiler = edgetpu_table.compiler_of(t)
  cut = layer_cost.first_unmapped(spec, compiler)
  if cut is None:
    return []
  layer = spec.layers[cut]
  return [f"CPU fallback: layers[{cut}] ({layer.key()}) has "
          f"{layer_cost.unsupported_op(layer, compiler)}, which Edge TPU "
          f"compiler {compiler} does not map: it and every later op run on "
          "the host CPU; an Edge TPU search leaves such networks out unless "
          "--allow-cpu-fallback"]


def print_latency(d: dict[str, Any]) -> None:
  """Prints the prediction, its per-type split and whole-network terms."""
  band = d.get("band_ms")
  within = (f" (band {band[0]:.3f}-{band[1]:.3f} ms, leave-one-out)"
            if band else "")
  print(f"  latency: {d['total_ms']:.3f} ms{within} predicted by "
        f"{d['table']}")
  print(f"    {d['provenance']}")
  split = ", ".join(f"{k} {v:.3f}" for k, v in
                    sorted(d["by_type_ms"].items(), key=lambda kv: -kv[1]))
  print(f"    per-layer sum {d['layer_sum_ms']:.3f} ms ({split})")
  cal = d.get("calibration")
  if cal:
    print(f"    calibrated {d['calibrated_ms']:.3f} ms (a={cal['a']:.4f}, "
          f"b={cal['b']:+.4f} ms, {cal.get('c_per_layer', 0.0):+.4f} "
          "ms/layer)")
  for name, ms in d["network_terms_ms"].items():
    print(f"    + {name}: {ms:.3f} ms (whole-network term)")
  for line in d.get("cpu_fallback", []) + d.get("extrapolated", []):
    print(f"    ! {line}")
