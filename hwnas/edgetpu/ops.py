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
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

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


def is_mapped(op: str) -> bool:
  """Whether the Edge TPU compiler maps this TFLite builtin operator."""
  return op in EDGETPU_OPS


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


def check_ops(op_list: Sequence[str] | Iterable[str]) -> OpsReport:
  """Checks a TFLite operator list against the Edge TPU operator table.

  Args:
    op_list: operator names in execution order, e.g. from
      `hwnas.tflite.op_list(model_bytes)`.

  Returns:
    An `OpsReport`: unmappable operators and the position of the first one,
    after which (as the compiler partitions once) everything runs on the CPU.
  """
  ops = tuple(op_list)
  unmappable: list[str] = []
  first = None
  for i, op in enumerate(ops):
    if not is_mapped(op):
      if first is None:
        first = i
      if op not in unmappable:
        unmappable.append(op)
  on_tpu = len(ops) if first is None else first
  notes = tuple((op, CONDITIONAL[op]) for op in dict.fromkeys(ops)
                if op in CONDITIONAL and is_mapped(op))
  return OpsReport(ops=ops, unmappable=tuple(unmappable), first_fallback=first,
                   ops_on_edgetpu=on_tpu, ops_on_cpu=len(ops) - on_tpu,
                   notes=notes)
