#!/usr/bin/env bash
# Runs tower-oauth2's fleet tests against real servers: installs redis-server (Debian's
# package) when it is missing, starts one standalone server, one TLS server (with a CA made here)
# and one three-master Redis Cluster on free loopback ports, and the interop suite's
# authorization server (oidc-provider, Node), builds the curl example the tests run as replica
# processes, runs `cargo test --features redis,https,dpop --test fleet` with the servers' URLs in the
# environment, and stops them. Fails, never skips, when a server cannot be started. Extra
# arguments go to the test binary's harness, such as a test name filter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null \
    || ! command -v openssl >/dev/null; then
    echo "fleet: installing redis-server and openssl" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "fleet: redis-server or openssl is missing and installing them needs root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server openssl >/dev/null
fi
# Debian's package starts a system-wide server; the tests use their own, so it may stay.
echo "fleet: $(redis-server --version)"

# Eight replica processes of 200 connections each, and the server they talk to, in one test.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM

# True when nothing listens on 127.0.0.1:$1.
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a port that is free, and whose cluster bus port (+10000) is free too. Both lie below
# the kernel's ephemeral range (32768 and up here: ports 20000 to 22767, buses up to 32767),
# where outgoing connections, the tests' hundreds among them, could take a port between this
# check and the server's start.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 2768))
        if port_free "$port" && port_free $((port + 10000)); then
            echo "$port"
            return 0
        fi
    done
    echo "fleet: found no free port" >&2
    return 1
}

# Starts redis-server on port $1 with any further options; records its pid.
start() {
    local port="$1"
    shift
    mkdir -p "$work/$port"
    # `$!` is redis-server itself, not a wrapper: the trap kills the server and nothing else.
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work/$port" --logfile "$work/$port/log" "$@" &
    pids+=("$!")
}

# Waits until the server on port $1 answers PING, for at most 10 seconds; further arguments go
# to redis-cli (TLS options).
wait_ready() {
    local port="$1"
    shift
    for _ in $(seq 1 100); do
        if [[ "$(redis-cli -p "$port" "$@" ping 2>/dev/null)" == "PONG" ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "fleet: redis-server on port $port did not answer within 10 seconds:" >&2
    cat "$work/$port/log" >&2 || true
    return 1
}

# A CA, and a certificate for 127.0.0.1 it signed, for the TLS server.
make_certificates() {
    local dir="$work/tls"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=fleet test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
}

standalone="$(free_port)"
start "$standalone"
wait_ready "$standalone"

make_certificates
tls="$(free_port)"
start "$tls" --port 0 --tls-port "$tls" --tls-cert-file "$work/tls/server.pem" \
    --tls-key-file "$work/tls/server.key" --tls-ca-cert-file "$work/tls/ca.pem" \
    --tls-auth-clients no
wait_ready "$tls" --tls --cacert "$work/tls/ca.pem"

cluster=()
for _ in 1 2 3; do
    port="$(free_port)"
    start "$port" --cluster-enabled yes --cluster-config-file "$work/$port/nodes.conf" \
        --cluster-node-timeout 2000
    cluster+=("$port")
done
for port in "${cluster[@]}"; do
    wait_ready "$port"
done
redis-cli --cluster create "${cluster[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$work/cluster-create.log" 2>&1 || {
    echo "fleet: redis-cli --cluster create failed:" >&2
    cat "$work/cluster-create.log" >&2
    exit 1
}
state=""
for _ in $(seq 1 100); do
    state="$(redis-cli -p "${cluster[0]}" cluster info | tr -d '\r' | grep '^cluster_state:' || true)"
    [[ "$state" == "cluster_state:ok" ]] && break
    sleep 0.1
done
if [[ "$state" != "cluster_state:ok" ]]; then
    echo "fleet: the cluster was not ready within 10 seconds ($state)" >&2
    exit 1
fi

# The rotation test also needs a real authorization server that rotates refresh tokens with
# reuse detection: interop/server.mjs, which needs Node and npm (fails, never skips, without).
# shellcheck source=interop/serve.sh
source "$here/../interop/serve.sh"
start_interop_server "$work/interop.log"
pids+=("$interop_pid")

export FLEET_REDIS_URL="redis://127.0.0.1:$standalone"
export FLEET_REDIS_TLS_URL="rediss://127.0.0.1:$tls"
urls=("${cluster[@]/#/redis://127.0.0.1:}")
FLEET_CLUSTER_URLS="$(IFS=,; echo "${urls[*]}")"
export FLEET_CLUSTER_URLS
FLEET_REDIS_SERVER="$(command -v redis-server)"
export FLEET_REDIS_SERVER
echo "fleet: standalone $FLEET_REDIS_URL; TLS $FLEET_REDIS_TLS_URL; cluster $FLEET_CLUSTER_URLS"

cd "$here/.."
# Replicas as processes: the curl example, built with the same features as the tests so that
# both share one build of the crate; the tests find it next to their own binary.
features="redis,https,dpop"
cargo build --features "$features" --example curl
# The fleet trusts the system's roots (rustls-native-certs), which SSL_CERT_FILE replaces: the
# test CA, beside the system's bundle so that anything else in the run still verifies. Built
# first, so that cargo itself never runs with it.
cargo test --features "$features" --test fleet --no-run
bundle="$work/tls/roots.pem"
cat /etc/ssl/certs/ca-certificates.crt "$work/tls/ca.pem" >"$bundle" 2>/dev/null \
    || cp "$work/tls/ca.pem" "$bundle"
status=0
SSL_CERT_FILE="$bundle" cargo test --features "$features" --test fleet -- "$@" || status=$?
if [[ $status -ne 0 ]]; then
    for port in "$standalone" "$tls" "${cluster[@]}"; do
        echo "fleet: tests failed; the log of redis-server on port $port:" >&2
        tail -n 20 "$work/$port/log" >&2 || true
    done
    echo "fleet: tests failed; the log of the interop server:" >&2
    tail -n 40 "$work/interop.log" >&2 || true
fi
exit $status
