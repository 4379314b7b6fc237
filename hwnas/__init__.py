"""hwnas: hardware-aware neural architecture search in JAX.

Data flows one way: search space -> architecture -> supernet / evaluation
-> search controller -> export. The light, always-importable core:

>>> import hwnas
>>> space = hwnas.space.load("tiny")

The heavier packages (JAX, TensorFlow) are imported by name, e.g.
`from hwnas import latency, search`, so `import hwnas` stays fast and this
module imports nothing above its layer (docs/architecture.md).
"""

__version__ = "0.1.0"

from hwnas import arch, counting, errors, netspec, references, space
from hwnas.arch import ArchChoice, BlockChoice
from hwnas.errors import HwnasError
from hwnas.netspec import Layer, NetSpec
from hwnas.space import SearchSpace

__all__ = [
    "ArchChoice", "BlockChoice", "HwnasError", "Layer", "NetSpec",
    "SearchSpace", "arch", "counting", "errors", "netspec", "references",
    "space",
]
