# Sourced by interop/run.sh and fleet/run.sh: installs oidc-provider (pinned by
# package-lock.json) and starts server.mjs on loopback. Fails, never skips, when Node, npm or
# the server is missing.
#
#   start_interop_server LOG    starts it, logging to LOG; sets interop_pid (for the caller's
#                               trap to kill) and exports INTEROP_ISSUER, INTEROP_API and
#                               INTEROP_API_TLS (the API over HTTPS, asking for certificates)
#
# A caller that stops the server waits for interop_pid after killing it. A server that does
# not get ready is stopped here.

start_interop_server() {
    local log="$1"
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    command -v node >/dev/null || { echo "interop: node is not installed" >&2; return 1; }
    command -v npm >/dev/null || { echo "interop: npm is not installed" >&2; return 1; }
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1

    # `$!` is node itself, not a wrapper: the trap kills the server and nothing else. ESM
    # resolves imports next to the script, so node runs from its folder.
    (cd "$dir" && exec node server.mjs) >"$log" 2>&1 &
    interop_pid=$!

    local ready=""
    for _ in $(seq 1 150); do
        ready="$(grep -m1 '^ready ' "$log" || true)"
        [[ -n "$ready" ]] && break
        if ! kill -0 "$interop_pid" 2>/dev/null; then
            echo "interop: the server exited before it was ready:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        echo "interop: the server was not ready within 15 seconds:" >&2
        cat "$log" >&2
        kill "$interop_pid" 2>/dev/null || true
        wait "$interop_pid" 2>/dev/null || true
        interop_pid=""
        return 1
    fi
    echo "interop: $ready"

    INTEROP_ISSUER="${ready#*issuer=}"
    INTEROP_ISSUER="${INTEROP_ISSUER%% *}"
    INTEROP_API="${ready#*api=}"
    INTEROP_API="${INTEROP_API%% *}"
    INTEROP_API_TLS="${ready#*api_tls=}"
    INTEROP_API_TLS="${INTEROP_API_TLS%% *}"
    export INTEROP_ISSUER INTEROP_API INTEROP_API_TLS
}
