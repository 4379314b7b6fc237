"""Published whole-model Coral Edge TPU latencies, as data with sources.

Every row names the public page or file its number was read from
(`source`); `status` says how sure the copy is ('V' read on the official
page or file itself, '3P' a third-party copy of an official page).
docs/edgetpu.md lists the sources and which rows are fitted or only
checked. Only networks that hwnas can express as
NetSpecs are listed: the shipped reference networks (`hwnas.references`)
and VGG16/VGG19, built here. Inception, ResNet, DenseNet, SqueezeNet and the
detection/segmentation models need branches, concatenations or spatial max
pooling that a NetSpec (a chain of layers) cannot hold, so they are left
out. Pixel 4 / Pixel 6 Edge TPU figures are not Coral figures and are left
out as well.

`use` says what the calibration does with a row: 'fit' rows calibrate the
cost model; 'check' rows are never fitted (a runtime setting or host no
fitted row has) and only reported. `harness` says how the figure was
timed: 'cpp' (Coral's C++ benchmark, model execution only) or 'python'
(`interpreter.invoke` from Python, which adds the Python call overhead).

VGG16/VGG19 are expressed with each 2x2 max-pool folded into the stride of
the following 3x3 conv, and fc6 as a 7x7 conv reducing to 1x1 (slim's own
formulation). MACs are exactly those of the published networks (15.47 G
and 19.63 G), weights too (138.35 M and 143.66 M; the conv biases are counted as the
int32 biases of folded BatchNorm, the same bytes); the graph differs only by
the five pooling ops, which cost no MACs.
"""

from __future__ import annotations

import dataclasses
import functools

from hwnas import counting, references
from hwnas.netspec import Layer, NetSpec

CORAL_BENCHMARKS = "https://coral.ai/docs/edgetpu/benchmarks"
CORAL_MODELS = "https://coral.ai/models/image-classification"
PYCORAL_REF = ("github.com/google-coral/pycoral benchmarks/reference/"
               "inference_reference_*.csv")
FREEDOMTAN = "github.com/freedomtan/edge_tpu_python_scripts README"
ISSUE_151 = "https://github.com/google-coral/edgetpu/issues/151"
ISSUE_353 = "https://github.com/google-coral/edgetpu/issues/353"
X2Q = ("https://www.x2q.net/post/google-coral-edge-tpu-experiments-2026/")
SOURCES = (CORAL_BENCHMARKS, CORAL_MODELS, PYCORAL_REF, ISSUE_151,
           FREEDOMTAN, X2Q, ISSUE_353)
HARNESSES = ("python", "cpp")


@dataclasses.dataclass(frozen=True)
class PublishedLatency:
  """One published whole-model latency on a Coral Edge TPU."""

  network: str        # a name `spec()` understands
  link: str           # 'usb3' | 'usb2' | 'pcie'
  clock: str          # 'max' (500 MHz) | 'std' (250 MHz)
  latency_ms: float
  source: str         # one of SOURCES
  status: str         # 'V' (official page/file) | '3P' (third-party)
  harness: str        # 'cpp' (C++ benchmark) | 'python' (Python invoke)
  setting: str        # host and harness, as published
  use: str = "fit"    # 'fit' | 'check'


_X86 = "desktop x86 + USB Accelerator (USB 3), C++ benchmark"
_DEV = "Dev Board (i.MX 8M, Edge TPU on PCIe), C++ benchmark"
_MODELS = ("USB Accelerator on a desktop host (USB 3); harness not stated, "
           "taken as the Python API")
_PY_X86 = "Xeon E5-1650 v3 + USB Acc (USB 3), Python invoke, 200 runs"
_PY_DEV = "Dev Board (PCIe), Python invoke, 200 runs"
_RPI3 = "Raspberry Pi 3B/3B+ + USB Acc (USB 2), Python invoke"
_X2Q = ("i9-13900K + USB Acc (USB 3), libedgetpu1-std 16.0 (250 MHz), "
        "pycoral 2.0, Python invoke, 50-100 runs")

P = PublishedLatency
ROWS: tuple[PublishedLatency, ...] = (
    # Coral benchmarks page, Table 1: C++ benchmark, USB 3 desktop column.
    P("mobilenet_v1_1.0", "usb3", "max", 2.4, CORAL_BENCHMARKS, "V", "cpp",
      _X86),
    P("mobilenet_v2_1.0", "usb3", "max", 2.6, CORAL_BENCHMARKS, "V", "cpp",
      _X86),
    P("efficientnet_edgetpu_S", "usb3", "max", 5.1, CORAL_BENCHMARKS, "V",
      "cpp", _X86),
    P("efficientnet_edgetpu_M", "usb3", "max", 8.7, CORAL_BENCHMARKS, "V",
      "cpp", _X86),
    P("vgg16", "usb3", "max", 296.0, CORAL_BENCHMARKS, "V", "cpp", _X86),
    P("vgg19", "usb3", "max", 308.0, CORAL_BENCHMARKS, "V", "cpp", _X86),
    # Table 1, Dev Board (PCIe) column.
    P("mobilenet_v1_1.0", "pcie", "max", 2.4, CORAL_BENCHMARKS, "V", "cpp",
      _DEV),
    P("mobilenet_v2_1.0", "pcie", "max", 2.6, CORAL_BENCHMARKS, "V", "cpp",
      _DEV),
    P("efficientnet_edgetpu_S", "pcie", "max", 5.5, CORAL_BENCHMARKS, "V",
      "cpp", _DEV),
    P("efficientnet_edgetpu_M", "pcie", "max", 10.6, CORAL_BENCHMARKS, "V",
      "cpp", _DEV),
    P("vgg16", "pcie", "max", 343.0, CORAL_BENCHMARKS, "V", "cpp", _DEV),
    P("vgg19", "pcie", "max", 357.0, CORAL_BENCHMARKS, "V", "cpp", _DEV),
    # Coral models page (USB Accelerator on a desktop host).
    P("efficientnet_edgetpu_S", "usb3", "max", 5.0, CORAL_MODELS, "V",
      "python", _MODELS),
    P("efficientnet_edgetpu_M", "usb3", "max", 7.3, CORAL_MODELS, "V",
      "python", _MODELS),
    P("mobilenet_v1_1.0", "usb3", "max", 2.8, CORAL_MODELS, "3P", "python",
      _MODELS),
    P("mobilenet_v2_1.0", "usb3", "max", 2.9, CORAL_MODELS, "3P", "python",
      _MODELS),
    # "TF2 MobileNet V3 EdgeTPU (PTQ)": Coral's MobileNet-EdgeTPU 1.0 build.
    P("mobilenet_edgetpu_1.0", "usb3", "max", 3.0, CORAL_MODELS, "3P",
      "python", _MODELS),
    # pycoral regression references: Python `interpreter.invoke`.
    P("mobilenet_v1_1.0", "usb3", "max", 2.17, PYCORAL_REF, "V", "python",
      _PY_X86),
    P("mobilenet_v2_1.0", "usb3", "max", 2.29, PYCORAL_REF, "V", "python",
      _PY_X86),
    P("mobilenet_v1_1.0", "pcie", "max", 2.22, PYCORAL_REF, "V", "python",
      _PY_DEV),
    P("mobilenet_v2_1.0", "pcie", "max", 2.56, PYCORAL_REF, "V", "python",
      _PY_DEV),
    P("mobilenet_v1_1.0", "usb2", "max", 9.00, PYCORAL_REF, "V", "python",
      _RPI3),
    P("mobilenet_v2_1.0", "usb2", "max", 10.61, PYCORAL_REF, "V", "python",
      _RPI3),
    P("mobilenet_v1_1.0", "usb2", "max", 9.22, PYCORAL_REF, "V", "python",
      _RPI3),
    P("mobilenet_v2_1.0", "usb2", "max", 10.77, PYCORAL_REF, "V", "python",
      _RPI3),
    # A maintainer's C++ figure on an armv7 USB 2 host.
    P("mobilenet_v1_1.0", "usb2", "max", 9.5, ISSUE_151, "V", "cpp",
      "armv7 host, USB 2.0, C++"),
    # Checks only (never fitted). Python on Macs (hosts unlike any fitted
    # one):
    P("mobilenet_v1_1.0", "usb3", "max", 2.91, FREEDOMTAN, "3P", "python",
      "Python, iMac 2015, USB 3", "check"),
    P("mobilenet_v2_1.0", "usb3", "max", 3.01, FREEDOMTAN, "3P", "python",
      "Python, iMac 2015, USB 3", "check"),
    # libedgetpu1-std (250 MHz): checks the clock term out of sample; the
    # EfficientNet-EdgeTPU-L row is also a network no fit has seen (300 px,
    # 7.9 GMACs, parameters beyond the cache).
    P("mobilenet_v1_1.0", "usb3", "std", 3.9, X2Q, "3P", "python", _X2Q,
      "check"),
    P("efficientnet_edgetpu_L", "usb3", "std", 31.0, X2Q, "3P", "python",
      _X2Q, "check"),
)
del P

# The one public latency of a network whose hard-swish falls back to the
# CPU: Keras MobileNetV3-Small (hard-swish, SE) retrained with Coral's
# tutorial ran in ~200 ms on a USB Accelerator, Coral's own MobileNet V3
# build (no hard-swish) in 12 ms, both with `classify_image.py` (Python) on
# a host the issue does not name. Kept apart from ROWS (the host, and so the
# link and host CPU, are unknown): docs/edgetpu.md compares the ratio.
FALLBACK_CHECK = {
    "source": ISSUE_353, "status": "V", "harness": "python",
    "hardswish_network": "mobilenet_v3_small_1.0", "hardswish_ms": 200.0,
    "mapped_network": "mobilenet_edgetpu_1.0", "mapped_ms": 12.0,
}


@dataclasses.dataclass(frozen=True)
class PublishedCpuLatency:
  """A published whole-model latency on a host CPU alone (no Edge TPU)."""

  network: str
  host: str           # 'x86' | 'arm'
  latency_ms: float
  source: str


# Table 1 'Desktop CPU' (x86) and 'Embedded CPU' (Cortex-A53) columns. The
# EfficientNet-EdgeTPU CPU rows are left out: the page footnotes them as
# unusually slow on CPU.
CPU_ROWS: tuple[PublishedCpuLatency, ...] = tuple(
    PublishedCpuLatency(n, h, ms, CORAL_BENCHMARKS) for n, h, ms in (
        ("mobilenet_v1_1.0", "x86", 53.0), ("mobilenet_v2_1.0", "x86", 51.0),
        ("vgg16", "x86", 867.0), ("vgg19", "x86", 1060.0),
        ("mobilenet_v1_1.0", "arm", 164.0), ("mobilenet_v2_1.0", "arm", 122.0),
        ("vgg16", "arm", 4595.0), ("vgg19", "arm", 5538.0)))


def _vgg(name: str, convs_per_stage: tuple[int, ...]) -> NetSpec:
  layers, size, ch = [], 224, 3
  for stage, n in enumerate(convs_per_stage):
    out = min(64 * 2 ** stage, 512)
    for i in range(n):
      stride = 2 if stage > 0 and i == 0 else 1   # the folded max-pool
      layers.append(Layer("conv", size, ch, out, kernel=3, stride=stride,
                          activation="relu"))
      size, ch = layers[-1].output_size, out
  # fc6 over the pooled 7x7x512 map == a 7x7 conv to 1x1 (slim's vgg.py);
  # with the fifth pool folded in, it reads the 14x14 map with stride 14.
  layers.append(Layer("conv", size, ch, 4096, kernel=7, stride=size,
                      activation="relu"))
  layers.append(Layer("pool", 1, 4096, 4096))
  layers.append(Layer("fc", 1, 4096, 4096, activation="relu"))
  layers.append(Layer("fc", 1, 4096, 1000))
  return NetSpec(name, 224, 3, tuple(layers))


_EXTRA = {
    "vgg16": lambda: _vgg("vgg16", (2, 2, 3, 3, 3)),
    "vgg19": lambda: _vgg("vgg19", (2, 2, 4, 4, 4)),
}


def networks(*, use: str | None = None) -> list[str]:
  """Names of the networks with published rows (of `use`, or all), sorted."""
  return sorted({r.network for r in rows(use=use)})


def spec(name: str) -> NetSpec:
  """The NetSpec of a published network (a reference name or vgg16/19)."""
  if name in _EXTRA:
    return _EXTRA[name]()
  return references.BUILDERS[name]()


def rows(*, use: str | None = "fit") -> tuple[PublishedLatency, ...]:
  """Published rows, filtered by `use` ('fit', 'check' or None for all)."""
  return tuple(r for r in ROWS if use is None or r.use == use)


@functools.lru_cache(maxsize=None)
def calibration_range(use: str = "fit") -> dict[str, list[float]]:
  """[min, max] of MACs, int8 parameter bytes and input resolution over the
  networks of the `use` rows (what the calibration has seen)."""
  nets = sorted({r.network for r in rows(use=use)})
  counts = [counting.count(spec(n)) for n in nets]
  res = [spec(n).resolution for n in nets]
  return {"macs": [min(c.macs for c in counts), max(c.macs for c in counts)],
          "param_bytes": [min(c.int8_bytes for c in counts),
                          max(c.int8_bytes for c in counts)],
          "resolution": [min(res), max(res)], "networks": nets}
