"""hwnas: hardware-aware neural architecture search in JAX.

Data flows one way: search space -> architecture -> supernet / evaluation
-> search controller -> export. The light, always-importable core:

>>> import hwnas
>>> space = hwnas.space.load("tiny")
"""

__version__ = "0.1.0"

from hwnas import arch, counting, errors, netspec, references, space
from hwnas.arch import ArchChoice, BlockChoice
from hwnas.errors import HwnasError
from hwnas.netspec import Layer, NetSpec
from hwnas.space import SearchSpace

# Heavier parts load on first use (`hwnas.search`, `hwnas.latency`, ...), so
# `import hwnas` stays fast and does not import JAX or TensorFlow.
_LAZY = ("data", "export", "latency", "models", "optim", "quickstart",
         "rank_check", "search", "supernet", "tflite", "edgetpu",
         "train_standalone", "train_workdir")


def __getattr__(name):
  if name in _LAZY:
    import importlib
    return importlib.import_module(f"hwnas.{name}")
  raise AttributeError(f"module 'hwnas' has no attribute {name!r}")


__all__ = [
    "ArchChoice", "BlockChoice", "HwnasError", "Layer", "NetSpec",
    "SearchSpace", "arch", "counting", "errors", "netspec", "references",
    "space",
]
