"""Evolutionary architecture search over injected evaluators and costs.

>>> import numpy as np
>>> from hwnas import arch, counting, space
>>> from hwnas.search import run
>>> s = space.load("tiny")
>>> macs = lambda a: counting.count(arch.decode(s, a)).macs / 1e6
>>> acc = lambda archs: [min(1.0, macs(a) / 10) for a in archs]
>>> r = run(s, acc, {"mmacs": macs}, target=4.0, budget=20, population=8,
...         workdir=tmp, progress=False, plot=False)  # doctest: +SKIP
"""

from hwnas.search.controller import (default_algorithm, default_settings,
                                     describe_settings, run)
from hwnas.search.evolution import ALGORITHMS, Settings
from hwnas.search.feasibility import check_target, fastest
from hwnas.search.history import Record, SearchResult, network_key
from hwnas.search.history import read as read_history
from hwnas.search.objectives import OBJECTIVES, Objective
from hwnas.search.report import front, select_best

__all__ = [
    "ALGORITHMS", "OBJECTIVES", "Objective", "Record", "SearchResult",
    "Settings", "check_target", "default_algorithm", "default_settings",
    "describe_settings", "fastest", "front", "network_key", "read_history",
    "run", "select_best",
]
