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
cost model; 'check' rows are held out (a different runtime setting or a
Python harness the model does not describe) and only reported.

VGG16/VGG19 are expressed with each 2x2 max-pool folded into the stride of
the following 3x3 conv, and fc6 as a 7x7 conv reducing to 1x1 (slim's own
formulation). MACs are exactly those of the published networks (15.47 G
and 19.63 G), weights too (138.35 M and 143.66 M; the conv biases are counted as the
int32 biases of folded BatchNorm, the same bytes); the graph differs only by
the five pooling ops, which cost no MACs.
"""

from __future__ import annotations

import dataclasses

from hwnas import references
from hwnas.netspec import Layer, NetSpec

CORAL_BENCHMARKS = "https://coral.ai/docs/edgetpu/benchmarks (Table 1)"
CORAL_MODELS = "https://coral.ai/models/image-classification (Table 2)"
PYCORAL_REF = ("google-coral/pycoral benchmarks/reference/"
               "inference_reference_*.csv (Table 3)")
FREEDOMTAN = "github.com/freedomtan/edge_tpu_python_scripts README (Table 4)"
ISSUE_151 = "https://github.com/google-coral/edgetpu/issues/151 (Table 4)"
STD_CLOCK_NOTE = ("https://www.x2q.net/post/google-coral-edge-tpu-"
                  "experiments-2026/ (libedgetpu1-std 16.0, pycoral)")


@dataclasses.dataclass(frozen=True)
class PublishedLatency:
  """One published whole-model latency on a Coral Edge TPU."""

  network: str        # a name `spec()` understands
  link: str           # 'usb3' | 'usb2' | 'pcie'
  clock: str          # 'max' (500 MHz) | 'std' (250 MHz)
  latency_ms: float
  source: str
  status: str         # 'V' (official page/file) | '3P' (third-party copy)
  setting: str        # host and harness, as published
  use: str = "fit"    # 'fit' | 'check'


_X86 = "desktop x86 + USB Accelerator (USB 3), C++ benchmark"
_DEV = "Dev Board (i.MX 8M, Edge TPU on PCIe), C++ benchmark"
_PY_X86 = "Xeon E5-1650 v3 + USB Acc (USB 3), Python invoke, 200 runs"
_PY_DEV = "Dev Board (PCIe), Python invoke, 200 runs"
_RPI3 = "Raspberry Pi 3B/3B+ + USB Acc (USB 2), Python invoke"

P = PublishedLatency
ROWS: tuple[PublishedLatency, ...] = (
    # Table 1, USB Accelerator on a desktop host (USB 3).
    P("mobilenet_v1_1.0", "usb3", "max", 2.4, CORAL_BENCHMARKS, "V", _X86),
    P("mobilenet_v2_1.0", "usb3", "max", 2.6, CORAL_BENCHMARKS, "V", _X86),
    P("efficientnet_edgetpu_S", "usb3", "max", 5.1, CORAL_BENCHMARKS, "V",
      _X86),
    P("efficientnet_edgetpu_M", "usb3", "max", 8.7, CORAL_BENCHMARKS, "V",
      _X86),
    P("vgg16", "usb3", "max", 296.0, CORAL_BENCHMARKS, "V", _X86),
    P("vgg19", "usb3", "max", 308.0, CORAL_BENCHMARKS, "V", _X86),
    # Table 1, Dev Board (PCIe).
    P("mobilenet_v1_1.0", "pcie", "max", 2.4, CORAL_BENCHMARKS, "V", _DEV),
    P("mobilenet_v2_1.0", "pcie", "max", 2.6, CORAL_BENCHMARKS, "V", _DEV),
    P("efficientnet_edgetpu_S", "pcie", "max", 5.5, CORAL_BENCHMARKS, "V",
      _DEV),
    P("efficientnet_edgetpu_M", "pcie", "max", 10.6, CORAL_BENCHMARKS, "V",
      _DEV),
    P("vgg16", "pcie", "max", 343.0, CORAL_BENCHMARKS, "V", _DEV),
    P("vgg19", "pcie", "max", 357.0, CORAL_BENCHMARKS, "V", _DEV),
    # Table 2, Coral models page (USB Accelerator on a desktop host).
    P("efficientnet_edgetpu_S", "usb3", "max", 5.0, CORAL_MODELS, "V", _X86),
    P("efficientnet_edgetpu_M", "usb3", "max", 7.3, CORAL_MODELS, "V", _X86),
    P("mobilenet_v1_1.0", "usb3", "max", 2.8, CORAL_MODELS, "3P", _X86),
    P("mobilenet_v2_1.0", "usb3", "max", 2.9, CORAL_MODELS, "3P", _X86),
    # "TF2 MobileNet V3 EdgeTPU (PTQ)": Coral's MobileNet-EdgeTPU 1.0 build.
    P("mobilenet_edgetpu_1.0", "usb3", "max", 3.0, CORAL_MODELS, "3P", _X86),
    # Table 3, pycoral regression references.
    P("mobilenet_v1_1.0", "usb3", "max", 2.17, PYCORAL_REF, "V", _PY_X86),
    P("mobilenet_v2_1.0", "usb3", "max", 2.29, PYCORAL_REF, "V", _PY_X86),
    P("mobilenet_v1_1.0", "pcie", "max", 2.22, PYCORAL_REF, "V", _PY_DEV),
    P("mobilenet_v2_1.0", "pcie", "max", 2.56, PYCORAL_REF, "V", _PY_DEV),
    P("mobilenet_v1_1.0", "usb2", "max", 9.00, PYCORAL_REF, "V", _RPI3),
    P("mobilenet_v2_1.0", "usb2", "max", 10.61, PYCORAL_REF, "V", _RPI3),
    P("mobilenet_v1_1.0", "usb2", "max", 9.22, PYCORAL_REF, "V", _RPI3),
    P("mobilenet_v2_1.0", "usb2", "max", 10.77, PYCORAL_REF, "V", _RPI3),
    # Table 4.
    P("mobilenet_v1_1.0", "usb2", "max", 9.5, ISSUE_151, "V",
      "armv7 host, USB 2.0, C++"),
    # Held out: a Python harness on Macs (host overhead the model omits) and
    # a libedgetpu1-std (250 MHz) figure, to check the clock term.
    P("mobilenet_v1_1.0", "usb3", "max", 2.91, FREEDOMTAN, "3P",
      "Python, iMac 2015, USB 3", "check"),
    P("mobilenet_v2_1.0", "usb3", "max", 3.01, FREEDOMTAN, "3P",
      "Python, iMac 2015, USB 3", "check"),
    P("mobilenet_v1_1.0", "usb3", "std", 3.9, STD_CLOCK_NOTE, "3P",
      "libedgetpu1-std runtime, USB 3", "check"),
)
del P


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


def networks() -> list[str]:
  """Names of the networks that have published rows, in a stable order."""
  return sorted({r.network for r in ROWS})


def spec(name: str) -> NetSpec:
  """The NetSpec of a published network (a reference name or vgg16/19)."""
  if name in _EXTRA:
    return _EXTRA[name]()
  return references.BUILDERS[name]()


def rows(*, use: str | None = "fit") -> tuple[PublishedLatency, ...]:
  """Published rows, filtered by `use` ('fit', 'check' or None for all)."""
  return tuple(r for r in ROWS if use is None or r.use == use)
