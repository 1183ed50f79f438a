#!/usr/bin/env bash
# Runs tower-oauth2's interop tests against a real authorization server: installs oidc-provider
# (pinned by package-lock.json), starts server.mjs on loopback, runs `cargo test
# --features jwt --test interop` with the server's URLs in the environment, and stops the server.
# Fails, never skips, when Node, npm or the server is missing. Extra arguments go to the test
# binary's harness, such as a test name filter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

command -v node >/dev/null || { echo "interop: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "interop: npm is not installed" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error

log="$(mktemp)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

# `$!` is node itself, not a wrapper: the trap kills the server and nothing else.
node server.mjs >"$log" 2>&1 &
server=$!

ready=""
for _ in $(seq 1 150); do
    ready="$(grep -m1 '^ready ' "$log" || true)"
    [[ -n "$ready" ]] && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "interop: the server exited before it was ready:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    echo "interop: the server was not ready within 15 seconds:" >&2
    cat "$log" >&2
    exit 1
fi
echo "interop: $ready"

export INTEROP_ISSUER="${ready#*issuer=}"
INTEROP_ISSUER="${INTEROP_ISSUER%% *}"
export INTEROP_API="${ready#*api=}"
INTEROP_API="${INTEROP_API%% *}"

cd "$here/.."
status=0
cargo test --features jwt --test interop -- "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "interop: tests failed; the server's log:" >&2
    cat "$log" >&2
fi
exit $status
