"""One Edge TPU operator table for the cost model, `arch stats`, the search
and the export check; a CPU-fallback term that is never negative; Edge TPU
searches that never return a network that falls back (fast: toy
evaluators, the analytic model, no TFLite)."""

import dataclasses

import numpy as np
import pytest

from hwnas import arch, errors, pipeline, space
from hwnas.edgetpu import cost_model as em
from hwnas.edgetpu import ops
from hwnas.latency import edgetpu_table as et
from hwnas.latency import load_table, make_cost_fn
from hwnas.search import run

OLD = "15"   # an older compiler version than the default


def _space(activations):
  """tiny with stage s2's activation choices replaced."""
  s = space.load("tiny")
  st = dataclasses.replace(s.stages[1], activations=tuple(activations))
  return dataclasses.replace(s, stages=(s.stages[0], st))


def _hswish_blocks(a):
  return sum(b.activation == "hswish" for _, _, b in a.active_blocks())


def _favour_hswish(archs):
  """A toy evaluator under which hard-swish networks look best."""
  return ([0.5 + 0.1 * _hswish_blocks(a) + 0.001 * a.resolution
           for a in archs], [{} for _ in archs])


@pytest.fixture(scope="module")
def old_table(tmp_path_factory):
  path = tmp_path_factory.mktemp("t") / "edgetpu_old.json"
  et.make_table(space.load("tiny"), compiler=OLD).save(path)
  return load_table(path)


def test_the_activation_ops_and_the_export_check_read_one_table():
  for version in ops.MAPPED_BY_COMPILER:
    for act, tflite_ops in ops.ACTIVATION_OPS.items():
      report = ops.check_ops(("CONV_2D",) + tflite_ops, compiler=version)
      op = ops.unmapped_activation_op(act, version)
      assert report.all_mapped == (op is None), (version, act)
      if op:
        assert report.ops[report.first_fallback] == op
  assert ops.unmapped_activation_op("hswish", OLD) == "HARD_SWISH"
  assert ops.compiler_key("15.0.340273435") == "15"
  with pytest.raises(errors.HwnasError, match="known: 15, 16"):
    ops.compiler_key("9.1")


def test_fallback_term_is_never_negative_and_grows_with_the_cut():
  s = space.load("tiny")
  rng = np.random.default_rng(0)
  seen_fallback = 0
  for _ in range(60):
    spec = arch.decode(s, arch.sample(rng, s))
    e = em.estimate(spec, compiler=OLD)
    assert e.cpu_fallback_ms >= 0
    assert min(e.parts().values()) >= 0
    seen_fallback += e.cpu_fallback_ms > 0
  assert seen_fallback  # the sample did hit hard-swish networks
  # The network: the term was -0.015 ms.
  a = arch.canonicalize(s, arch.ArchChoice(
      space="tiny", resolution=24, widths=(24, 24), depths=(1, 3), blocks=(
          (arch.BlockChoice("fused_ibn", 5, 2, False, "relu"),
           arch.BlockChoice("ibn", 3, 2, False, "relu")),
          (arch.BlockChoice("ibn", 3, 4, False, "relu"),
           arch.BlockChoice("fused_ibn", 3, 4, False, "relu"),
           arch.BlockChoice("ibn", 3, 2, False, "hswish")))))
  e = em.estimate(arch.decode(s, a))
  assert e.cpu_fallback_ms > 0 and e.unmapped


def test_an_older_compiler_table_records_its_version(old_table):
  assert old_table.network_model["params"]["compiler"] == OLD
  assert et.compiler_of(old_table) == OLD
  assert et.is_edgetpu_table(old_table)


@pytest.mark.parametrize("objective", ["constraint", "reward", "pareto"])
def test_edgetpu_search_returns_no_network_that_falls_back(
    tmp_path, old_table, objective):
  s = _space(["relu", "hswish"])
  cost = make_cost_fn(old_table, s)
  target = 0.6 if objective != "pareto" else None
  lines = []
  mapped = pipeline.edgetpu_search_space(s, [old_table], echo=lines.append)
  assert "left out stage s2: activation hswish (HARD_SWISH)" in lines[0]
  r = run(mapped, _favour_hswish, {"latency_ms": cost}, budget=24,
          population=8, objective=objective, target=target,
          workdir=tmp_path / "mapped", progress=False, plot=False)
  returned = [x.arch for x in r.records] + [x.arch for x in r.front]
  assert returned and not any(_hswish_blocks(a) for a in returned)
  for a in returned:
    assert em.first_unmapped(arch.decode(s, a), OLD) is None
  # The same search allowed to fall back does pick hard-swish networks,
  # so the check above can fail.
  allowed = pipeline.edgetpu_search_space(s, [old_table], True,
                                          echo=lines.append)
  assert allowed is s and "CPU fallback allowed" in lines[-1]
  r = run(allowed, _favour_hswish, {"latency_ms": cost}, budget=24,
          population=8, objective=objective, target=target,
          workdir=tmp_path / "allowed", progress=False, plot=False)
  best = r.best if r.best is not None else r.front[0]
  assert _hswish_blocks(best.arch)


@pytest.mark.parametrize("objective", ["constraint", "reward", "pareto"])
def test_a_hard_swish_only_space_is_refused_unless_allowed(
    tmp_path, old_table, objective):
  s = _space(["hswish"])
  with pytest.raises(errors.HwnasError,
                     match="every network falls back.*--allow-cpu-fallback"):
    pipeline.search(s, tmp_path / "w", tables=[old_table.path],
                    target_ms=0.6 if objective != "pareto" else None,
                    objective=objective, budget=8)
  assert pipeline.edgetpu_search_space(s, [old_table], True,
                                       echo=lambda _: None) is s


def test_a_cpu_table_does_not_restrict_the_space():
  s = _space(["relu", "hswish"])
  assert pipeline.edgetpu_search_space(s, [load_table("xla/tiny")]) is s


def test_the_shipped_edgetpu_space_maps_and_tiny_says_what_falls_back():
  assert ops.fallback_choices(space.load("edgetpu")) == []
  assert ops.fallback_choices(space.load("tiny")) == [
      "stage s2: activation hswish (HARD_SWISH)"]
  with pytest.raises(errors.HwnasError, match="only choice"):
    ops.mapped_only_space(space.load("mobilenetv3"))
