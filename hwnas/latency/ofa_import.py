"""Import Once-for-All / ProxylessNAS latency lookup tables (YAML).

Those tables map keys such as

    expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:5-stride:1-idskip:0
    expanded_conv-input:14x14x80-output:14x14x112-expand:6-kernel:3-stride:1-idskip:0-se:1-hs:1
    Conv-input:224x224x3-output:112x112x16
    Conv_1-input:7x7x160-output:7x7x960
    AvgPool2D-input:7x7x960-output:1x1x960
    Conv_2-input:1x1x960-output:1x1x1280
    Logits-input:7x7x1280-output:1000

to `{mean: ms, std: ..., count: ...}`. The keys lack what our signatures
need (mid and SE channels, activation); the space supplies it: mid =
make_divisible(in * expand) (or `expand` itself when it is a channel count
rather than a ratio), SE and activation from the key's `se:`/`hs:` fields
or else from the one stage whose blocks have that shape. ProxylessNAS's
`Logits` covers "everything after Conv_1" (pooling and classifier): its
time goes to the classifier entry and the pooling entry gets 0 ms, noted in
the entries' extras. Keys that cannot be mapped are reported with why.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
from typing import Any


from hwnas import errors, validate
from hwnas.latency import space_layers
from hwnas.latency import table as tbl
from hwnas.latency import table_schema
from hwnas.netspec import Layer, make_divisible
from hwnas.space import BOUNDS, SearchSpace

_FIELD = re.compile(r"^(input|output|expand|kernel|stride|idskip|se|hs):(.+)$")


@dataclasses.dataclass(frozen=True)
class ImportResult:
  table: tbl.LatencyTable
  total: int                          # keys in the file
  unmapped: dict[str, str]            # key -> why it was not mapped
  unreachable: tuple[str, ...]        # mapped signatures the space never uses


class _Unmapped(Exception):
  pass


def _shape(text: str) -> tuple[int, ...]:
  try:
    shape = tuple(int(x) for x in text.split("x") if len(x) <= 9)
  except ValueError:
    raise _Unmapped(f"bad shape {text!r}") from None
  if len(shape) != len(text.split("x")) or max(shape, default=0) > 1 << 20:
    raise _Unmapped(f"bad shape {text[:40]!r}: a dimension is too large")
  if len(shape) not in (1, 3) or min(shape) < 1:
    raise _Unmapped(f"bad shape {text!r}: expected HxWxC (or C) of positive "
                    "integers")
  return shape


# Upper bounds of a key's fields: those of a space file (hwnas.space.BOUNDS;
# `expand` may also be a count of middle channels, at most the widest
# layer times the largest expansion).
_MAX_FIELD = {"kernel": BOUNDS["kernel"][1], "stride": 8, "idskip": 1,
              "se": 1, "hs": 1,
              "expand": BOUNDS["width"][1] * BOUNDS["expansion"][1]}


def _number(name: str, text: str) -> float | int:
  """A key field's value: a finite positive number (`expand`) or a
  non-negative integer (the others), at most `_MAX_FIELD`; _Unmapped
  otherwise."""
  if len(text) > 32:
    raise _Unmapped(f"{name}:{text[:32]}... is too long a number")
  try:
    v = float(text) if name == "expand" else int(text)
  except ValueError:
    raise _Unmapped(f"{name}:{text} is not a number") from None
  if not math.isfinite(v) or v < 0 or (name == "expand" and v == 0):
    raise _Unmapped(f"{name}:{text} is not a finite positive number")
  if v > _MAX_FIELD[name]:
    raise _Unmapped(f"{name}:{text} is out of range (at most "
                    f"{_MAX_FIELD[name]})")
  return v


def parse_key(key: str) -> tuple[str, dict[str, Any]]:
  """'expanded_conv-input:..-output:..-expand:6-...' -> (type, fields)."""
  parts = key.split("-")
  fields: dict[str, Any] = {}
  for p in parts[1:]:
    m = _FIELD.match(p)
    if not m:
      raise _Unmapped(f"unknown field {p!r}")
    name, value = m.groups()
    fields[name] = (_shape(value) if name in ("input", "output") else
                    _number(name, value))
  if "input" not in fields or "output" not in fields:
    raise _Unmapped("no input:/output: shape")
  return parts[0], fields


def _block_stages(space: SearchSpace, size: int, cin: int, cout: int,
                  stride: int) -> list[int]:
  """Stages with a block of this shape at some resolution."""
  out = []
  for r in space.resolutions:
    sizes = space_layers.stage_input_sizes(space, r)
    prev = (space.stem.channels,)
    for s, st in enumerate(space.stages):
      first = (size == sizes[s] and stride == st.stride and cin in prev and
               cout in st.widths)
      later = (st.max_depth > 1 and size == sizes[s + 1] and stride == 1 and
               cin == cout and cout in st.widths)
      if (first or later) and s not in out:
        out.append(s)
      prev = st.widths
  return out


def _block(space: SearchSpace, f: dict[str, Any]) -> Layer:
  (h, _, cin), (ho, _, cout) = f["input"][:3], f["output"][:3]
  stride, kernel = f.get("stride"), f.get("kernel")
  if stride is None or kernel is None or "expand" not in f:
    raise _Unmapped("expanded_conv needs expand, kernel and stride")
  stages = _block_stages(space, h, cin, cout, stride)
  if not stages:
    raise _Unmapped(f"no block of space {space.id} maps {h}x{h}x{cin} -> "
                    f"{ho}x{ho}x{cout} with stride {stride}")
  sts = [space.stages[s] for s in stages]
  e = f["expand"]
  ratios = {x for st in sts for x in st.expansions}
  mid = (make_divisible(cin * e, space.channel_divisor)
         if e <= max(ratios) * 2 else int(e))   # ratio, or mid channels
  if "se" in f:
    se = bool(f["se"])
  else:
    options = {x for st in sts for x in st.se}
    if len(options) != 1:
      raise _Unmapped("the key has no se: field and the space's stage "
                      "offers SE on and off")
    se = options.pop()
  acts = {x for st in sts for x in st.activations}
  if "hs" in f:
    act = "hswish" if f["hs"] else next(
        iter(sorted(acts - {"hswish"})), "relu")
  elif len(acts) == 1:
    act = acts.pop()
  else:
    raise _Unmapped(f"the key has no hs: field and the space offers "
                    f"activations {sorted(acts)}")
  residual = stride == 1 and cin == cout
  if "idskip" in f and bool(f["idskip"]) != residual:
    raise _Unmapped(f"idskip:{f['idskip']} but hwnas adds a residual exactly "
                    "when stride is 1 and channels match")
  se_ch = make_divisible(mid * space.se_ratio, space.channel_divisor) if (
      se) else 0
  return Layer("ibn", h, cin, cout, mid_channels=mid, kernel=kernel,
               stride=stride, se_channels=se_ch, activation=act,
               residual=residual)


def map_key(space: SearchSpace, key: str) -> list[tuple[Layer, dict]]:
  """The (Layer, extras) entries one OFA key becomes (raises _Unmapped)."""
  kind, f = parse_key(key)
  for k in ("input", "output"):
    if len(f[k]) != 3 and not (k == "output" and kind == "Logits"):
      raise _Unmapped(f"bad shape {k}:{'x'.join(map(str, f[k]))}: expected "
                      "HxWxC")
  cin, h = f["input"][-1], f["input"][0]
  cout = f["output"][-1]
  if kind == "expanded_conv":
    return [(_block(space, f), {})]
  if kind == "Conv":
    st = space.stem
    if cin != space.input_channels or cout != st.channels:
      raise _Unmapped(f"the stem of space {space.id} is "
                      f"{space.input_channels} -> {st.channels} channels")
    return [(Layer("conv", h, cin, cout, kernel=st.kernel, stride=st.stride,
                   activation=st.activation), {})]
  if kind == "Conv_1":
    return [(Layer("conv", h, cin, cout, activation=space.head.activation),
             {})]
  if kind in ("AvgPool2D", "AvgPool", "GlobalAvgPool"):
    return [(Layer("pool", h, cin, cin), {})]
  if kind == "Conv_2":
    return [(Layer("fc", 1, cin, cout, activation=space.head.activation),
             {})]
  if kind == "Logits":
    fc = (Layer("fc", 1, cin, cout), {"ofa_includes": "pool" if h > 1
                                      else ""})
    if h > 1:
      return [fc, (Layer("pool", h, cin, cin),
                   {"ofa_merged_into": fc[0].key(), "ofa_zero": True})]
    return [fc]
  raise _Unmapped(f"layer type {kind!r} is not one of expanded_conv, Conv, "
                  "Conv_1, AvgPool2D, Conv_2, Logits")


def import_ofa(path: str | os.PathLike[str], space: SearchSpace, *,
               device: str = "unknown (imported)",
               precision: str = "float32") -> ImportResult:
  """Reads an OFA/ProxylessNAS YAML table and maps it onto `space`."""
  p = pathlib.Path(path)
  if not p.is_file():
    raise errors.HwnasError(f"{p}: no such file to import")
  d = validate.load_yaml(errors.read_text(p, what="OFA latency YAML"),
                         str(p))
  if not isinstance(d, dict) or not d:
    raise errors.HwnasError(f"{p}: expected a mapping of layer keys to "
                            "{mean: ms}")
  entries: dict[str, tbl.Entry] = {}
  unmapped: dict[str, str] = {}
  for key, value in d.items():
    try:
      mean = value.get("mean") if isinstance(value, dict) else None
      if not isinstance(mean, (int, float)) or isinstance(mean, bool) or (
          not math.isfinite(mean) or mean < 0):
        raise _Unmapped(f"no finite non-negative numeric 'mean' (got "
                        f"{value!r})")
      count = value.get("count", 0)
      for layer, extras in map_key(space, str(key)):
        ms = 0.0 if extras.get("ofa_zero") else float(mean)
        ex = {"ofa_key": str(key), **{k: v for k, v in extras.items()
                                      if v not in ("", None)}}
        if "std" in value and not extras.get("ofa_zero") and isinstance(
            value["std"], (int, float)) and math.isfinite(value["std"]):
          ex["std_ms"] = value["std"]
        entries.setdefault(layer.key(), tbl.Entry(
            layer, ms, None, None, count if isinstance(count, int) else 0,
            ex))
    except _Unmapped as e:
      unmapped[str(key)] = str(e)
    except errors.SpecError as e:
      unmapped[str(key)] = f"not a valid layer ({e})"
  reachable = {l.key() for l in space_layers.enumerate_layers(space)}
  header = table_schema.make_header(
      device=device, backend="imported", runtime="unknown",
      runtime_version="unknown", precision=precision, batch_size=1,
      threads=0, warmup=0, repeats=0, statistic="mean",
      spaces=[space.id],
      provenance={"kind": "imported", "source": str(p), "format": "ofa",
                  "keys": len(d), "unmapped": len(unmapped)},
      notes="imported from an Once-for-All/ProxylessNAS YAML table; "
            "statistic is their 'mean'")
  return ImportResult(tbl.new_table(header, entries.values()), len(d),
                      unmapped, tuple(sorted(set(entries) - reachable)))
