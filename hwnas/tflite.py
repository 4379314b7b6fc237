"""TFLite conversion, inspection and LiteRT timing.

Conversion (docs/stack_notes.md, 5): `jax2tf.convert` (native
serialization, the only mode in jax >= 0.10) -> `tf.function` with a static
input signature -> `TFLiteConverter.from_concrete_functions` (not the
deprecated `experimental_from_jax`).
Full-integer int8 uses a representative dataset and int8 input/output, as the
Edge TPU compiler requires.

Inspection (`op_list`, `tensor_dtypes`, `float_ops`) parses the
flatbuffer with the schema that ships in `ai_edge_litert`, so the list is the
model's own operators, without the `DELEGATE` nodes an interpreter adds after
`allocate_tensors()`.

`Runner` runs and times a model with `ai_edge_litert.interpreter` (not the
deprecated `tf.lite.Interpreter`) on one thread (docs/stack_notes.md, 6).

TensorFlow is imported inside the functions that need it: its import
takes seconds.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import time as _time
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from hwnas import chatter, errors

_FLOAT_TYPES = ("FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16")


def _tf():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    with chatter.native():  # import-time I0000/W0000 lines
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError:
    raise errors.HwnasError(
        "TFLite export needs TensorFlow, which is not installed; fix: pip "
        "install 'hwnas[tf]'") from None
  return tf


def _tf_function(fn: Callable[[Any], Any], input_shape: tuple[int, ...],
                 input_dtype: Any):
  """Wraps a JAX function as a `tf.function` with a static signature."""
  tf = _tf()
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  tf_fn = tf.function(
      jax2tf.convert(fn, with_gradient=False), autograph=False,
      input_signature=[tf.TensorSpec(tuple(input_shape),
                                     tf.as_dtype(np.dtype(input_dtype)))])
  return tf_fn


def convert(fn: Callable[[Any], Any], input_shape: tuple[int, ...], *,
            int8: bool = False,
            representative: Iterable[np.ndarray] | Callable[[], Iterable[
                np.ndarray]] | None = None,
            input_dtype: Any = np.float32) -> bytes:
  """Converts a JAX function of one array to a TFLite flatbuffer.

  Args:
    fn: function of one array (e.g. `lambda x: model(x)` with the model in
      eval mode); its parameters are closed over and become constants.
    input_shape: static input shape, e.g. `(1, 32, 32, 3)` (batch 1 for the
      Edge TPU).
    int8: full-integer quantization with int8 input and output (every op
      int8; the converter fails if an op has no int8 kernel).
    representative: for `int8`, float32 arrays of `input_shape` (or a
      callable returning such an iterable) used to calibrate activation
      ranges; 50-200 samples from the training split are typical.
    input_dtype: dtype of `fn`'s input.

  Returns:
    The `.tflite` model bytes.
  """
  tf_fn = _tf_function(fn, input_shape, input_dtype)
  concrete = tf_fn.get_concrete_function()
  tf = _tf()
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [concrete], tf_fn)
  if int8:
    if representative is None:
      raise errors.HwnasError(
          "int8 conversion needs a representative dataset; fix: pass "
          "representative= (float32 arrays of the input shape)")
    samples = [np.asarray(s, dtype=np.float32).reshape(input_shape)
               for s in (representative() if callable(representative)
                         else representative)]
    if not samples:
      raise errors.HwnasError(
          "int8 conversion got an empty representative dataset; fix: pass at "
          "least one calibration sample")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
  with warnings.catch_warnings():
    # Harmless on full-int8 conversion (docs/stack_notes.md, 5).
    warnings.filterwarnings(
        "ignore", message=".*Statistics for quantized inputs.*")
    with chatter.native():  # a `fully_quantize: ...` line per call
      return bytes(converter.convert())


def save_saved_model(fn: Callable[[Any], Any], input_shape: tuple[int, ...],
                     directory: str | os.PathLike[str], *,
                     input_dtype: Any = np.float32) -> None:
  """Writes `fn` as a TF SavedModel with a `serving_default` signature."""
  tf = _tf()
  tf_fn = _tf_function(fn, input_shape, input_dtype)
  module = tf.Module()
  module.f = tf_fn
  tf.saved_model.save(module, str(directory),
                      signatures={"serving_default":
                                  tf_fn.get_concrete_function()})


# ---------------------------------------------------------------- inspection

def _model(model_bytes: bytes):
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  try:
    return schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
  except Exception as e:  # flatbuffers raises assorted errors on garbage
    raise errors.HwnasError(
        f"not a valid TFLite flatbuffer ({type(e).__name__}); fix: pass the "
        "bytes of a .tflite file") from None


def _enum_names(enum_cls) -> dict[int, str]:
  return {v: k for k, v in vars(enum_cls).items()
          if not k.startswith("_") and isinstance(v, int)}


def op_list(model_bytes: bytes) -> list[str]:
  """Builtin operator names in execution order, e.g. `['CONV_2D', ...]`.

  Custom operators appear as `CUSTOM:<name>`. Only the main subgraph
  (index 0) is listed.
  """
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = _model(model_bytes)
  names = _enum_names(schema.BuiltinOperator)
  ops = []
  for op in model.subgraphs[0].operators or []:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode or 0),
                  int(code.deprecatedBuiltinCode or 0))
    name = names.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
      custom = code.customCode
      if isinstance(custom, (bytes, bytearray)):
        custom = custom.decode()
      name = f"CUSTOM:{custom}"
    ops.append(name)
  return ops


def op_counts(model_bytes: bytes) -> dict[str, int]:
  """Operator name -> count, in order of first appearance."""
  return dict(collections.Counter(op_list(model_bytes)))


def tensor_dtypes(model_bytes: bytes) -> dict[str, str]:
  """Tensor name -> dtype name (e.g. 'INT8', 'FLOAT32') of the main graph."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = _model(model_bytes)
  names = _enum_names(schema.TensorType)
  out = {}
  for i, t in enumerate(model.subgraphs[0].tensors or []):
    name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
    out[name or f"tensor_{i}"] = names.get(int(t.type), str(t.type))
  return out


def float_ops(model_bytes: bytes) -> list[str]:
  """Operators that read or write a floating-point tensor (`OP#index`)."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = _model(model_bytes)
  type_names = _enum_names(schema.TensorType)
  graph = model.subgraphs[0]
  names = op_list(model_bytes)
  out = []
  for i, op in enumerate(graph.operators or []):
    ids = [j for j in list(op.inputs if op.inputs is not None else []) +
           list(op.outputs if op.outputs is not None else []) if j >= 0]
    if any(type_names.get(int(graph.tensors[j].type)) in _FLOAT_TYPES
           for j in ids):
      out.append(f"{names[i]}#{i}")
  return out


# ------------------------------------------------------------------- running

@dataclasses.dataclass(frozen=True)
class TimingStats:
  """Latency of one invoke, in milliseconds, over `count` timed runs."""

  median_ms: float
  p10_ms: float
  p90_ms: float
  count: int

  def to_dict(self) -> dict[str, float | int]:
    return dataclasses.asdict(self)


def _interpreter(model_bytes: bytes, num_threads: int, delegates=None):
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  try:
    it = litert.Interpreter(model_content=bytes(model_bytes),
                            num_threads=num_threads,
                            experimental_delegates=delegates)
  except ValueError as e:
    raise errors.HwnasError(f"LiteRT cannot load the model: {e}; fix: pass "
                            "the bytes of a valid .tflite file") from None
  it.allocate_tensors()
  return it


class Runner:
  """Runs a TFLite model on float inputs with LiteRT, one sample at a time.

  int8 (or uint8) inputs are quantized with the model's input scale and zero
  point, and quantized outputs are dequantized, so `run` is float in, float
  out for both float and full-integer models.
  """

  def __init__(self, model_bytes: bytes, num_threads: int = 1, *,
               delegates: list[Any] | None = None):
    self._it = _interpreter(model_bytes, num_threads, delegates)
    self._in = self._it.get_input_details()[0]
    self._out = self._it.get_output_details()[0]

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(int(d) for d in self._in["shape"])

  @property
  def input_dtype(self) -> np.dtype:
    return np.dtype(self._in["dtype"])

  @property
  def output_dtype(self) -> np.dtype:
    return np.dtype(self._out["dtype"])

  @property
  def input_quantization(self) -> tuple[float, int]:
    """(scale, zero point) of the input; (0.0, 0) for a float input."""
    scale, zero_point = self._in["quantization"]
    return float(scale), int(zero_point)

  @property
  def output_quantization(self) -> tuple[float, int]:
    """(scale, zero point) of the output; (0.0, 0) for a float output."""
    scale, zero_point = self._out["quantization"]
    return float(scale), int(zero_point)

  def _quantize(self, x: np.ndarray) -> np.ndarray:
    dtype = self.input_dtype
    if np.issubdtype(dtype, np.floating):
      return x.astype(dtype)
    scale, zero_point = self._in["quantization"]
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)

  def _dequantize(self, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
      return y.astype(np.float32)
    scale, zero_point = self._out["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

  def run(self, x_float: np.ndarray) -> np.ndarray:
    """Runs float inputs through the model.

    Args:
      x_float: `[n, *input_shape[1:]]` float array; a model with batch 1 is
        invoked once per sample.

    Returns:
      `[n, ...]` float32 outputs (dequantized for integer models).
    """
    x = np.asarray(x_float, dtype=np.float32)
    shape = self.input_shape
    if x.shape[1:] != shape[1:]:
      raise errors.HwnasError(
          f"input shape {x.shape} does not match the model's {shape}; fix: "
          f"pass [n, {', '.join(map(str, shape[1:]))}] arrays")
    batch = shape[0]
    if x.shape[0] % batch:
      raise errors.HwnasError(
          f"{x.shape[0]} samples are not a multiple of the model batch {batch}")
    outs = []
    for i in range(0, x.shape[0], batch):
      self._it.set_tensor(self._in["index"], self._quantize(x[i:i + batch]))
      self._it.invoke()
      outs.append(self._dequantize(self._it.get_tensor(self._out["index"])))
    return np.concatenate(outs, axis=0)

  def time(self, repeats: int = 200, warmup: int = 20, *,
           rng: np.random.Generator | None = None) -> TimingStats:
    """Times `invoke()` on a fixed random input (docs/stack_notes.md, 6)."""
    if repeats < 1:
      raise errors.HwnasError("repeats must be at least 1")
    rng = np.random.default_rng(0) if rng is None else rng
    x = rng.uniform(-1.0, 1.0, size=self.input_shape).astype(np.float32)
    self._it.set_tensor(self._in["index"], self._quantize(x))
    for _ in range(warmup):
      self._it.invoke()
    times = np.empty(repeats)
    for i in range(repeats):
      t0 = _time.perf_counter()
      self._it.invoke()
      times[i] = _time.perf_counter() - t0
    ms = times * 1e3
    return TimingStats(median_ms=float(np.median(ms)),
                       p10_ms=float(np.percentile(ms, 10)),
                       p90_ms=float(np.percentile(ms, 90)), count=repeats)


def read(path: str | os.PathLike[str]) -> bytes:
  """Reads a `.tflite` file, with a clear error when it is missing."""
  p = pathlib.Path(path)
  if not p.is_file():
    raise errors.HwnasError(f"{p}: no such TFLite file")
  return p.read_bytes()


# ------------------------------------------------ power-of-two int8 weights
#
# A shift layer's kernel holds signed powers of two (`hwnas.models.deepshift`)
# and TFLite folds BatchNorm into it, so each output channel's float weights
# are p * f_c (p a power of two, f_c the channel's BatchNorm factor). Full-int8
# conversion quantises each channel symmetrically with scale max|w| / 127:
# the largest weight becomes 127 and one half of it 63 or 64, so the
# int8 weights are no longer powers of two of one another. With the scale
# max|w| / 64 instead, every weight down to 2^-6 of the channel's largest is
# an exact int8 power of two (64, 32, ..., 1): int8 holds 7 such levels
# under one scale, the shift weights' exponent range (16 levels at 5 bits)
# does not always fit.

POW2_LEVELS = 7


@dataclasses.dataclass(frozen=True)
class Pow2Weights:
  """The int8 weights of one power-of-two kernel in a TFLite model.

  Attributes:
    kernel: the caller's name of the kernel.
    op: the operator that holds it, e.g. 'CONV_2D#3' ('' when no int8
      weight tensor of the model matches the kernel).
    channels: output channels.
    exact: the channels whose int8 weights are m x p exactly (one m per
      channel): powers of two times the channel's scale.
    spans: per channel, log2 of its largest over its smallest non-zero
      power of two (-1 for a channel of zeros); a channel fits int8 with
      one scale when its span is below POW2_LEVELS.
  """

  kernel: str
  op: str
  channels: int
  exact: tuple[int, ...]
  spans: tuple[int, ...]

  @property
  def all_exact(self) -> bool:
    return bool(self.op) and len(self.exact) == self.channels

  def to_dict(self) -> dict[str, Any]:
    inexact = [c for c in range(self.channels) if c not in set(self.exact)]
    return {"kernel": self.kernel, "op": self.op, "channels": self.channels,
            "exact_channels": len(self.exact) if self.op else 0,
            "not_exact": [{"channel": c, "exponent_span": self.spans[c]}
                          for c in inexact] if self.op else [],
            "max_span": max(self.spans, default=-1)}


def _layouts(kernel: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
  """(TFLite layout as a transpose of the JAX kernel, channel axis) of a
  [k, k, cin, cout] kernel: CONV_2D's [cout, k, k, cin] and, for a
  depthwise [k, k, 1, C] one, DEPTHWISE_CONV_2D's [1, k, k, C]."""
  out = [((3, 0, 1, 2), 0)]
  if kernel.shape[2] == 1:
    out.append(((2, 0, 1, 3), 3))
  return out


def _by_channel(a: np.ndarray, axis: int) -> np.ndarray:
  return np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)


def _spans(p: np.ndarray) -> np.ndarray:
  out = np.full(len(p), -1, np.int64)
  for c, row in enumerate(np.abs(p)):
    nz = row[row > 0]
    if nz.size:
      out[c] = int(np.round(np.log2(nz.max() / nz.min())))
  return out


def _matches(q: np.ndarray, p: np.ndarray) -> bool:
  """Whether int8 channels `q` quantise p * f_c for some f_c > 0: q is
  round(qmax_c * p / pmax_c) (to rounding) and zero where p is."""
  pmax = np.abs(p).max(axis=1, keepdims=True)
  qmax = np.abs(q).max(axis=1, keepdims=True)
  want = np.divide(qmax * p, pmax, out=np.zeros_like(p), where=pmax > 0)
  # Half a step of rounding, plus the float32 scale's relative error.
  return bool(np.all(np.abs(q - want) <= 0.5 + 1e-3 * qmax))


def _exact(q: np.ndarray, p: np.ndarray) -> list[int]:
  pmax = np.abs(p).max(axis=1, keepdims=True)
  qmax = np.abs(q).max(axis=1, keepdims=True)
  want = np.divide(qmax * p, pmax, out=np.zeros_like(p), where=pmax > 0)
  return [c for c in range(len(p)) if np.array_equal(q[c], want[c])]


def _weight_ops(model) -> list[tuple[int, Any]]:
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  names = _enum_names(schema.BuiltinOperator)
  out = []
  for i, op in enumerate(model.subgraphs[0].operators or []):
    code = model.operatorCodes[op.opcodeIndex]
    name = names.get(max(int(code.builtinCode or 0),
                         int(code.deprecatedBuiltinCode or 0)), "")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
      out.append((i, name, op))
  return out


def _find(model, kernel: np.ndarray, used: set[int]):
  """(op index and name, op, channel axis, p [C, n], q [C, n]) of the int8
  weight tensor that quantises `kernel`, or None."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  g = model.subgraphs[0]
  for i, name, op in _weight_ops(model):
    t = g.tensors[op.inputs[1]]
    qz = t.quantization
    if i in used or int(t.type) != schema.TensorType.INT8 or qz is None or (
        qz.scale is None):
      continue
    for perm, axis in _layouts(kernel):
      p = np.transpose(kernel, perm)
      if tuple(int(s) for s in t.shape) != p.shape or len(qz.scale) != (
          p.shape[axis]) or int(qz.quantizedDimension) != axis:
        continue
      data = model.buffers[t.buffer].data
      if data is None:
        continue
      q = np.frombuffer(bytes(np.asarray(data, np.uint8)), np.int8)
      q = _by_channel(q.reshape(p.shape).astype(np.float64), axis)
      pc = _by_channel(p.astype(np.float64), axis)
      if _matches(q, pc):
        return (i, f"{name}#{i}"), op, axis, pc, q
  return None


def power_of_two_weights(model_bytes: bytes, kernels
                         ) -> list[Pow2Weights]:
  """Which channels of each power-of-two kernel the int8 model holds
  exactly.

  Args:
    model_bytes: a full-int8 `.tflite` model converted from the network
      with these kernels.
    kernels: (name, kernel) pairs, each a JAX [k, k, cin, cout] (or
      depthwise [k, k, 1, C]) array of exact signed powers of two or zeros.
  """
  model = _model(model_bytes)
  used: set[int] = set()
  out = []
  for name, k in kernels:
    k = np.asarray(k, np.float64)
    hit = _find(model, k, used)
    if hit is None:
      p = _by_channel(np.transpose(k, (3, 0, 1, 2)), 0)
      out.append(Pow2Weights(name, "", len(p), (), tuple(_spans(p))))
      continue
    (i, op_name), _, _, p, q = hit
    used.add(i)
    out.append(Pow2Weights(name, op_name, len(p), tuple(_exact(q, p)),
                           tuple(int(s) for s in _spans(p))))
  return out


def align_power_of_two_weights(model_bytes: bytes, kernels) -> bytes:
  """The int8 model with each power-of-two kernel's channels re-quantised
  to scale max / 64 where that makes them exact (span below POW2_LEVELS):
  int8 weights 2^(6 - d) for a weight 2^d below the channel's largest, the
  channel's scale x 127 / 64 and its int32 bias re-quantised to match.
  Channels that do not fit keep the converter's quantisation. The
  float function is the same to the bias's rounding (one int32 step).
  """
  import flatbuffers  # pylint: disable=g-import-not-at-top
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = _model(model_bytes)
  g = model.subgraphs[0]
  refs = collections.Counter(t.buffer for t in g.tensors)
  used: set[int] = set()
  top = 2 ** (POW2_LEVELS - 1)
  changed = False

  def own_buffer(t):
    # A buffer other tensors share gets a copy before it changes.
    if refs[t.buffer] > 1:
      b = schema.BufferT()
      b.data = np.array(model.buffers[t.buffer].data, np.uint8)
      model.buffers.append(b)
      refs[t.buffer] -= 1
      t.buffer = len(model.buffers) - 1
      refs[t.buffer] = 1
    return model.buffers[t.buffer]

  for _, k in kernels:
    hit = _find(model, np.asarray(k, np.float64), used)
    if hit is None:
      continue
    (i, _), op, axis, p, q = hit
    used.add(i)
    spans = _spans(p)
    fit = [c for c in range(len(p))
           if 0 <= spans[c] < POW2_LEVELS and c not in set(_exact(q, p))]
    if not fit:
      continue
    wt = g.tensors[op.inputs[1]]
    shape = tuple(int(s) for s in wt.shape)
    scale = np.asarray(wt.quantization.scale, np.float64)
    qmax = np.abs(q).max(axis=1)
    new_scale = scale.copy()
    for c in fit:
      # 2^-d of the channel's largest weight becomes 2^(6 - d); the largest
      # (qmax x scale before) becomes 64 x the new scale.
      q[c] = p[c] / np.abs(p[c]).max() * top
      new_scale[c] = scale[c] * qmax[c] / top
    moved = (shape[axis],) + tuple(s for j, s in enumerate(shape)
                                   if j != axis)
    raw = np.moveaxis(q.reshape(moved), 0, axis).astype(np.int8)
    own_buffer(wt).data = np.frombuffer(raw.tobytes(), np.uint8).copy()
    wt.quantization.scale = [float(np.float32(s)) for s in new_scale]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
      bt = g.tensors[op.inputs[2]]
      b = np.frombuffer(bytes(np.asarray(model.buffers[bt.buffer].data,
                                         np.uint8)), np.int32).astype(
                                             np.float64)
      s_in = float(g.tensors[op.inputs[0]].quantization.scale[0])
      ratio = scale / np.asarray(wt.quantization.scale, np.float64)
      b = np.clip(np.round(b * ratio), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
      own_buffer(bt).data = np.frombuffer(b.tobytes(), np.uint8).copy()
      bt.quantization.scale = [
          float(np.float32(s_in * s)) for s in wt.quantization.scale]
    changed = True
  if not changed:
    return model_bytes
  builder = flatbuffers.Builder(len(model_bytes) + 4096)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())
