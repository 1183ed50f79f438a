#!/usr/bin/env bash
# Runs the whole benchmark suite (about half an hour on 2 cores) and writes its figures into
# docs/performance.md, between the markers there.
#
# Instruction counts need valgrind (apt-get install valgrind); without it that part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

for bench in hot_path contention allocations cold_herd end_to_end instructions; do
    printf '\n== %s\n' "$bench"
    cargo bench --bench "$bench"
done

printf '\n== report\n'
python3 scripts/bench-report.py
