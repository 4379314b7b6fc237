"""Writes benchmarks/RESULTS.md from benchmarks/results/*.md.

Each benchmark script writes its own section (with the command that produced
it) into benchmarks/results/<area>.md; this stitches them together under a
header that records the date, the machine and the library versions.
Run: python scripts/collect_results.py (scripts/benchmarks.sh calls it).
"""

import datetime
import importlib.metadata as md
import pathlib
import platform

from hwnas.latency.backends import cpu_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The sessions' machines changed under the sections' feet; say which ran what.
HOSTS = ("Hosts: sections run on 2026-11-25 ran on a 2-core AMD EPYC, those "
         "run on 2026-12-02 on a 2-core Intel Xeon, and those run on "
         "2026-12-05 (Edge TPU model v2, supernet branching, search, int8, "
         "rank fidelity) on a 2-core AMD EPYC shared with other jobs (load "
         "10-20: compare ratios within a section, not absolute times "
         "across sections). Each section gives its run date.")
ORDER = ["latency", "edgetpu_model", "energy", "supernet", "rank_fidelity", "search",
         "search_tabular", "int8", "export", "quickstart", "har"]


def _versions() -> str:
  out = []
  for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
              "tensorflow-cpu", "ai-edge-litert", "numpy"):
    try:
      out.append(f"{pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
      pass
  return ", ".join(out)


def main():
  res = ROOT / "benchmarks" / "results"
  files = sorted(res.glob("*.md"),
                 key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER
                                else len(ORDER), p.stem))
  head = [
      "# Benchmark results",
      "",
      f"Collected {datetime.date.today().isoformat()} by "
      "`python scripts/collect_results.py` from `benchmarks/results/*.md`;",
      "each section names the command that produced its numbers and when "
      "it ran.",
      f"Collected on: {cpu_model()}, Python "
      f"{platform.python_version()}; {_versions()}.",
      HOSTS,
      "The machine is shared and noisy: compare ratios measured in one run, "
      "not absolute times across sections.",
      "",
  ]
  body = [p.read_text().rstrip() + "\n" for p in files]
  (ROOT / "benchmarks" / "RESULTS.md").write_text(
      "\n".join(head) + "\n" + "\n".join(body))
  print(f"wrote benchmarks/RESULTS.md from {len(files)} section(s)")


if __name__ == "__main__":
  main()
