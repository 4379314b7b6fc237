#!/usr/bin/env bash
# Runs every benchmark, then regenerates benchmarks/RESULTS.md from the
# per-area sections they write into benchmarks/results/*.md.
#   bash scripts/benchmarks.sh            # all (about 30-60 min on 2 cores)
#   bash scripts/benchmarks.sh search     # only benchmarks/bench_search.py
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
only=${1:-}
for b in benchmarks/bench_*.py; do
  name=$(basename "$b" .py); name=${name#bench_}
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  echo "== $b"
  python "$b"
done
python scripts/collect_results.py
