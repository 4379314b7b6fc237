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
    "network_model": {"kind": "edgetpu-model", "version": "1",
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
Edge TPU's parameter-cache streaming). Its `kind` is looked up in the one
explicit mapping `hwnas.latency.NETWORK_MODELS`; tables written before
that field existed name the kind in `name` (and a module to import in
`module`, which is ignored now). Everything a user can get wrong raises one
`HwnasError` line naming the file and the key.

The header and entry validation is in `table_schema`; this module holds
the table value, prediction and persistence.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import types
from typing import Any, Iterable, Mapping

from hwnas import errors, resources, validate
from hwnas.latency.table_schema import (  # the format, validated there
    SCHEMA, UNITS, Entry, TableError, _cell, _fail, _validate_header,
    network_model_kind, parse_entry)
from hwnas.netspec import Layer, NetSpec

# ----------------------------------------------------------------- values --

# What a latency table says about the shift layers (power-of-two weights)
# it predicts: no backend hwnas measures runs them as anything but the
# multiply convolution, so a table times them as that.
SHIFT_NOTE = ("shift layers read their multiply equivalents' entries (no "
              "backend here has a shift datapath)")


class _MultEquivalent(dict):
  """Layer -> ms of a latency table, where a `shift` layer (power-of-two
  weights) without an entry of its own reads its multiply equivalent's:
  no backend hwnas measures runs a shift as anything but the same
  convolution (float TFLite, the Edge TPU), so they time the same. Energy
  tables give shift layers their own entries (a shift-add is cheaper)."""

  def __missing__(self, layer):
    if isinstance(layer, Layer) and layer.op != "mult":
      return dict.__getitem__(self, layer.as_mult())
    raise KeyError(layer)

  def __contains__(self, layer) -> bool:
    return dict.__contains__(self, layer) or (
        isinstance(layer, Layer) and layer.op != "mult" and
        dict.__contains__(self, layer.as_mult()))

  def get(self, layer, default=None):
    try:
      return self[layer]
    except KeyError:
      return default


@dataclasses.dataclass(frozen=True)
class LatencyTable:
  """A validated latency table (see the module docstring for the format)."""

  header: Mapping[str, Any]
  entries: Mapping[str, Entry]
  path: str = ""

  def __post_init__(self):
    # Layer -> ms, the look-up every prediction does (Layers hash faster
    # than building their key strings).
    by = {e.layer: e.latency_ms for e in self.entries.values()}
    object.__setattr__(self, "_by_layer",
                       by if self.header.get("units") == "uJ" else
                       _MultEquivalent(by))

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
  def units(self) -> str:
    """'ms' (a latency table) or 'uJ' (an energy table)."""
    return str(self.header["units"])

  @property
  def cost_name(self) -> str:
    """What a search calls this table's cost: latency_ms / energy_uj."""
    return "energy_uj" if self.units == "uJ" else "latency_ms"

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
    if self.units == "uJ":
      fix = (f"make the table again with `hwnas table energy --space S "
             f"--out {self.path or 'T'}`")
    elif is_shipped(self.path):   # never suggest writing into the package
      name = f"my_{pathlib.Path(self.path).parent.name}_{self.name}.json"
      fix = (f"copy the shipped table and extend the copy: `cp {self.path} "
             f"{name} && hwnas table measure --space S --backend "
             f"{self.backend} --out {name}`")
    else:
      fix = (f"measure them with `hwnas table measure --space S --backend "
             f"{self.backend} --out {self.path or 'T'}`")
    return (f"{self.path or '<table>'}: {len(missing)} signature(s) missing"
            f"{' for ' + what if what else ''}: {keys}; {fix} or check "
            "coverage with `hwnas table check`")

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
    from hwnas.latency.network_models import network_model  # pylint: disable=g-import-not-at-top
    fn = network_model(network_model_kind(nm), self.path).terms
    return {k: float(v) for k, v in fn(spec, nm.get("params", {})).items()}

  def predict(self, spec: NetSpec) -> float:
    """Predicted latency of a whole network in ms."""
    total = self.calibrate(self.layer_sum(spec), len(spec.layers))
    if self.network_model is not None:
      total += math.fsum(self.network_terms(spec).values())
    return checked_ms(self, total, spec.name)

  def predict_band(self, spec: NetSpec) -> tuple[float, float] | None:
    """(low, high) ms around `predict(spec)`, or None when the table has
    no uncertainty band (measured tables; estimated tables made before
    bands). For the Edge TPU model it is the leave-one-network-out band
    (docs/edgetpu.md): use `high` for a conservative feasibility check."""
    nm = self.network_model
    if nm is None or not nm.get("band"):
      return None
    from hwnas.latency.network_models import network_model  # pylint: disable=g-import-not-at-top
    fn = network_model(network_model_kind(nm), self.path).band
    if fn is None:
      return None
    band = fn(spec, nm, self.predict(spec))
    return None if band is None else (float(band[0]), float(band[1]))

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
        "band_ms": self.predict_band(spec),
        "provenance": self.describe() + (
            f"; {SHIFT_NOTE}" if self.shift_as_mult(spec.layers) else ""),
    }

  # -- description -------------------------------------------------------
  def shift_as_mult(self, layers) -> bool:
    """Whether the table predicts one of `layers` (shift layers) by its
    multiply equivalent's entry (`SHIFT_NOTE`): a latency table without
    an entry of the shift layer's own."""
    return self.units != "uJ" and any(
        l.op != "mult" and l.key() not in self.entries for l in layers)

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
            "residual", UNITS[self.units], "p10_ms", "p90_ms",
            "count"] + extras
    w = csv.writer(out)
    w.writerow(cols)
    for key in sorted(self.entries):
      e = self.entries[key]
      row = [key] + [getattr(e.layer, c) for c in cols[1:11]]
      row += [e.latency_ms, e.p10_ms, e.p90_ms, e.count]
      row += [_cell(e.extras[x]) if x in e.extras else "" for x in extras]
      w.writerow(row)
    return out.getvalue()

  def with_header(self, **updates: Any) -> "LatencyTable":
    """A copy with header fields replaced (validated)."""
    header = {**self.header, **updates}
    _validate_header(header, self.path or "<table>")
    return LatencyTable(header, dict(self.entries), self.path)


def is_shipped(path: str | os.PathLike[str]) -> bool:
  """Whether `path` lies inside the installed package's data (a shipped
  table or anything under site-packages): never a place to write to."""
  if not path:
    return False
  from hwnas import resources  # pylint: disable=g-import-not-at-top
  p = pathlib.Path(path).resolve()
  root = resources.latency_tables_dir().resolve()
  return "site-packages" in p.parts or root == p or root in p.parents


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
  if d["header"].get("network_model"):   # a kind this hwnas knows, on load
    from hwnas.latency.network_models import network_model  # pylint: disable=g-import-not-at-top
    network_model(network_model_kind(d["header"]["network_model"]), path)
  entries = d.get("entries")
  if not isinstance(entries, dict):
    _fail(path, "entries", "missing or not an object keyed by signature")
  units = d["header"]["units"]
  parsed = {k: parse_entry(k, v, path, units) for k, v in entries.items()}
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
    d = validate.load_json(errors.read_text(p, what="latency table"), str(p))
  except errors.HwnasError as e:
    raise TableError(f"{e}; fix or re-measure the table") from None
  return from_dict(d, path=str(p))


def new_table(header: Mapping[str, Any], entries: Iterable[Entry] = (),
              path: str | os.PathLike[str] = "") -> LatencyTable:
  """A validated table from a header (see `make_header`) and entries."""
  _validate_header(dict(header), str(path) or "<new table>")
  return LatencyTable(dict(header), {e.key: e for e in entries}, str(path))

