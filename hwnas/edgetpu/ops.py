"""Which TFLite builtin operators the Coral Edge TPU compiler maps.

The list follows Coral's documented operator table (as mirrored in
docs/edgetpu.md, "Compiler constraints"). Two facts matter most for NAS:

* The fused `HARD_SWISH` op (which the TFLite converter forms from
  `x * relu6(x + 3) / 6`) and `LEAKY_RELU` do **not** map (coral issues #272,
  #353), so hard-swish architectures fall back to the CPU.
* The compiler partitions once: from the first unsupported operator onward,
  every operator runs on the CPU ("More than one subgraph is not supported").

Some mapped operators carry limits the op name alone cannot show (a large
`MEAN` or `RESHAPE` may stay on the CPU); `check_ops` lists those as notes.
Only the real compiler gives the final word; this is the static check that
runs everywhere.

This module is the one source of truth for what maps, per compiler version
(`MAPPED_BY_COMPILER`): the cost model's CPU-fallback term
(`hwnas.edgetpu.layer_cost.unsupported_op`), `hwnas arch stats`, the
search's mapped-only restriction (`mapped_only_space`) and the export's
operator check (`check_ops`) all ask `is_mapped`, so they cannot disagree.
Which TFLite operators a network's activation becomes is here too
(`ACTIVATION_OPS`): `relu` and `relu6` fuse into the preceding conv,
`hswish` becomes `HARD_SWISH`, `swish` `LOGISTIC` + `MUL`.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from hwnas import errors

# TFLite builtin operator names (schema `BuiltinOperator`) the Edge TPU maps.
EDGETPU_OPS: frozenset[str] = frozenset({
    "ADD", "SUB", "MUL",
    "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "CONCATENATION",
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV",
    "FULLY_CONNECTED",
    "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "PRELU",
    "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN",
    "PAD",
    "RESHAPE", "SQUEEZE", "PACK", "SPLIT", "SLICE", "STRIDED_SLICE",
    "TRANSPOSE", "SPACE_TO_DEPTH",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "SOFTMAX", "L2_NORMALIZATION",
    "MAXIMUM", "MINIMUM",
    "RSQRT", "SQUARED_DIFFERENCE",
    "QUANTIZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
})

# The mapped operators per Edge TPU compiler major version. No public
# report shows versions 15 and 16 differing on an operator a hwnas network
# uses (google-coral/edgetpu#272, against 15.0, asks for HARD_SWISH and
# LEAKY_RELU and is still open; #597, from the 16.0 era, still calls
# LeakyReLU unsupported), so both hold the documented list; a version that
# maps more gets its own set here and every user of `is_mapped` follows.
MAPPED_BY_COMPILER: dict[str, frozenset[str]] = {
    "15": EDGETPU_OPS,
    "16": EDGETPU_OPS,
}
DEFAULT_COMPILER = "16"

# The TFLite operators an activation adds after the op it follows (relu
# and relu6 fuse into it; 'none' adds nothing).
ACTIVATION_OPS: dict[str, tuple[str, ...]] = {
    "relu": (), "relu6": (), "none": (),
    "hswish": ("HARD_SWISH",),
    "swish": ("LOGISTIC", "MUL"),
    "leaky_relu": ("LEAKY_RELU",),
}


def compiler_key(version: str | None) -> str:
  """The `MAPPED_BY_COMPILER` key of a compiler version string.

  Args:
    version: '16', '16.0' or a full version such as '16.0.384591198' (as
      `edgetpu_compiler` prints it); None for `DEFAULT_COMPILER`.
  """
  if version is None or str(version).strip() in ("", "?"):
    return DEFAULT_COMPILER
  key = str(version).strip().split(".")[0]
  if key not in MAPPED_BY_COMPILER:
    raise errors.HwnasError(
        f"Edge TPU compiler version {version!r} is not known to hwnas; "
        f"known: {', '.join(sorted(MAPPED_BY_COMPILER))} (the operator table "
        "is in hwnas/edgetpu/ops.py)")
  return key


def unmapped_activation_op(activation: str,
                           compiler: str | None = None) -> str | None:
  """The first TFLite op of `activation` the Edge TPU does not map, or None."""
  for op in ACTIVATION_OPS.get(activation, ()):
    if not is_mapped(op, compiler):
      return op
  return None


# Operators known NOT to map, with the reason shown in reports.
KNOWN_UNSUPPORTED: dict[str, str] = {
    "HARD_SWISH": "fused hard-swish is not supported (coral/edgetpu #272, "
                  "#353); use relu/relu6",
    "LEAKY_RELU": "not supported (coral/edgetpu #353); use relu or prelu",
    "DEQUANTIZE": "float output: the model is not fully int8",
}

# Mapped operators with limits that depend on shapes or parameters.
CONDITIONAL: dict[str, str] = {
    "AVERAGE_POOL_2D": "no fused activation",
    "MAX_POOL_2D": "no fused activation",
    "CONCATENATION": "no fused activation",
    "CONV_2D": "dilation must be equal in x and y",
    "DEPTHWISE_CONV_2D": "dilation must be equal in x and y",
    "FULLY_CONNECTED": "default weight format, 1-D output",
    "MEAN": "x/y reduction only; large inputs may not map",
    "PAD": "x/y padding only",
    "RESHAPE": "may not map for large tensors",
    "SOFTMAX": "1-D, at most 16,000 elements",
    "STRIDED_SLICE": "stride 1 only",
    "RESIZE_BILINEAR": "3-D tensors; may stay on the CPU",
    "RESIZE_NEAREST_NEIGHBOR": "3-D tensors; may stay on the CPU",
}


def is_mapped(op: str, compiler: str | None = None) -> bool:
  """Whether the Edge TPU compiler (`DEFAULT_COMPILER` when None) maps this
  TFLite builtin operator."""
  return op in MAPPED_BY_COMPILER[compiler_key(compiler)]


@dataclasses.dataclass(frozen=True)
class OpsReport:
  """Static Edge TPU mapping verdict for an operator list.

  Attributes:
    ops: the operator names, in execution order.
    unmappable: distinct unsupported operator names, in order of appearance.
    first_fallback: index in `ops` of the first unsupported operator (where
      the compiler cuts the graph), or None when every operator maps.
    ops_on_edgetpu: operators before the cut (would run on the Edge TPU).
    ops_on_cpu: operators from the cut onward (would run on the CPU).
    notes: `(op, limit)` for mapped operators whose mapping depends on
      shapes the op name cannot show.
  """

  ops: tuple[str, ...]
  unmappable: tuple[str, ...]
  first_fallback: int | None
  ops_on_edgetpu: int
  ops_on_cpu: int
  notes: tuple[tuple[str, str], ...]

  @property
  def all_mapped(self) -> bool:
    return self.first_fallback is None

  def reasons(self) -> dict[str, str]:
    """Why each unmappable operator does not map."""
    return {op: KNOWN_UNSUPPORTED.get(op, "not in the Edge TPU operator list")
            for op in self.unmappable}

  def summary(self) -> str:
    """One line: the verdict a report prints."""
    if self.all_mapped:
      return f"all {len(self.ops)} operators map to the Edge TPU"
    first = self.ops[self.first_fallback]
    return (f"{self.ops_on_cpu} of {len(self.ops)} operators fall back to the "
            f"CPU from operator #{self.first_fallback} ({first}); unmappable: "
            f"{', '.join(self.unmappable)}")

  def to_dict(self) -> dict:
    return {
        "all_mapped": self.all_mapped,
        "unmappable": list(self.unmappable),
        "reasons": self.reasons(),
        "first_fallback": self.first_fallback,
        "first_fallback_op": (None if self.first_fallback is None
                              else self.ops[self.first_fallback]),
        "ops_on_edgetpu": self.ops_on_edgetpu,
        "ops_on_cpu": self.ops_on_cpu,
        "notes": [list(n) for n in self.notes],
        "summary": self.summary(),
    }


def check_ops(op_list: Sequence[str] | Iterable[str],
              compiler: str | None = None) -> OpsReport:
  """Checks a TFLite operator list against the Edge TPU operator table.

  Args:
    op_list: operator names in execution order, e.g. from
      `hwnas.tflite.op_list(model_bytes)`.
    compiler: compiler version (`DEFAULT_COMPILER` when None).

  Returns:
    An `OpsReport`: unmappable operators and the position of the first one,
    after which (as the compiler partitions once) everything runs on the CPU.
  """
  ops = tuple(op_list)
  unmappable: list[str] = []
  first = None
  for i, op in enumerate(ops):
    if not is_mapped(op, compiler):
      if first is None:
        first = i
      if op not in unmappable:
        unmappable.append(op)
  on_tpu = len(ops) if first is None else first
  notes = tuple((op, CONDITIONAL[op]) for op in dict.fromkeys(ops)
                if op in CONDITIONAL and is_mapped(op, compiler))
  return OpsReport(ops=ops, unmappable=tuple(unmappable), first_fallback=first,
                   ops_on_edgetpu=on_tpu, ops_on_cpu=len(ops) - on_tpu,
                   notes=notes)


# ------------------------------------------------ choices of a space --

def fallback_choices(space, compiler: str | None = None) -> list[str]:
  """What in a `hwnas.space.SearchSpace` falls back to the CPU, one line
  each ('stage s2: activation hswish (HARD_SWISH)'); [] when all maps."""
  out = []
  for where, act in (("stem", space.stem.activation),
                     ("head", space.head.activation)):
    op = unmapped_activation_op(act, compiler)
    if op:
      out.append(f"{where}: activation {act} ({op}, fixed: every network)")
  for i, st in enumerate(space.stages):
    for act in st.activations:
      op = unmapped_activation_op(act, compiler)
      if op:
        only = " (the stage's only choice)" if len(st.activations) == 1 else ""
        out.append(f"stage {st.name or i}: activation {act} ({op}){only}")
  return out


def mapped_only_space(space, compiler: str | None = None):
  """`space` without the choices the Edge TPU compiler does not map.

  Every architecture of the returned space (same name and version; a
  subset of `space`'s architectures) maps fully, so a search in it cannot
  return a network whose export reports CPU fallback.

  Raises:
    HwnasError: when a fixed part (stem, head) or a stage offers only
      unmapped choices: then every network falls back.
  """
  lines = fallback_choices(space, compiler)
  stuck = [l for l in lines if "fixed" in l or "only choice" in l]
  if stuck:
    raise errors.HwnasError(
        f"space {space.id}: every network falls back to the CPU under Edge "
        f"TPU compiler {compiler_key(compiler)} ({'; '.join(stuck)}); use a "
        "space whose choices map (e.g. `--space edgetpu`) or pass "
        "--allow-cpu-fallback (API: allow_cpu_fallback=True)")
  if not lines:
    return space
  stages = tuple(dataclasses.replace(st, activations=tuple(
      a for a in st.activations if not unmapped_activation_op(a, compiler)))
      for st in space.stages)
  return dataclasses.replace(space, stages=stages)
