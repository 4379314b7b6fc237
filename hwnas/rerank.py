"""Re-ranking a search's top candidates by a short fine-tune.

A weight-sharing supernet orders architectures well at large distances but
poorly among networks within a point of each other: the ones a search ends
with. Once-for-All and BigNAS fine-tune the network they pick; this step
fine-tunes *each* of the search's top `top` distinct networks from the
supernet's weights for `steps` steps on the train split, scores them on the
same val split the search used, and makes the best of them the search's
pick (`best.json`). Measured on the frontier benchmark (animals,
edgetpu-mini, docs/frontier.md): 100 fine-tune steps raised the supernet's
Kendall tau against standalone training from 0.29 to 0.49 on the same 10
networks, at about 54 s a network on a 2-core CPU.

  hwnas search --space S --table T --target-ms 0.6 --supernet runs/sn \\
      --workdir runs/search --rerank 5 --rerank-steps 100

Writes into the search workdir: `rerank/<settings>/<network>/` (one resumable
`hwnas train` run per candidate; a finished one is reused), `rerank.json`
(the candidates, their supernet and fine-tuned val accuracies, the
settings, the wall time) and updates `best.json` (`arch` is the pick;
`rerank` says what it replaced). The test split decides nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

from hwnas import arch as arch_lib
from hwnas import data as data_lib
from hwnas import train_standalone
from hwnas.errors import HwnasError
from hwnas.search import history, objectives, report
from hwnas.search.history import Record, SearchResult

RERANK_JSON = "rerank.json"

# Settings keys a supernet config and a standalone config share: the
# fine-tune must see exactly the supernet's data and val hold-out.
_DATA_KEYS = ("dataset", "data_dir", "manual_dir", "val_fraction")


@dataclasses.dataclass(frozen=True)
class Settings:
  """How candidates are fine-tuned."""
  top: int = 5                 # distinct networks to fine-tune
  steps: int = 100             # fine-tune steps each
  learning_rate: float = 1e-3  # AdamW, constant after no warm-up
  batch_size: int = 0          # 0: the supernet's training batch size
  seed: int = 0

  def folder(self) -> str:
    """Where these settings' runs go (other settings never collide)."""
    return (f"steps{self.steps}_lr{self.learning_rate:g}_"
            f"b{self.batch_size}_seed{self.seed}")

  def check(self) -> None:
    if self.top < 2:
      raise HwnasError(f"--rerank {self.top}: re-ranking needs at least 2 "
                       "candidates; use --rerank 2 or more (or leave it out)")
    if self.steps < 1:
      raise HwnasError(f"--rerank-steps {self.steps}: must be at least 1")
    if not self.learning_rate > 0:
      raise HwnasError(f"--rerank-lr {self.learning_rate}: must be > 0")


def candidates(result: SearchResult, top: int) -> list[Record]:
  """The search's `top` best distinct networks under its objective
  (records of one network, `history.network_key`, count once)."""
  out, seen = [], set()
  for r in report.ranked(result.records, result.objective):
    key = history.network_key(r.arch)
    if key not in seen:
      seen.add(key)
      out.append(r)
    if len(out) == top:
      break
  return out


def finetune_config(supernet_config, supernet_workdir: pathlib.Path,
                    settings: Settings):
  """The `hwnas train` config of one candidate's fine-tune."""
  from hwnas.configs import train as train_config  # pylint: disable=g-import-not-at-top
  c = train_config.get_config("rank")
  for k in _DATA_KEYS:
    if k in supernet_config and k in c:
      c[k] = copy.deepcopy(supernet_config[k])
  c.seed, c.resolution = int(settings.seed), 0
  c.init = f"supernet:{supernet_workdir}"
  c.train.steps = int(settings.steps)
  c.train.batch_size = int(settings.batch_size or
                           supernet_config.train.batch_size)
  c.train.checkpoint_every = c.train.steps
  c.train.log_every = max(1, min(50, c.train.steps))
  c.optimizer.learning_rate = float(settings.learning_rate)
  c.optimizer.warmup_steps = 0
  return c


def _run_name(a) -> str:
  """A candidate's folder: its network, not its place in the ranking (so a
  resumed search whose ranking moved reuses what finished)."""
  key = arch_lib.to_string(a)
  return hashlib.sha1(key.encode()).hexdigest()[:12]


def run(result: SearchResult, supernet_workdir: str | pathlib.Path,
        settings: Settings = Settings(), *,
        echo: Callable[[str], None] = print) -> SearchResult:
  """Fine-tunes the top candidates of `result`; returns it with `best` the
  candidate of highest fine-tuned val accuracy (for the 'reward' objective:
  reward computed with it; ties: the search's order).

  `result` must come from a search whose evaluator was the supernet in
  `supernet_workdir`. Resumable: a finished candidate is reused.
  """
  from hwnas.supernet import checkpoint  # pylint: disable=g-import-not-at-top
  settings.check()
  wd = pathlib.Path(result.workdir)
  sw = pathlib.Path(supernet_workdir)
  saved = checkpoint.read_config(sw)
  import ml_collections  # pylint: disable=g-import-not-at-top
  sn_config = ml_collections.ConfigDict(saved["config"])
  from hwnas import space as space_lib  # pylint: disable=g-import-not-at-top
  space = space_lib.load(saved.get("space_path") or sn_config.space)
  pool = candidates(result, settings.top)
  if len(pool) < 2:
    echo(f"rerank: {len(pool)} candidate(s) meet the target; nothing to "
         "re-rank")
    return result
  cfg = finetune_config(sn_config, sw, settings)
  ds = data_lib.load_for(cfg)
  rows, t0 = [], time.perf_counter()
  for n, r in enumerate(pool):
    run_dir = wd / "rerank" / settings.folder() / _run_name(r.arch)
    done = run_dir / "result.json"
    if done.is_file():
      out, reused, wall = json.loads(done.read_text()), True, 0.0
    else:
      echo(f"rerank: fine-tuning {n + 1}/{len(pool)} "
           f"{arch_lib.to_string(r.arch)} ({settings.steps} steps)")
      t = time.perf_counter()
      spec = arch_lib.decode(space, r.arch, num_classes=ds.info.num_classes)
      out = train_standalone.train(spec, cfg, run_dir, arch=r.arch, ds=ds)
      reused, wall = False, time.perf_counter() - t
    rows.append({"index": r.index, "arch_string": arch_lib.to_string(r.arch),
                 "supernet": r.accuracy, "finetuned": out["val/accuracy"],
                 "costs": dict(r.costs), "run": str(run_dir),
                 "reused": reused, "wall_s": wall})
  obj = result.objective
  for row in rows:
    row["fitness"] = objectives.fitness(obj, row["finetuned"], row["costs"])
  pick = max(range(len(rows)), key=lambda i: (rows[i]["fitness"], -i))
  chosen = pool[pick]
  summary = {
      "settings": dataclasses.asdict(settings),
      "supernet_workdir": str(sw), "split": "val",
      "search_best": rows[0]["arch_string"], "pick": rows[pick]["arch_string"],
      "changed": pick != 0, "wall_s": time.perf_counter() - t0,
      "candidates": rows}
  history.write_json_atomic(wd / RERANK_JSON, summary)
  _update_best(wd / report.BEST, obj, chosen, rows[pick], rows[0])
  echo(f"rerank: {len(rows)} candidates fine-tuned {settings.steps} steps; "
       f"pick {rows[pick]['arch_string']} (val {rows[pick]['finetuned']:.4f}"
       f" fine-tuned, {rows[pick]['supernet']:.4f} supernet)"
       + ("" if pick else "; the search's best stays"))
  return dataclasses.replace(result, best=chosen)


def _update_best(path: pathlib.Path, obj, chosen: Record, row: dict[str, Any],
                 first: dict[str, Any]) -> None:
  d = json.loads(path.read_text())
  d["arch"] = arch_lib.to_dict(chosen.arch)
  d["arch_string"] = row["arch_string"]
  d["accuracy"] = chosen.accuracy
  d["finetuned_accuracy"] = row["finetuned"]
  d["costs"] = dict(chosen.costs)
  d["latency_ms"] = chosen.costs.get("latency_ms")
  d["macs"], d["params"] = chosen.macs, chosen.params
  d["index"], d["generation"] = chosen.index, chosen.generation
  if "reward" in d:
    d["reward"] = objectives.fitness(obj, chosen.accuracy, chosen.costs)
  d["rerank"] = {"search_best": first["arch_string"],
                 "search_best_finetuned": first["finetuned"],
                 "file": RERANK_JSON}
  history.write_json_atomic(path, d)
