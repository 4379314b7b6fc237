"""The Eyeriss chip's published AlexNet figures, to check the model against.

Source: Chen, Krishna, Emer, Sze, "Eyeriss: An Energy-Efficient
Reconfigurable Accelerator for Deep Convolutional Neural Networks", IEEE
JSSC 52(1), 2017, Table V: AlexNet CONV1-CONV5 at batch 4, 200 MHz, 1 V,
16-bit. Per layer: chip power (mW), processing latency including DRAM
transfers (ms), MACs, active PEs, fraction of zeros in the ifmaps, global
buffer accesses (MB) and DRAM accesses (MB, with the chip's run-length
compression of feature maps). docs/energy_sources.md says where each
number comes from and how the totals were cross-checked.

AlexNet here is the original two-group network (CONV2, CONV4, CONV5 split
into two groups), which is what the chip's MAC counts correspond to.
"""

from __future__ import annotations

from typing import NamedTuple

from hwnas.energy.rowstationary import ConvShape

BATCH = 4
CLOCK_HZ = 200e6


class LayerFigures(NamedTuple):
  name: str
  shape: ConvShape       # zeros_in / zeros_out from the table
  power_mw: float
  latency_ms: float
  mmacs: float           # millions, whole batch
  active_pes: int
  glb_mb: float
  dram_mb: float


# Zero fractions of each ifmap (Table V); a layer's ofmap zeros are the
# next layer's ifmap zeros (pooling between them changes them little), and
# CONV5's ofmap is taken to be as sparse as its ifmap.
_ZEROS = (0.0001, 0.387, 0.725, 0.793, 0.776)


def _shape(n, g, m, c, h, r, u, e, i):
  zout = _ZEROS[i + 1] if i + 1 < len(_ZEROS) else _ZEROS[i]
  return ConvShape(n, g, m, c, h, r, u, e, zeros_in=_ZEROS[i],
                   zeros_out=zout)


ALEXNET = (
    LayerFigures("CONV1", _shape(BATCH, 1, 96, 3, 227, 11, 4, 55, 0),
                 332, 20.9, 422, 154, 18.5, 5.0),
    LayerFigures("CONV2", _shape(BATCH, 2, 128, 48, 27, 5, 1, 27, 1),
                 288, 41.9, 896, 135, 77.6, 4.0),
    LayerFigures("CONV3", _shape(BATCH, 1, 384, 256, 13, 3, 1, 13, 2),
                 266, 23.6, 598, 156, 50.2, 3.0),
    LayerFigures("CONV4", _shape(BATCH, 2, 192, 192, 13, 3, 1, 13, 3),
                 235, 18.4, 449, 156, 37.4, 2.1),
    LayerFigures("CONV5", _shape(BATCH, 2, 128, 192, 13, 3, 1, 13, 4),
                 236, 10.5, 299, 156, 24.9, 1.3),
)

# Table V's totals (also quoted in the paper's text and abstract).
TOTAL = {"power_mw": 278, "latency_ms": 115.3, "processing_ms": 103.5,
         "glb_mb": 208.5, "dram_mb": 15.4}

# JSSC 2017 Fig. 16: share of chip power in the PE scratch pads and in the
# multipliers and adders, for CONV1 and CONV5.
POWER_SHARE = {"CONV1": {"spads": 0.425, "mac": 0.089},
               "CONV5": {"spads": 0.331, "mac": 0.030}}

# Eyeriss v2 (JETCAS 2019) abstract: with sparse MobileNet at batch 1, v2
# reaches 2560.3 inferences/J, 2.5x the original Eyeriss on MobileNet; so
# Eyeriss v1 ran MobileNet at about 1024 inferences/J (on-chip energy).
V1_MOBILENET_INFERENCES_PER_J = 2560.3 / 2.5

# ISCA 2016 (Chen, Emer, Sze), Table IV: energy per access normalised to
# one MAC in a 65 nm process — the defaults of `Accelerator.cost`.
NORMALISED_COST = {"dram": 200, "glb": 6, "noc": 2, "rf": 1, "mac": 1}
