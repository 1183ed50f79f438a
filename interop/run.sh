#!/usr/bin/env bash
# Runs tower-oauth2's interop tests against a real authorization server: installs oidc-provider
# (pinned by package-lock.json), starts server.mjs on loopback, builds the curl example (the
# mutual TLS tests run it), runs `cargo test --features https,dpop --test interop` with the
# server's URLs in the environment, and stops the server.
# Fails, never skips, when Node, npm or the server is missing. Extra arguments go to the test
# binary's harness, such as a test name filter. (fleet/run.sh also starts this server, for the
# test of a fleet sharing rotating refresh tokens.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=interop/serve.sh
source "$here/serve.sh"

log="$(mktemp)"
interop_pid=""
cleanup() {
    if [[ -n "$interop_pid" ]]; then
        kill "$interop_pid" 2>/dev/null || true
        wait "$interop_pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

start_interop_server "$log"

cd "$here/.."
status=0
cargo build --features https,dpop --example curl
cargo test --features https,dpop --test interop -- "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "interop: tests failed; the server's log:" >&2
    cat "$log" >&2
fi
exit $status
