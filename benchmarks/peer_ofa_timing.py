"""Once-for-All's PyTorch supernet, timed the way bench_peer_ofa.py times
hwnas's (run by the peer's own Python, not hwnas's; see docs/supernet.md,
"A same-host peer: Once-for-All").

  $OFA_PEER/venv/bin/python benchmarks/peer_ofa_timing.py \
      --ofa-dir $OFA_PEER/once-for-all --resolution 64 --repeats 3

Builds `OFAMobileNetV3` with hwnas's mobilenetv3 choices (kernels 3/5/7,
expansions 3/4/6, depths 2/3/4), 10 classes, no dropout, SGD-Nesterov, one
fixed batch, and prints one JSON line of median milliseconds over
`--repeats` interleaved rounds (one call of each kind per round, after one
warm-up call of each):
sandwich (largest with cross entropy, then smallest and two random subnets
distilled from its soft labels, gradients accumulated, one update),
largest / smallest / random subnet step alone, eval forward of the largest.
Once-for-All's modules import torchvision and PIL for data loading only;
this script stands empty modules in for them, so the peer needs just torch.
"""

import argparse
import importlib.abc
import importlib.machinery
import json
import random
import statistics
import sys
import time
import types


class _AnyMeta(type):
  def __getattr__(cls, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return cls


class _Any(metaclass=_AnyMeta):
  """Stands in for any name of an empty module: takes any arguments, and
  any of its attributes is itself."""

  def __init__(self, *args, **kwargs):
    del args, kwargs


def _any_name(name):
  if name.startswith("__"):   # __file__, __spec__, ...: not there
    raise AttributeError(name)
  return _Any


class _Empty(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Empty modules for `torchvision` and `PIL` (any attribute is `_Any`):
  imported by Once-for-All's data loading, unused when timing."""

  ROOTS = ("torchvision", "PIL")

  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in self.ROOTS:
      return importlib.machinery.ModuleSpec(name, self, is_package=True)
    return None

  def create_module(self, spec):
    module = types.ModuleType(spec.name)
    module.__path__ = []
    module.__getattr__ = _any_name
    return module

  def exec_module(self, module):
    pass


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--ofa-dir", required=True,
                 help="a checkout of mit-han-lab/once-for-all")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--threads", type=int, default=2)
  a = p.parse_args()
  sys.meta_path.insert(0, _Empty())
  sys.path.insert(0, a.ofa_dir)
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  from ofa.imagenet_classification.elastic_nn.networks import (  # pylint: disable=g-import-not-at-top
      OFAMobileNetV3)

  torch.set_num_threads(a.threads)
  torch.manual_seed(0)
  random.seed(0)   # Once-for-All samples subnets with `random`
  net = OFAMobileNetV3(n_classes=10, dropout_rate=0, ks_list=[3, 5, 7],
                       expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9,
                        nesterov=True, weight_decay=3e-5)
  x = torch.randn(a.batch, 3, a.resolution, a.resolution)
  y = torch.arange(a.batch) % 10

  def use(kind):
    if kind == "largest":
      net.set_max_net()
    elif kind == "smallest":
      net.set_active_subnet(ks=3, e=3, d=2)
    else:
      net.sample_active_subnet()

  def sandwich():
    net.train()
    opt.zero_grad()
    use("largest")
    logits = net(x)
    F.cross_entropy(logits, y, label_smoothing=0.1).backward()
    soft = F.softmax(logits.detach(), -1)
    for kind in ("smallest", "random", "random"):
      use(kind)
      log_p = F.log_softmax(net(x), -1)
      (-(soft * log_p).sum(-1).mean()).backward()
    opt.step()

  def one(kind):
    def step():
      net.train()
      opt.zero_grad()
      use(kind)
      F.cross_entropy(net(x), y, label_smoothing=0.1).backward()
      opt.step()
    return step

  def eval_largest():
    net.eval()
    use("largest")
    with torch.no_grad():
      net(x)

  calls = {"sandwich": sandwich, "largest": one("largest"),
           "smallest": one("smallest"), "random": one("random"),
           "eval_largest": eval_largest}
  for call in calls.values():
    call()
  times = {k: [] for k in calls}
  for _ in range(a.repeats):
    for k, call in calls.items():
      t = time.perf_counter()
      call()
      times[k].append((time.perf_counter() - t) * 1e3)
  print(json.dumps({"torch": torch.__version__, "threads": a.threads,
                    **{k: statistics.median(v) for k, v in times.items()}}))


if __name__ == "__main__":
  main()
