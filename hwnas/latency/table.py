"""Latency lookup tables: the versioned JSON format, loading and prediction.

A table maps the canonical signature of every layer (`Layer.key()`: stem and
head convs, blocks, pooling, classifier) to a latency in milliseconds
measured (or estimated, or imported) on one device with one runtime. The
file is self-describing:

```json
{
  "schema": "hwnas/latency-table@1",
  "header": {
    "device": "AMD EPYC (2 cores)", "backend": "xla",
    "runtime": "jax", "runtime_version": "0.10.2",
    "precision": "float32", "batch_size": 1, "threads": 1,
    "units": "ms", "statistic": "median", "spread": "p10/p90",
    "warmup": 5, "repeats": 30, "date": "2026-11-25T09:00:00Z",
    "hwnas_version": "0.1.0", "spaces": ["tiny@1"],
    "provenance": {"kind": "measured", "command": "hwnas table measure ..."},
    "calibration": {"type": "linear", "a": 1.02, "b": 0.1},
    "network_model": {"name": "edgetpu-model", "version": "1",
                      "module": "hwnas.latency.edgetpu_model",
                      "params": {}},
    "notes": "machine shared; load average 1.3"
  },
  "entries": {
    "ibn-i16x16x16-o24-m64-k3-s2-se0-relu-nores": {
      "layer": {"type": "ibn", "input_size": 16, ...},
      "latency_ms": 0.081, "p10_ms": 0.078, "p90_ms": 0.09, "count": 30,
      "extras": {"on_chip_bytes": 1234}
    }
  }
}
```

`predict(spec)` = calibration(sum of the layers' entries) + the terms of the
header's `network_model` (whole-network, non-additive effects such as the
Edge TPU's parameter-cache streaming; plugged in through
`register_network_model`). Everything a user can get wrong raises one
`HwnasError` line naming the file and the key.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import importlib
import io
import json
import math
import os
import pathlib
import types
from typing import Any, Callable, Iterable, Mapping

from hwnas import errors, resources
from hwnas.netspec import Layer, NetSpec

SCHEMA = "hwnas/latency-table@1"
PRECISIONS = ("float32", "int8")
STATISTICS = ("median", "mean")
PROVENANCE_KINDS = ("measured", "estimated", "imported")
CALIBRATION_TYPES = ("none", "linear")

NetworkModelFn = Callable[[NetSpec, Mapping[str, Any]], Mapping[str, float]]
_NETWORK_MODELS: dict[str, NetworkModelFn] = {}


class TableError(errors.HwnasError):
  """A latency table does not validate or cannot predict a network."""


def register_network_model(name: str, fn: NetworkModelFn) -> None:
  """Registers whole-network latency terms under `name`.

  Args:
    name: the name tables give in `header.network_model.name`.
    fn: `fn(spec, params) -> {term name: ms}`; the terms are added to the
      calibrated per-layer sum by `LatencyTable.predict`.
  """
  _NETWORK_MODELS[name] = fn


def network_model(name: str, module: str | None = None) -> NetworkModelFn:
  """Returns a registered network model, importing `module` to register it."""
  if name not in _NETWORK_MODELS:
    candidates = [module] if module else []
    candidates.append("hwnas.latency." + name.replace("-", "_"))
    for mod in candidates:
      try:
        importlib.import_module(mod)
      except ModuleNotFoundError:
        continue
      if name in _NETWORK_MODELS:
        break
  if name not in _NETWORK_MODELS:
    raise TableError(
        f"network model {name!r} is not registered; import the module that "
        f"defines it (header.network_model.module) or call "
        f"hwnas.latency.register_network_model({name!r}, fn)")
  return _NETWORK_MODELS[name]


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

  @property
  def key(self) -> str:
    return self.layer.key()

  def to_dict(self) -> dict[str, Any]:
    d: dict[str, Any] = {"layer": self.layer.to_dict(),
                         "latency_ms": _round(self.latency_ms)}
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


@dataclasses.dataclass(frozen=True)
class LatencyTable:
  """A validated latency table (see the module docstring for the format)."""

  header: Mapping[str, Any]
  entries: Mapping[str, Entry]
  path: str = ""

  def __post_init__(self):
    # Layer -> ms, the look-up every prediction does (Layers hash faster
    # than building their key strings).
    object.__setattr__(self, "_by_layer",
                       {e.layer: e.latency_ms for e in self.entries.values()})

  @property
  def by_layer(self) -> Mapping[Layer, float]:
    """Layer -> latency_ms of every entry (read-only view)."""
    return types.MappingProxyType(self._by_layer)  # type: ignore[attr-defined]

  # -- header accessors --------------------------------------------------
  @property
  def provenance(self) -> Mapping[str, Any]:
    return self.header["provenance"]

  @property
  def backend(self) -> str:
    return str(self.header.get("backend", self.header["runtime"]))

  @property
  def calibration(self) -> Mapping[str, Any] | None:
    cal = self.header.get("calibration")
    return None if not cal or cal.get("type") == "none" else cal

  @property
  def network_model(self) -> Mapping[str, Any] | None:
    return self.header.get("network_model") or None

  @property
  def name(self) -> str:
    return pathlib.Path(self.path).stem if self.path else "<table>"

  def __len__(self) -> int:
    return len(self.entries)

  def __contains__(self, layer: Layer | str) -> bool:
    if isinstance(layer, Layer):
      return layer in self._by_layer  # type: ignore[attr-defined]
    return layer in self.entries

  def latency(self, layer: Layer) -> float:
    """One layer's entry in ms (TableError if it is missing)."""
    try:
      return self._by_layer[layer]  # type: ignore[attr-defined]
    except KeyError:
      raise TableError(self.missing_message([layer])) from None

  # -- prediction --------------------------------------------------------
  def missing(self, layers: Iterable[Layer]) -> list[Layer]:
    """The distinct layers (in order) that have no entry."""
    by = self._by_layer  # type: ignore[attr-defined]
    out, seen = [], set()
    for l in layers:
      if l not in by and l not in seen:
        seen.add(l)
        out.append(l)
    return out

  def missing_message(self, missing: list[Layer], what: str = "") -> str:
    """The one-line error for `missing` signatures (with the fix)."""
    keys = ", ".join(l.key() for l in missing[:3]) + (
        f", ... ({len(missing) - 3} more; `hwnas table check` lists them)"
        if len(missing) > 3 else "")
    return (f"{self.path or '<table>'}: {len(missing)} signature(s) missing"
            f"{' for ' + what if what else ''}: {keys}; measure them with "
            f"`hwnas table measure --space S --backend {self.backend} --out "
            f"{self.path or 'T'}` or check coverage with `hwnas table check`")

  def layer_sum(self, spec: NetSpec) -> float:
    """Uncalibrated sum of the entries of `spec`'s layers (ms)."""
    by = self._by_layer  # type: ignore[attr-defined]
    try:
      return math.fsum(by[l] for l in spec.layers)
    except OverflowError:
      return math.inf   # predict/predict_breakdown name the table
    except KeyError:
      raise TableError(self.missing_message(self.missing(spec.layers),
                                             spec.name)) from None

  def calibrate(self, layer_sum_ms: float, num_layers: int = 0) -> float:
    """Applies the header's calibration to a per-layer sum.

    `linear`: a * sum + b + c_per_layer * num_layers (the last term, 0 by
    default, absorbs per-call overheads that timing layers one by one adds
    to every entry but a whole network pays once).
    """
    cal = self.calibration
    if cal is None:
      return layer_sum_ms
    return (cal["a"] * layer_sum_ms + cal["b"] +
            cal.get("c_per_layer", 0.0) * num_layers)

  def network_terms(self, spec: NetSpec) -> dict[str, float]:
    """Whole-network terms of the header's network model ({} if none)."""
    nm = self.network_model
    if nm is None:
      return {}
    fn = network_model(nm["name"], nm.get("module"))
    return {k: float(v) for k, v in fn(spec, nm.get("params", {})).items()}

  def predict(self, spec: NetSpec) -> float:
    """Predicted latency of a whole network in ms."""
    total = self.calibrate(self.layer_sum(spec), len(spec.layers))
    if self.network_model is not None:
      total += math.fsum(self.network_terms(spec).values())
    return checked_ms(self, total, spec.name)

  def predict_breakdown(self, spec: NetSpec) -> dict[str, Any]:
    """Per-layer entries, sum, calibration and network terms, for reports."""
    layer_sum = self.layer_sum(spec)
    by_type: dict[str, float] = {}
    for l in spec.layers:
      by_type[l.type] = by_type.get(l.type, 0.0) + self.latency(l)
    terms = self.network_terms(spec)
    calibrated = self.calibrate(layer_sum, len(spec.layers))
    return {
        "network": spec.name,
        "layers": [(l.key(), self.latency(l)) for l in spec.layers],
        "by_type_ms": by_type,
        "layer_sum_ms": layer_sum,
        "calibration": dict(self.calibration) if self.calibration else None,
        "calibrated_ms": calibrated,
        "network_terms_ms": terms,
        "total_ms": checked_ms(self, calibrated + math.fsum(terms.values()),
                               spec.name),
        "provenance": self.describe(),
    }

  # -- description -------------------------------------------------------
  def describe(self) -> str:
    """One-line provenance, repeated by every report that uses the table."""
    h, p = self.header, self.provenance
    what = (f"{self.backend} {h['precision']} batch {h['batch_size']} on "
            f"{h['device']}")
    if p["kind"] == "measured":
      timer = " (process CPU time)" if h.get("timer") == "cpu" else ""
      return (f"measured: {what}, {h['runtime_version']}, "
              f"{h['statistic']} of {h['repeats']} runs{timer}, "
              f"{h['date'][:10]}")
    if p["kind"] == "estimated":
      model = p.get("model", h["runtime"])
      version = p.get("version", h["runtime_version"])
      return (f"estimated by {model} v{version} ({what}) — measure a real "
              f"table with `hwnas table measure --backend edgetpu`"
              if "edgetpu" in str(model) else
              f"estimated by {model} v{version} ({what}); not measured")
    return (f"imported from {p.get('source', '?')} ({p.get('format', '?')} "
            f"format): {what}")

  # -- persistence -------------------------------------------------------
  def to_dict(self) -> dict[str, Any]:
    return {"schema": SCHEMA, "header": dict(self.header),
            "entries": {k: self.entries[k].to_dict()
                        for k in sorted(self.entries)}}

  def save(self, path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Writes the table as JSON (atomically: temp file + rename)."""
    p = pathlib.Path(path or self.path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
    os.replace(tmp, p)
    return p

  def to_csv(self) -> str:
    """CSV for humans: `# key: value` header lines, then one row per entry."""
    out = io.StringIO()
    for k, v in self.header.items():
      out.write(f"# {k}: {json.dumps(v)}\n")
    extras = sorted({x for e in self.entries.values() for x in e.extras})
    cols = ["key", "type", "input_size", "in_channels", "out_channels",
            "mid_channels", "kernel", "stride", "se_channels", "activation",
            "residual", "latency_ms", "p10_ms", "p90_ms", "count"] + extras
    w = csv.writer(out)
    w.writerow(cols)
    for key in sorted(self.entries):
      e = self.entries[key]
      row = [key] + [getattr(e.layer, c) for c in cols[1:11]]
      row += [e.latency_ms, e.p10_ms, e.p90_ms, e.count]
      row += [_cell(e.extras[x]) if x in e.extras else "" for x in extras]
      w.writerow(row)
    return out.getvalue()

  def with_entries(self, entries: Iterable[Entry]) -> "LatencyTable":
    """A copy with `entries` added (replacing equal signatures)."""
    new = dict(self.entries)
    new.update({e.key: e for e in entries})
    return LatencyTable(dict(self.header), new, self.path)

  def with_header(self, **updates: Any) -> "LatencyTable":
    """A copy with header fields replaced (validated)."""
    header = {**self.header, **updates}
    _validate_header(header, self.path or "<table>")
    return LatencyTable(header, dict(self.entries), self.path)


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


def checked_ms(table: LatencyTable, ms: float, what: str) -> float:
  """`ms` if it is a latency (finite, >= 0), else a TableError: the table's
  entries or calibration cannot be right."""
  if math.isfinite(ms) and ms >= 0:
    return ms
  raise TableError(
      f"{table.path or '<table>'}: predicts {ms} ms for {what}: its entries "
      f"or header.calibration ({dict(table.calibration or {})}) are wrong; "
      "re-measure the table or fit the calibration again (`hwnas table "
      "validate --fit-calibration`)")


def covers_space(table: LatencyTable, space_name: str) -> bool:
  """Whether the table's header lists a space of that name."""
  return space_name in {s.split("@")[0] for s in table.header["spaces"]}


def wrong_space_message(table: LatencyTable, space_name: str) -> str:
  names = sorted({s.split("@")[0] for s in table.header["spaces"]})
  return (f"{table.path or '<table>'}: this table covers space "
          f"{', '.join(names) or '(none)'}, not {space_name}; use a table "
          f"of {space_name} (`hwnas table show` lists the shipped ones) or "
          f"measure one: hwnas table measure --space {space_name} "
          f"--backend {table.backend} --out NEW.json")


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
  if h["units"] != "ms":
    _fail(path, "header.units", f"must be 'ms', got {h['units']!r}; convert "
          "the table to milliseconds")
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
                         not isinstance(nm.get("name"), str) or
                         not isinstance(nm.get("params", {}), dict)):
    _fail(path, "header.network_model", "must be {name: str, version: ..., "
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


def parse_entry(key: str, d: Any, path: str) -> Entry:
  """Validates one entry of a table (or journal) file."""
  where = f"entries[{key!r}]"
  if not isinstance(d, dict):
    _fail(path, where, "must be a JSON object")
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
               _opt(d.get("p90_ms")), count, extras)


def _opt(v: Any) -> float | None:
  return None if v is None else float(v)


def from_dict(d: Any, *, path: str = "<table>") -> LatencyTable:
  """Validates a parsed table; raises TableError naming file and key."""
  if not isinstance(d, dict):
    _fail(path, "<top>", "must be a JSON object with schema, header, entries")
  if "schema" not in d:
    _fail(path, "schema", f"missing; expected {SCHEMA!r}")
  if d["schema"] != SCHEMA:
    _fail(path, "schema", f"unknown schema version {d['schema']!r}; this "
          f"hwnas reads {SCHEMA!r}")
  unknown = sorted(set(d) - {"schema", "header", "entries"})
  if unknown:
    _fail(path, unknown[0], "unknown key; allowed: schema, header, entries")
  _validate_header(d.get("header"), path)
  entries = d.get("entries")
  if not isinstance(entries, dict):
    _fail(path, "entries", "missing or not an object keyed by signature")
  parsed = {k: parse_entry(k, v, path) for k, v in entries.items()}
  return LatencyTable(dict(d["header"]), parsed, path)


def resolve_table_path(name_or_path: str | os.PathLike[str]) -> pathlib.Path:
  """A path, a shipped name ('xla/tiny'), or a unique shipped stem."""
  p = resources.resolve(name_or_path, "latency_tables", (".json",))
  if p.is_file():
    return p
  base = resources.latency_tables_dir()
  if base.is_dir() and os.sep not in str(name_or_path):
    hits = sorted(base.glob(f"**/{name_or_path}.json"))
    if len(hits) == 1:
      return hits[0]
  return p


def list_tables() -> list[str]:
  """Shipped table names (relative to latency_tables/, without .json)."""
  base = resources.latency_tables_dir()
  if not base.is_dir():
    return []
  return sorted(str(p.relative_to(base).with_suffix(""))
                for p in base.glob("**/*.json"))


def load_table(name_or_path: str | os.PathLike[str]) -> LatencyTable:
  """Loads and validates a table by path or shipped name."""
  p = resolve_table_path(name_or_path)
  if not p.is_file():
    import difflib  # pylint: disable=g-import-not-at-top
    close = difflib.get_close_matches(str(name_or_path), list_tables(), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    shipped = ", ".join(list_tables()) or "none"
    raise TableError(f"{name_or_path}: no such latency table file or "
                     f"shipped table; {hint}shipped tables: {shipped}")
  try:
    d = json.loads(errors.read_text(p, what="latency table"))
  except json.JSONDecodeError as e:
    raise TableError(f"{p}: invalid JSON ({e}); fix or re-measure the "
                     "table") from None
  return from_dict(d, path=str(p))


def new_table(header: Mapping[str, Any], entries: Iterable[Entry] = (),
              path: str | os.PathLike[str] = "") -> LatencyTable:
  """A validated table from a header (see `make_header`) and entries."""
  _validate_header(dict(header), str(path) or "<new table>")
  return LatencyTable(dict(header), {e.key: e for e in entries}, str(path))


# Re-exported here for callers that import everything from the table module.
from hwnas.latency.space_layers import (  # noqa: E402
    describe_missing, enumerate_layers, make_cost_fn)
