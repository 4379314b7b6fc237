"""Energy per inference on an Eyeriss-like row-stationary accelerator.

Pure numpy, no JAX. `accelerator` is the hardware description (loaded
from YAML/JSON, validated), `rowstationary` maps one convolution and
counts its accesses at each memory level, `network` splits a `NetSpec`'s
layers into convolutions and sums their energy, `published` holds the
Eyeriss chip's measured AlexNet figures the model is checked against.
The energy table kind built on it is `hwnas.latency.energy_table`
(docs/energy.md).

>>> from hwnas import energy, references
>>> acc = energy.load_accelerator("eyeriss-v1")
>>> # energy.total_uj(references.load("mobilenet_v2_1.0"), acc)
"""

from hwnas.energy.accelerator import (DEFAULT, LEVELS, Accelerator,
                                      AcceleratorError)
from hwnas.energy.accelerator import load as load_accelerator
from hwnas.energy.network import (LayerEnergy, layer_convs, layer_energy,
                                  network_energy, total_uj)
from hwnas.energy.rowstationary import ConvEnergy, ConvShape, map_conv

__all__ = [
    "DEFAULT", "LEVELS", "Accelerator", "AcceleratorError", "ConvEnergy",
    "ConvShape", "LayerEnergy", "layer_convs", "layer_energy",
    "load_accelerator", "map_conv", "network_energy", "total_uj",
]
