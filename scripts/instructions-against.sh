#!/usr/bin/env bash
# Counts instructions per request (benches/instructions.rs, under callgrind) for this checkout
# and for an older commit REV, with this checkout's benchmark code in both, and prints both
# counts side by side:
#
#   scripts/instructions-against.sh REV [CASE-FILTER]
#
# REV is built in a temporary worktree under target/; needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: scripts/instructions-against.sh REV [CASE-FILTER]}"
filter="${2:-}"
here="$(pwd)"
other="$here/target/against-$(git rev-parse --short "$rev")"

if [[ ! -d "$other" ]]; then
    git worktree add --detach "$other" "$rev" >/dev/null
fi
trap 'git worktree remove --force "$other" >/dev/null 2>&1 || true' EXIT
rm -rf "$other/benches"
cp -r benches "$other/benches"

count() {
    (cd "$1" && CARGO_TARGET_DIR="$here/target/against" cargo bench --bench instructions -- $filter) \
        | grep 'instructions per request' | awk '{print $1, $2}'
}
count "$here" >"$here/target/against-now.txt"
count "$other" >"$here/target/against-then.txt"

printf '%-44s %10s %10s %8s\n' case "$rev" now ratio
join <(sort "$here/target/against-then.txt") <(sort "$here/target/against-now.txt") \
    | awk '{ printf "%-44s %10.0f %10.0f %8.3f\n", $1, $2, $3, $3 / $2 }'
