"""Latency table schema: header and entry validation, the `Entry` value.

Split from `table` (which holds the table value, prediction and
persistence) along the file-format seam: everything here answers "is this
JSON a valid table, and if not, which key is wrong", with one
`TableError` line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any, Mapping

from hwnas import errors
from hwnas.netspec import Layer

SCHEMA = "hwnas/latency-table@1"
PRECISIONS = ("float32", "int8", "int16")
STATISTICS = ("median", "mean")
PROVENANCE_KINDS = ("measured", "estimated", "imported")
# header.units -> the entry key holding each layer's value. Latency tables
# are in ms; energy tables (hwnas.latency.energy_table) in µJ, and an
# Entry's `latency_ms` then holds microjoules (the field keeps its name:
# every latency code path reads it).
UNITS = {"ms": "latency_ms", "uJ": "energy_uj"}
CALIBRATION_TYPES = ("none", "linear")



class TableError(errors.HwnasError):
  """A latency table does not validate or cannot predict a network."""


# ----------------------------------------------------------------- values --

@dataclasses.dataclass(frozen=True)
class Entry:
  """The latency of one layer signature (milliseconds)."""

  layer: Layer
  latency_ms: float
  p10_ms: float | None = None
  p90_ms: float | None = None
  count: int = 0
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  units: str = "ms"          # 'uJ': an energy table's entry

  @property
  def key(self) -> str:
    return self.layer.key()

  def to_dict(self) -> dict[str, Any]:
    d: dict[str, Any] = {"layer": self.layer.to_dict(),
                         UNITS[self.units]: _round(self.latency_ms)}
    if self.p10_ms is not None:
      d["p10_ms"] = _round(self.p10_ms)
    if self.p90_ms is not None:
      d["p90_ms"] = _round(self.p90_ms)
    d["count"] = self.count
    if self.extras:
      d["extras"] = dict(self.extras)
    return d


def _cell(v: Any) -> str:
  return v if isinstance(v, str) else json.dumps(v)


def _round(x: float) -> float:
  return float(f"{x:.6g}")


_REQUIRED_HEADER = ("device", "runtime", "runtime_version", "precision",
                    "batch_size", "threads", "units", "statistic", "warmup",
                    "repeats", "date", "hwnas_version", "spaces",
                    "provenance")
_OPTIONAL_HEADER = ("backend", "spread", "calibration", "network_model",
                    "notes", "fidelity", "resolutions", "load", "timer",
                    "rounds")


# ---------------------------------------------------------------- header --

def make_header(*, device: str, backend: str, runtime: str,
                runtime_version: str, precision: str, batch_size: int,
                threads: int, warmup: int, repeats: int,
                spaces: list[str], provenance: Mapping[str, Any],
                statistic: str = "median", **optional: Any
                ) -> dict[str, Any]:
  """Builds and validates a header (date and hwnas version filled in)."""
  from hwnas import __version__
  header = {
      "device": device, "backend": backend, "runtime": runtime,
      "runtime_version": runtime_version, "precision": precision,
      "batch_size": batch_size, "threads": threads, "units": "ms",
      "statistic": statistic, "spread": "p10/p90", "warmup": warmup,
      "repeats": repeats,
      "date": datetime.datetime.now(datetime.timezone.utc).strftime(
          "%Y-%m-%dT%H:%M:%SZ"),
      "hwnas_version": __version__, "spaces": list(spaces),
      "provenance": dict(provenance), **optional}
  _validate_header(header, "<new table>")
  return header


def _fail(path: str, key: str, msg: str):
  raise TableError(f"{path}: {key}: {msg}")


def _is_num(v: Any) -> bool:
  return (isinstance(v, (int, float)) and not isinstance(v, bool) and
          math.isfinite(v))


def _validate_header(h: Any, path: str) -> None:
  if not isinstance(h, dict):
    _fail(path, "header", "must be a JSON object")
  for k in _REQUIRED_HEADER:
    if k not in h:
      _fail(path, f"header.{k}", "missing required key")
  unknown = sorted(set(h) - set(_REQUIRED_HEADER) - set(_OPTIONAL_HEADER))
  if unknown:
    _fail(path, f"header.{unknown[0]}", "unknown key; allowed: " +
          ", ".join(_REQUIRED_HEADER + _OPTIONAL_HEADER))
  if h["units"] not in UNITS:
    _fail(path, "header.units", f"must be 'ms' (latency) or 'uJ' (energy), "
          f"got {h['units']!r}; convert the table to milliseconds")
  if h["precision"] not in PRECISIONS:
    _fail(path, "header.precision", f"{h['precision']!r} is not one of "
          f"{', '.join(PRECISIONS)}")
  if h["statistic"] not in STATISTICS:
    _fail(path, "header.statistic", f"{h['statistic']!r} is not one of "
          f"{', '.join(STATISTICS)}")
  for k in ("batch_size", "threads", "warmup", "repeats"):
    v = h[k]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (
        k == "batch_size" and v == 0):
      _fail(path, f"header.{k}", f"must be a non-negative integer, got {v!r}")
  if not isinstance(h["spaces"], list) or not all(
      isinstance(s, str) for s in h["spaces"]):
    _fail(path, "header.spaces", "must be a list of 'name@version' strings")
  p = h["provenance"]
  if not isinstance(p, dict) or p.get("kind") not in PROVENANCE_KINDS:
    _fail(path, "header.provenance.kind", "must be one of " +
          ", ".join(PROVENANCE_KINDS))
  if p["kind"] == "estimated" and "model" not in p:
    _fail(path, "header.provenance.model", "an estimated table must name "
          "the model that estimated it")
  if p["kind"] == "imported" and "source" not in p:
    _fail(path, "header.provenance.source", "an imported table must name "
          "its source")
  _validate_calibration(h.get("calibration"), path)
  nm = h.get("network_model")
  if nm is not None and (not isinstance(nm, dict) or
                         not isinstance(nm.get("kind", nm.get("name")), str)
                         or not isinstance(nm.get("params", {}), dict)):
    _fail(path, "header.network_model", "must be {kind: str, version: ..., "
          "params: {...}}")


def _validate_calibration(cal: Any, path: str) -> None:
  if cal is None:
    return
  if not isinstance(cal, dict) or cal.get("type") not in CALIBRATION_TYPES:
    _fail(path, "header.calibration.type", "must be one of " +
          ", ".join(CALIBRATION_TYPES))
  if cal["type"] == "linear":
    for k in ("a", "b", "c_per_layer"):
      if k == "c_per_layer" and k not in cal:
        continue
      if not _is_num(cal.get(k)):
        _fail(path, f"header.calibration.{k}", f"must be a number, got "
              f"{cal.get(k)!r}")
    if cal["a"] <= 0:
      _fail(path, "header.calibration.a", f"must be positive, got "
            f"{cal['a']!r} (a slower network would be predicted faster); "
            "fit it again with `hwnas table validate --fit-calibration`")


# ---------------------------------------------------------------- entries --

_ENTRY_KEYS = {"layer", "latency_ms", "p10_ms", "p90_ms", "count", "extras"}


def parse_entry(key: str, d: Any, path: str, units: str = "ms") -> Entry:
  """Validates one entry of a table (or journal) file."""
  where = f"entries[{key!r}]"
  if not isinstance(d, dict):
    _fail(path, where, "must be a JSON object")
  if units != "ms":   # an energy entry: its value key, read as the value
    value_key = UNITS[units]
    if "latency_ms" in d or value_key not in d:
      _fail(path, f"{where}.{value_key}", f"missing; a {units} table's "
            f"entries give {value_key}, not latency_ms")
    d = {("latency_ms" if k == value_key else k): v for k, v in d.items()}
  unknown = sorted(set(d) - _ENTRY_KEYS)
  if unknown:
    _fail(path, f"{where}.{unknown[0]}", "unknown key; allowed: " +
          ", ".join(sorted(_ENTRY_KEYS)))
  if "latency_ms" not in d:
    _fail(path, f"{where}.latency_ms", "missing")
  for k in ("latency_ms", "p10_ms", "p90_ms"):
    if k in d and d[k] is not None:
      if not _is_num(d[k]):
        _fail(path, f"{where}.{k}", f"must be a number, got {d[k]!r}")
      if d[k] < 0:
        _fail(path, f"{where}.{k}", f"must not be negative, got {d[k]!r}")
  if d["latency_ms"] is None:
    _fail(path, f"{where}.latency_ms", "must be a number, got null")
  count = d.get("count", 0)
  if isinstance(count, bool) or not isinstance(count, int) or count < 0:
    _fail(path, f"{where}.count", f"must be a non-negative integer, got "
          f"{count!r}")
  if not isinstance(d.get("layer"), dict):
    _fail(path, f"{where}.layer", "missing or not an object (give the "
          "layer's fields: type, input_size, in_channels, ...)")
  try:
    layer = Layer.from_dict(d["layer"], where=f"{where}.layer")
  except errors.SpecError as e:
    raise TableError(f"{path}: {e}") from None
  if layer.key() != key:
    _fail(path, where, f"the key does not match its layer, whose signature "
          f"is {layer.key()!r}")
  extras = d.get("extras", {})
  if not isinstance(extras, dict):
    _fail(path, f"{where}.extras", "must be a JSON object")
  return Entry(layer, float(d["latency_ms"]), _opt(d.get("p10_ms")),
               _opt(d.get("p90_ms")), count, extras, units)


def _opt(v: Any) -> float | None:
  return None if v is None else float(v)


def network_model_kind(nm: Mapping[str, Any]) -> str:
  """The kind a header's `network_model` names.

  Current tables write `kind`; tables written before it existed wrote the
  same string as `name` (with a `module` to import, now ignored).
  """
  return str(nm.get("kind", nm.get("name")))
