"""Weight-sharing supernet: model (branching), training, evaluation.

>>> from hwnas.supernet import make_evaluator
>>> evaluate_fn = make_evaluator("runs/sn")          # doctest: +SKIP
>>> evaluate_fn([arch_lib.largest(space)])            # doctest: +SKIP
[0.98]
"""

# `evaluate` is re-exported as `evaluate_archs` so that the submodule
# `hwnas.supernet.evaluate` stays reachable as a package attribute.
from hwnas.supernet.channels import sort_channels
from hwnas.supernet.evaluate import EvalData
from hwnas.supernet.evaluate import evaluate as evaluate_archs
from hwnas.supernet.evaluate import (extract_subnet, load_workdir,
                                     make_evaluator)
from hwnas.supernet.loop import train as train_supernet
from hwnas.supernet.extract import subnet
from hwnas.supernet.model import Supernet, arch_arrays, stack_arch_arrays
from hwnas.supernet.train import (create_state, make_optimizer, recalibrate,
                                  sandwich, train_step)

__all__ = ["EvalData", "Supernet", "arch_arrays", "create_state",
           "evaluate_archs", "extract_subnet", "load_workdir", "make_evaluator",
           "make_optimizer", "recalibrate", "sandwich", "sort_channels",
           "stack_arch_arrays", "subnet", "train_step", "train_supernet"]
