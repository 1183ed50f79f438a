#!/usr/bin/env bash
# Runs the whole benchmark suite (a few minutes on 2 cores) and writes the ratios as a markdown
# table to target/bench-report/REPORT.md and the plot to docs/performance.svg.
#
#   scripts/bench.sh            run everything, write the report
#   scripts/bench.sh --readme   the same, and put the table into README.md's Performance section
#
# Instruction counts need valgrind (apt-get install valgrind); without it that part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

for bench in hot_path contention peers allocations cold_herd end_to_end instructions; do
    printf '\n== %s\n' "$bench"
    cargo bench --bench "$bench"
done

printf '\n== report\n'
python3 scripts/bench-report.py "$@"
