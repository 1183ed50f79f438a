#!/usr/bin/env bash
# Measures the Redis fleet and writes the figures into docs/fleet.md, between the markers
# there (`scripts/fleet-bench.sh`: about 3 minutes of measuring on 2 cores; building the
# benchmarks in the release profile, with and without the feature, adds 10 or more when cold):
#
# - benches/fleet.rs against a redis-server started here on loopback: grants per token
#   lifetime for 1 to 16 replica processes with and without the fleet, and how long a cold
#   cache waits for a token from Redis or from a grant;
# - benches/instructions.rs under callgrind, built without and with the `redis` feature: the
#   instructions of a request whose token is cached, with no fleet and with one. Needs valgrind;
#   without it that part says so and is left out.
#
# Needs redis-server (apt-get install redis-server); fails without it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "fleet-bench: redis-server is not installed" >&2; exit 1; }

work="$(mktemp -d)"
redis=""
cleanup() {
    if [[ -n "$redis" ]]; then
        kill "$redis" 2>/dev/null || true
        wait "$redis" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile "$work/redis.log" &
redis=$!
for _ in $(seq 1 100); do
    [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]] && break
    sleep 0.1
done

printf '\n== grants and misses (benches/fleet.rs)\n'
FLEET_BENCH_REDIS="redis://127.0.0.1:$port" cargo bench --features redis --bench fleet
report="target/bench-report/fleet.md"

printf '\n== hot path, instructions per request (benches/instructions.rs under callgrind)\n'
if command -v valgrind >/dev/null; then
    cargo bench --bench instructions -- plain/oauth2 | grep 'instructions per request' >"$work/off"
    cargo bench --features redis --bench instructions -- plain/oauth2 \
        | grep 'instructions per request' >"$work/on"
    {
        printf '\nInstructions per request whose token is cached (callgrind; `plain` request, no-op inner service):\n\n'
        printf '| case | feature off | feature on, no fleet | feature on, in a fleet | in a fleet / off |\n'
        printf '| --- | ---: | ---: | ---: | ---: |\n'
        for case in reused/plain/oauth2 clone/plain/oauth2; do
            off="$(awk -v c="$case" '$1 == c { print $2 }' "$work/off")"
            on="$(awk -v c="$case" '$1 == c { print $2 }' "$work/on")"
            fleet="$(awk -v c="${case}_fleet" '$1 == c { print $2 }' "$work/on")"
            ratio="$(awk -v a="$fleet" -v b="$off" 'BEGIN { printf "%.3f", a / b }')"
            printf '| `%s` | %s | %s | %s | %sx |\n' "$case" "$off" "$on" "$fleet" "$ratio"
        done
    } >>"$report"
else
    echo "valgrind is not installed: no instruction counts" | tee -a "$report"
fi

cat "$report"
python3 - "$report" <<'PY'
import re, sys
report = open(sys.argv[1]).read().strip()
path = "docs/fleet.md"
doc = open(path).read()
begin, end = "<!-- fleet-bench begin -->", "<!-- fleet-bench end -->"
if begin not in doc or end not in doc:
    sys.exit(f"{path} lacks the markers {begin} and {end}")
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(f"{head}{begin}\n{report}\n{end}{tail}")
print(f"figures written into {path}")
PY
