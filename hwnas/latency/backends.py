"""Measurement backends: time one layer, or a whole network, on a runtime.

* `xla`: the Flax block jitted on JAX's default device (CPU here, GPU/TPU
  elsewhere), depthwise implementation 'auto' (what hwnas runs there),
  parameters passed as arguments, `block_until_ready` after every call.
  On the CPU, `threads=N >= 1` pins the process (every thread) to N cores
  while it times (`pinned_to_cores`), which is how XLA:CPU is limited to N
  threads (its own thread-count flags no longer apply); `threads=0` uses
  every core. The default, 1, is the steadiest figure on a machine shared
  with other jobs and the most additive: XLA's intra-op threading of small
  batch-1 ops is what made 2-core block sums rank whole networks poorly
  (benchmarks/results/latency.md).
* `litert`: float32 TFLite (jax2tf, `hwnas.tflite.convert`, depthwise 'lax'
  so it lowers to DEPTHWISE_CONV_2D) run with the `ai-edge-litert`
  interpreter on `threads` threads.
* `litert-int8`: the same with full-integer post-training quantisation
  (random-normal representative inputs: activation ranges, not accuracy,
  matter for timing) and int8 input/output.
* `edgetpu`: full-int8 TFLite compiled by `edgetpu_compiler`
  (`hwnas.edgetpu.compile_model`) and run through the Edge TPU delegate.
  Creating the backend fails at once, saying what to install, when the
  compiler or the runtime/device is missing. Per entry it records the
  compiler's on-chip / off-chip parameter memory and whether every op was
  mapped.

The name -> backend mapping (`--backend NAME`) is `hwnas.latency.BACKENDS`:
a factory takes keyword options (`threads`, `seed`, plus any `--option
key=value` of the CLI) and returns an object with the `Backend` methods
below. Backends that can also split building from timing
(`prepare_layer(layer, batch_size)` / `prepare_network(spec, batch_size)`
-> `Prepared`, as the ones here do) are timed in interleaved rounds
(`hwnas.latency.timing.time_interleaved`), which is what makes
measurements on a shared machine comparable.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Mapping, Protocol

import numpy as np

from hwnas import errors
from hwnas.latency.timing import (Prepared, Timing, cpu_model,
                                  time_interleaved)
from hwnas.netspec import Layer, NetSpec


class Backend(Protocol):
  """What `measure` and `fidelity` need from a backend."""

  name: str
  precision: str

  def header_fields(self) -> dict[str, Any]:
    """device, runtime, runtime_version, threads, provenance, notes, ..."""

  def time_layer(self, layer: Layer, *, batch_size: int, warmup: int,
                 repeats: int) -> Timing:
    """Latency of one layer built standalone."""

  def time_network(self, spec: NetSpec, *, batch_size: int, warmup: int,
                   repeats: int) -> Timing:
    """End-to-end latency of a whole network."""


def input_shape(layer: Layer, batch_size: int) -> tuple[int, ...]:
  """Shape a layer is timed on: NHWC, or [B, C] for an `fc`."""
  if layer.type == "fc":
    return (batch_size, layer.in_channels)
  return (batch_size, *layer.input_hw, layer.in_channels)


def _module(obj: Layer | NetSpec, seed: int, depthwise: str):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network, build_layer  # pylint: disable=g-import-not-at-top
  rngs = nnx.Rngs(seed)
  if isinstance(obj, NetSpec):
    return Network(obj, rngs=rngs, depthwise=depthwise)
  return build_layer(obj, rngs=rngs, depthwise=depthwise)


def _network_shape(spec: NetSpec, batch_size: int) -> tuple[int, ...]:
  return (batch_size, *spec.input_shape)


# -------------------------------------------------------------------- xla --

class _TimesPrepared:
  """`time_layer` / `time_network` for backends that can `prepare_*`: one
  prepared callable timed with `time_interleaved` (the backend's timer)."""

  def time_layer(self, layer: Layer, *, batch_size: int, warmup: int,
                 repeats: int) -> Timing:
    return time_interleaved([self.prepare_layer(layer, batch_size)],
                            warmup=warmup, repeats=repeats,
                            timer=self.timer)[0]

  def time_network(self, spec: NetSpec, *, batch_size: int, warmup: int,
                   repeats: int) -> Timing:
    return time_interleaved([self.prepare_network(spec, batch_size)],
                            warmup=warmup, repeats=repeats,
                            timer=self.timer)[0]


class XlaBackend(_TimesPrepared):
  """Blocks jitted on JAX's default device (see the module docstring)."""

  name = "xla"
  precision = "float32"

  def __init__(self, threads: int = 1, seed: int = 0,
               depthwise: str = "auto", timer: str = "wall", **unused: Any):
    _reject(unused, self.name)
    if threads < 0:
      raise errors.HwnasError(f"--threads {threads}: must be >= 0 (0: all "
                              "cores)")
    self.threads = threads  # cores to pin to while timing (CPU backend)
    self.seed = seed
    self.depthwise = depthwise
    self.timer = timer

  def header_fields(self) -> dict[str, Any]:
    import jax  # pylint: disable=g-import-not-at-top
    import flax  # pylint: disable=g-import-not-at-top
    dev = jax.devices()[0]
    device = cpu_model() if dev.platform == "cpu" else (
        f"{dev.platform}:{getattr(dev, 'device_kind', '?')}")
    return {"device": device, "runtime": "jax",
            "runtime_version": f"jax {jax.__version__}, jaxlib "
                               f"{jax.lib.__version__}, flax "
                               f"{flax.__version__}, backend "
                               f"{jax.default_backend()}",
            "threads": self.threads, "timer": self.timer,
            "notes": f"depthwise impl '{self.depthwise}'; XLA_FLAGS="
                     f"{os.environ.get('XLA_FLAGS', '')!r}; parameters "
                     "passed as jit arguments; "
                     + (f"timed pinned to {self.cores} core(s)"
                        if self.cores else "timed on every core")}

  @property
  def cores(self) -> int:
    """Cores timing is pinned to: `threads` on the CPU backend, else 0."""
    import jax  # pylint: disable=g-import-not-at-top
    return self.threads if jax.default_backend() == "cpu" else 0

  def _prepare(self, obj, shape) -> Prepared:
    import jax  # pylint: disable=g-import-not-at-top
    from flax import nnx  # pylint: disable=g-import-not-at-top
    module = _module(obj, self.seed, self.depthwise)
    graphdef, state = nnx.split(module)
    fn = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x, train=False))
    x = jax.device_put(np.random.default_rng(self.seed).standard_normal(
        shape).astype(np.float32))
    jax.block_until_ready(fn(state, x))  # compile (on every core)
    return Prepared(lambda: jax.block_until_ready(fn(state, x)),
                    cores=self.cores)

  def prepare_layer(self, layer: Layer, batch_size: int) -> Prepared:
    return self._prepare(layer, input_shape(layer, batch_size))

  def prepare_network(self, spec: NetSpec, batch_size: int) -> Prepared:
    return self._prepare(spec, _network_shape(spec, batch_size))


def _reject(unused: Mapping[str, Any], name: str) -> None:
  if unused:
    raise errors.HwnasError(
        f"--backend {name} takes no option(s) {', '.join(sorted(unused))}")


# ----------------------------------------------------------------- litert --

class LiteRTBackend(_TimesPrepared):
  """TFLite via jax2tf, run with ai-edge-litert (float32 or full int8)."""

  def __init__(self, threads: int = 1, seed: int = 0, int8: bool = False,
               representative_samples: int = 8, timer: str = "wall",
               **unused: Any):
    self.name = "litert-int8" if int8 else "litert"
    _reject(unused, self.name)
    self.precision = "int8" if int8 else "float32"
    self.threads = max(1, threads)
    self.seed = seed
    self.int8 = int8
    self.representative_samples = representative_samples
    self.timer = timer

  def header_fields(self) -> dict[str, Any]:
    import importlib.metadata as md  # pylint: disable=g-import-not-at-top
    from hwnas.tflite import _tf  # pylint: disable=g-import-not-at-top
    tf = _tf()
    return {"device": cpu_model(), "runtime": "ai-edge-litert",
            "runtime_version": f"ai-edge-litert {md.version('ai-edge-litert')}"
                               f", tensorflow {tf.__version__} converter",
            "threads": self.threads, "timer": self.timer,
            "notes": ("full-integer int8 PTQ (random-normal representative "
                      "data), int8 input/output" if self.int8 else
                      "float32") + "; depthwise impl 'lax'; default "
                      "delegates (XNNPACK)"}

  def convert(self, obj: Layer | NetSpec, shape: tuple[int, ...]) -> bytes:
    from hwnas import tflite  # pylint: disable=g-import-not-at-top
    module = _module(obj, self.seed, "lax")
    fn = lambda x: module(x, train=False)  # eval mode; params closed over
    rep = None
    if self.int8:
      rng = np.random.default_rng(self.seed)
      rep = [rng.standard_normal(shape).astype(np.float32)
             for _ in range(self.representative_samples)]
    return tflite.convert(fn, shape, int8=self.int8, representative=rep)

  def _interpreter_call(self, model: bytes, delegates=None,
                        extras=None) -> Prepared:
    # hwnas.tflite.Runner.time reads the wall clock in one burst; timing
    # here reads both clocks in interleaved rounds (time_interleaved)
    # around the same interpreter.invoke().
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    it = litert.Interpreter(model_content=model, num_threads=self.threads,
                            experimental_delegates=delegates)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(self.seed)
    dtype = np.dtype(inp["dtype"])
    if np.issubdtype(dtype, np.integer):
      info = np.iinfo(dtype)
      x = rng.integers(info.min, info.max, size=inp["shape"], dtype=dtype)
    else:
      x = rng.standard_normal(inp["shape"]).astype(dtype)
    it.set_tensor(inp["index"], x)
    return Prepared(it.invoke, extras or {})

  def prepare_layer(self, layer: Layer, batch_size: int) -> Prepared:
    shape = input_shape(layer, batch_size)
    return self._interpreter_call(self.convert(layer, shape))

  def prepare_network(self, spec: NetSpec, batch_size: int) -> Prepared:
    shape = _network_shape(spec, batch_size)
    return self._interpreter_call(self.convert(spec, shape))


# ---------------------------------------------------------------- edgetpu --

class EdgeTpuBackend(LiteRTBackend):
  """Full-int8 TFLite -> edgetpu_compiler -> Edge TPU delegate."""

  def __init__(self, threads: int = 1, seed: int = 0, timer: str = "wall",
               **unused: Any):
    super().__init__(threads=threads, seed=seed, int8=True, timer=timer,
                     **unused)
    from hwnas import edgetpu  # pylint: disable=g-import-not-at-top
    from hwnas.edgetpu import compiler  # pylint: disable=g-import-not-at-top
    self.name = "edgetpu"
    if edgetpu.find_compiler() is None:
      raise errors.HwnasError(
          f"--backend edgetpu needs {compiler.COMPILER}, which is not on "
          f"PATH; fix: {compiler.INSTALL_HINT}; or use the estimated table "
          "(--backend edgetpu-model)")
    self._delegate = edgetpu.load_delegate()  # raises: runtime / device
    self._compiler_version: str | None = None
    self._tmp = tempfile.mkdtemp(prefix="hwnas-edgetpu-")

  def header_fields(self) -> dict[str, Any]:
    d = super().header_fields()
    d.update(device="Coral Edge TPU (host: " + cpu_model() + ")",
             runtime="libedgetpu + ai-edge-litert",
             runtime_version=f"edgetpu_compiler "
                             f"{self._compiler_version or '?'}, "
                             + d["runtime_version"],
             notes="full-integer int8 PTQ compiled with edgetpu_compiler; "
                   "latency through the Edge TPU delegate")
    return d

  def _compile(self, model: bytes, tag: str):
    compiled, extras, version = compile_for_edgetpu(model, self._tmp, tag)
    self._compiler_version = version or self._compiler_version
    return compiled, extras

  def prepare_layer(self, layer: Layer, batch_size: int) -> Prepared:
    model, extras = self._compile(
        self.convert(layer, input_shape(layer, batch_size)), "layer")
    return self._interpreter_call(model, [self._delegate], extras)

  def prepare_network(self, spec: NetSpec, batch_size: int) -> Prepared:
    model, extras = self._compile(
        self.convert(spec, _network_shape(spec, batch_size)), "network")
    return self._interpreter_call(model, [self._delegate], extras)


def compile_extras(result) -> dict[str, Any]:
  """Per-entry extras from a `hwnas.edgetpu.CompileResult`."""
  return {"on_chip_bytes": result.on_chip_used_bytes,
          "off_chip_bytes": result.off_chip_bytes,
          "all_ops_mapped": result.all_mapped,
          "edgetpu_subgraphs": result.num_subgraphs,
          "unmapped_ops": [r.op for r in result.unmapped]}


def compile_for_edgetpu(model: bytes, workdir: str, tag: str
                        ) -> tuple[bytes, dict[str, Any], str | None]:
  """int8 .tflite bytes -> (compiled bytes, extras, compiler version)."""
  import pathlib  # pylint: disable=g-import-not-at-top
  from hwnas import edgetpu  # pylint: disable=g-import-not-at-top
  src = pathlib.Path(workdir) / f"{tag}.tflite"
  src.write_bytes(model)
  res = edgetpu.compile_model(src, workdir)
  out = pathlib.Path(workdir) / f"{tag}_edgetpu.tflite"
  if not out.is_file():
    raise errors.HwnasError(f"{src}: edgetpu_compiler reported success but "
                            f"wrote no {out.name}; see {res.log_path}")
  return out.read_bytes(), compile_extras(res), res.compiler_version


