"""The accelerator an energy estimate is made for: a small, validated value.

An `Accelerator` describes an Eyeriss-like spatial array: the PE array
shape, the per-PE register files (scratch pads) per data type, the global
buffer, the word width, the energy of one access at each level of the
memory hierarchy normalised to one MAC, and one MAC's energy in pJ to turn
the normalised sum into joules. It is loaded from a YAML or JSON file (the
shipped default is `eyeriss_v1.yaml` beside this module, named
`eyeriss-v1`); every mistake in such a file is one `HwnasError` line naming
the file, the key and the fix.

`ops` is the per-operation energy of the PE datapath (normalised like
`cost`): `mac` (1 by definition) and `shift`, the shift-add that a
power-of-two ('shift') layer runs instead of a multiply-add. The shipped
value, 0.127, is from Horowitz's 45 nm figures (ISSCC 2014) at 16 bits:
a 16-bit add 0.053 pJ (linear between 8-bit 0.03 and 32-bit 0.1 pJ), a
16-bit multiply 0.787 pJ (log-log between 8-bit 0.2 and 32-bit 3.1 pJ);
a MAC is a multiply and an add (0.840 pJ), a shift-add a barrel shift,
charged like one more add, and an add (0.107 pJ); 0.107 / 0.840 = 0.127
(docs/energy_sources.md). Another datapath adds its key and the layer that
uses it asks `op_cost(name)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
from typing import Any, Mapping

from hwnas import errors

LEVELS = ("dram", "glb", "noc", "rf", "mac")   # cost keys, highest first
RF_KINDS = ("filter", "ifmap", "psum")
SHIPPED = {"eyeriss-v1": "eyeriss_v1.yaml"}

_KEYS = ("name", "pe_rows", "pe_cols", "rf_words", "glb_kb", "word_bits",
         "batch", "cost", "ops", "mac_pj", "rlc", "zero_gating")


class AcceleratorError(errors.HwnasError):
  """An accelerator description does not validate."""


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """An Eyeriss-like accelerator (see the module docstring).

  Attributes:
    name: a short name (shown in table headers).
    pe_rows, pe_cols: PE array shape (rows hold filter rows of a PE set).
    rf_filter, rf_ifmap, rf_psum: scratch-pad words per PE.
    glb_kb: global buffer size in kilobytes (1 kB = 1024 bytes).
    word_bits: bits per word (activations, weights and psums alike).
    batch: images processed together (filters are reused across them).
    cost: normalised energy per access: (dram, glb, noc, rf, mac).
    ops: normalised energy per datapath operation, {'mac': 1, ...}.
    mac_pj: energy of one normalised unit in picojoules.
    rlc: run-length compression of feature maps on the DRAM link.
    zero_gating: skip the filter read, MAC and psum update of a zero ifmap
      value (Eyeriss's zero buffer).
  """

  name: str = "eyeriss-v1"
  pe_rows: int = 12
  pe_cols: int = 14
  rf_filter: int = 224
  rf_ifmap: int = 12
  rf_psum: int = 24
  glb_kb: float = 108.0
  word_bits: int = 16
  batch: int = 1
  cost: tuple[float, float, float, float, float] = (200.0, 6.0, 2.0, 1.0,
                                                    1.0)
  ops: tuple[tuple[str, float], ...] = (("mac", 1.0), ("shift", 0.127))
  mac_pj: float = 3.5
  rlc: bool = False
  zero_gating: bool = False

  @property
  def glb_words(self) -> int:
    return int(self.glb_kb * 1024 * 8 // self.word_bits)

  @property
  def num_pes(self) -> int:
    return self.pe_rows * self.pe_cols

  @property
  def costs(self) -> dict[str, float]:
    """{level: normalised energy per access} (LEVELS order)."""
    return dict(zip(LEVELS, self.cost))

  def op_cost(self, op: str = "mac") -> float:
    """Normalised energy of one datapath operation named in `ops`."""
    d = dict(self.ops)
    if op not in d:
      raise AcceleratorError(
          f"accelerator {self.name}: ops has no {op!r}; add `ops: {{{op}: "
          "<energy relative to one MAC>}` to the accelerator file")
    return d[op]

  def replace(self, **changes: Any) -> "Accelerator":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    """The file form (what `from_dict` reads back)."""
    return {"name": self.name, "pe_rows": self.pe_rows,
            "pe_cols": self.pe_cols,
            "rf_words": {"filter": self.rf_filter, "ifmap": self.rf_ifmap,
                         "psum": self.rf_psum},
            "glb_kb": self.glb_kb, "word_bits": self.word_bits,
            "batch": self.batch, "cost": self.costs, "ops": dict(self.ops),
            "mac_pj": self.mac_pj, "rlc": self.rlc,
            "zero_gating": self.zero_gating}

  def sha256(self) -> str:
    """Hash of the canonical description (what a table header records)."""
    text = json.dumps(self.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _fail(path: str, key: str, fix: str):
  raise AcceleratorError(f"{path}: {key}: {fix}")


def _int(d: Mapping[str, Any], key: str, path: str, where: str = "") -> int:
  v = d[key]
  if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
    _fail(path, where + key, f"must be a positive integer, got {v!r}")
  return v


def _num(d: Mapping[str, Any], key: str, path: str, where: str = "",
         zero_ok: bool = False) -> float:
  v = d[key]
  ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and
        math.isfinite(v) and (v >= 0 if zero_ok else v > 0))
  if not ok:
    kind = "non-negative" if zero_ok else "positive"
    _fail(path, where + key, f"must be a {kind} number, got {v!r}")
  return float(v)


def _section(d: Mapping[str, Any], key: str, names: tuple[str, ...],
             path: str, *, required: bool = True) -> Mapping[str, Any]:
  v = d[key]
  if not isinstance(v, dict):
    _fail(path, key, f"must be a mapping with keys {', '.join(names)}")
  unknown = sorted(set(v) - set(names)) if required else []
  if unknown:
    _fail(path, f"{key}.{unknown[0]}", f"unknown key; allowed: "
          f"{', '.join(names)}")
  missing = [n for n in names if n not in v] if required else []
  if missing:
    _fail(path, f"{key}.{missing[0]}", "missing; give all of "
          f"{', '.join(names)}")
  return v


def from_dict(d: Any, *, path: str = "<accelerator>") -> Accelerator:
  """Validates a parsed description; keys left out take Eyeriss v1's
  values (`Accelerator()` defaults)."""
  if not isinstance(d, dict):
    _fail(path, "<top>", "must be a mapping of keys " + ", ".join(_KEYS))
  unknown = sorted(set(d) - set(_KEYS))
  if unknown:
    _fail(path, unknown[0], "unknown key; allowed: " + ", ".join(_KEYS))
  base = Accelerator()
  kw: dict[str, Any] = {}
  if "name" in d:
    if not isinstance(d["name"], str) or not d["name"].strip():
      _fail(path, "name", "must be a non-empty string")
    kw["name"] = d["name"]
  for k in ("pe_rows", "pe_cols", "word_bits", "batch"):
    if k in d:
      kw[k] = _int(d, k, path)
  if "glb_kb" in d:
    kw["glb_kb"] = _num(d, "glb_kb", path)
  if "mac_pj" in d:
    kw["mac_pj"] = _num(d, "mac_pj", path)
  for k in ("rlc", "zero_gating"):
    if k in d:
      if not isinstance(d[k], bool):
        _fail(path, k, f"must be true or false, got {d[k]!r}")
      kw[k] = d[k]
  if "rf_words" in d:
    rf = _section(d, "rf_words", RF_KINDS, path)
    for k in RF_KINDS:
      kw[f"rf_{k}"] = _int(rf, k, path, "rf_words.")
  if "cost" in d:
    c = _section(d, "cost", LEVELS, path)
    kw["cost"] = tuple(_num(c, k, path, "cost.", zero_ok=True)
                       for k in LEVELS)
  if "ops" in d:
    o = _section(d, "ops", (), path, required=False)
    if "mac" not in o:
      _fail(path, "ops.mac", "missing; every accelerator needs the MAC's "
            "energy (1 in the normalised units)")
    kw["ops"] = tuple(sorted((str(k), _num(o, k, path, "ops.", zero_ok=True))
                             for k in o))
  acc = base.replace(**kw)
  if acc.glb_words < 1:
    _fail(path, "glb_kb", "holds no word; give at least one word's size")
  return acc


def resolve(name_or_path: str | os.PathLike[str]) -> pathlib.Path:
  """A shipped name ('eyeriss-v1') or a path."""
  if str(name_or_path) in SHIPPED:
    return pathlib.Path(__file__).with_name(SHIPPED[str(name_or_path)])
  return pathlib.Path(name_or_path)


def load(name_or_path: str | os.PathLike[str] = "eyeriss-v1") -> Accelerator:
  """Loads an accelerator file (YAML or JSON) or a shipped name."""
  import yaml  # pylint: disable=g-import-not-at-top
  p = resolve(name_or_path)
  if not p.is_file():
    raise AcceleratorError(
        f"{name_or_path}: no such accelerator file; give a YAML/JSON file "
        f"(copy {resolve('eyeriss-v1')}) or a shipped name: "
        f"{', '.join(SHIPPED)}")
  text = errors.read_text(p, what="accelerator YAML/JSON file")
  try:
    d = yaml.safe_load(text)
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    at = f"line {mark.line + 1}: " if mark is not None else ""
    raise AcceleratorError(f"{p}: {at}not valid YAML/JSON; fix the syntax "
                           f"({getattr(e, 'problem', e)})") from None
  return from_dict(d, path=str(p))


DEFAULT = Accelerator()
