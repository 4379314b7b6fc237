"""Tests of hwnas.rerank (`hwnas search --rerank K`): the search's top
distinct networks are fine-tuned from the supernet's weights, the best on
val becomes best.json's pick, and a rerun reuses every finished fine-tune."""

import json
import pathlib

import pytest

from hwnas import arch as arch_lib
from hwnas import cli, pipeline, rerank
from hwnas.errors import HwnasError
from hwnas.search import history, report

MICRO = pathlib.Path(__file__).parent / "testdata" / "micro.yaml"

pytestmark = pytest.mark.usefixtures("fast_compile_module")


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
  """A 3-step micro supernet on digits-10 (the machinery is under test)."""
  from hwnas.configs import supernet as supernet_config
  from hwnas.supernet import loop
  root = tmp_path_factory.mktemp("rerank")
  (root / "micro.yaml").write_text(MICRO.read_text())
  c = supernet_config.get_config("tiny")
  c.space, c.dataset = str(root / "micro.yaml"), "digits-10"
  c.train.steps, c.train.batch_size = 3, 8
  c.eval.bn_batches, c.eval.batch_size = 1, 64
  loop.train(c, root / "sn", progress=False)
  return root / "sn"


def _search(supernet, workdir, settings, **kw):
  return pipeline.search(str(supernet.parent / "micro.yaml"), workdir,
                         costs=["mmacs"], target=10.0, supernet=supernet,
                         budget=12, seed=0, progress=False, references=[],
                         rerank=settings, echo=lambda m: None, **kw)


def test_rerank_picks_best_finetuned_and_resumes(supernet, tmp_path):
  settings = rerank.Settings(top=3, steps=2, batch_size=8)
  wd = tmp_path / "search"
  result = _search(supernet, wd, settings)
  saved = json.loads((wd / rerank.RERANK_JSON).read_text())
  rows = saved["candidates"]
  # The search's three best distinct networks, in the search's order.
  want = rerank.candidates(result, 3)
  assert [r["arch_string"] for r in rows] == [
      arch_lib.to_string(r.arch) for r in want]
  assert len({history.network_key(r.arch) for r in want}) == 3
  order = report.ranked(result.records, result.objective)
  assert rows[0]["arch_string"] == arch_lib.to_string(order[0].arch)
  assert all(0.0 <= r["finetuned"] <= 1.0 for r in rows)
  # The pick: highest fine-tuned val accuracy, ties to the search's order.
  top = max(r["finetuned"] for r in rows)
  pick = next(r for r in rows if r["finetuned"] == top)
  assert saved["pick"] == pick["arch_string"]
  assert arch_lib.to_string(result.best.arch) == pick["arch_string"]
  best = json.loads((wd / "best.json").read_text())
  assert best["arch_string"] == pick["arch_string"]
  assert arch_lib.to_string(arch_lib.from_dict(best["arch"])) == \
      pick["arch_string"]
  assert best["finetuned_accuracy"] == pick["finetuned"]
  assert best["rerank"]["search_best"] == rows[0]["arch_string"]
  # Each fine-tune is a finished `hwnas train` run of that network that
  # started from the supernet's weights.
  for r in rows:
    cfg = json.loads((pathlib.Path(r["run"]) / "config.json").read_text())
    assert cfg["config"]["init"] == f"supernet:{supernet}"
    assert cfg["config"]["train"]["steps"] == 2
  # A rerun reuses every finished fine-tune and picks the same network.
  again = _search(supernet, wd, settings)
  rows2 = json.loads((wd / rerank.RERANK_JSON).read_text())["candidates"]
  assert all(r["reused"] for r in rows2)
  assert [r["finetuned"] for r in rows2] == [r["finetuned"] for r in rows]
  assert arch_lib.to_string(again.best.arch) == pick["arch_string"]


def test_rerank_bad_settings_are_one_line_errors(supernet, tmp_path, capsys):
  with pytest.raises(HwnasError, match="at least 2 candidates"):
    _search(supernet, tmp_path / "a", rerank.Settings(top=1))
  with pytest.raises(HwnasError, match="--supernet"):
    pipeline.search(str(supernet.parent / "micro.yaml"), tmp_path / "b",
                    costs=["mmacs"], target=10.0, evaluator="predictor",
                    predictor=tmp_path / "none", budget=4,
                    rerank=rerank.Settings(top=2), progress=False,
                    references=[], echo=lambda m: None)
  code = cli.main(["search", "--space", str(supernet.parent / "micro.yaml"),
                   "--cost", "mmacs", "--target", "10", "--supernet",
                   str(supernet), "--workdir", str(tmp_path / "c"),
                   "--budget", "4", "--rerank", "3", "--rerank-steps", "0",
                   "--no-progress"])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1 and "--rerank-steps 0" in err
  assert not (tmp_path / "c").exists()
