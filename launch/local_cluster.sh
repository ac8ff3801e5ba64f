#!/usr/bin/env bash
# A real multi-node Ray cluster on this machine: one head and N worker nodes on 127.0.0.1, each its own
# raylet with its own CPUs, object store, temp dir and a custom resource naming it. For tests and demos of
# what `nas search --address` does on a cluster (trials spread over nodes, a node dying mid-search).
#
#   launch/local_cluster.sh start     # head + 2 workers; prints the address to pass to --address
#   launch/local_cluster.sh status    # `ray status` of the cluster, and each node's raylet PID
#   launch/local_cluster.sh stop      # kill every process of our nodes (by PID), remove the state directory
#   launch/local_cluster.sh kill-node w1   # SIGKILL one worker node: a machine dying mid-search
#
#   nas search --space tiny.yaml --address "$(launch/local_cluster.sh address)" --trials 6
#
# Settings (environment):
#   NAS_CLUSTER_DIR     state + temp dirs (default /tmp/nas-cluster-$USER; keep it short: Ray's unix
#                       socket paths live under it and are limited to ~107 characters)
#   NAS_CLUSTER_PORT    GCS port of the head (default 6390; not Ray's 6379, so a default cluster is untouched)
#   NAS_HEAD_CPUS       CPUs the head offers to trials (default 0: the head only schedules)
#   NAS_WORKERS         worker nodes (default 2)
#   NAS_WORKER_CPUS     CPUs per worker node (default 1)
#   NAS_OBJECT_STORE    object store bytes per node (default 100000000; trials pass only small results)
#
# Every node gets its own --temp-dir under NAS_CLUSTER_DIR. Besides keeping the nodes' sockets and logs apart,
# that keeps the cluster's address out of /tmp/ray/ray_current_cluster, so a plain `ray.init()` elsewhere on
# this machine starts its own local Ray instead of joining this cluster by accident.
set -euo pipefail

DIR="${NAS_CLUSTER_DIR:-/tmp/nas-cluster-${USER:-$(id -u)}}"
PORT="${NAS_CLUSTER_PORT:-6390}"
HEAD_CPUS="${NAS_HEAD_CPUS:-0}"
WORKERS="${NAS_WORKERS:-2}"
WORKER_CPUS="${NAS_WORKER_CPUS:-1}"
STORE="${NAS_OBJECT_STORE:-100000000}"
ADDRESS="127.0.0.1:${PORT}"
RAY="${RAY:-ray}"
PY="${PYTHON:-python3}"

export RAY_USAGE_STATS_ENABLED=0
# Ray's token authentication: `ray start --head` turns it on by itself when ~/.ray/auth_token exists, but
# `ray start --address` (a worker node) does not and is then refused, and neither does a driver given an
# explicit address (`nas search --address 127.0.0.1:6390`). So choose one mode for every node: off by default
# for this short-lived local cluster; RAY_AUTH_MODE=token turns it on (then export RAY_AUTH_MODE=token for
# the driver too; the token is ~/.ray/auth_token, made here if missing).
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
# A worker node's raylet checks in with the GCS every second; on a loaded laptop the default grace is fine,
# but a killed node should be noticed within seconds so its trials fail over quickly.
export RAY_health_check_period_ms="${RAY_health_check_period_ms:-1000}"
export RAY_health_check_failure_threshold="${RAY_health_check_failure_threshold:-5}"

_free_ports() {  # N free TCP ports on 127.0.0.1 (bound together, so they are distinct)
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

_node_names() {
    echo head
    for i in $(seq 1 "$WORKERS"); do echo "w$i"; done
}

_start_node() {  # name, extra ray-start arguments...
    local name="$1"; shift
    local ports
    read -r -a ports <<<"$(_free_ports 4)"
    mkdir -p "$DIR/$name"
    # Each raylet on one host needs its own agent ports; the defaults (52365, ...) would collide.
    "$RAY" start --node-ip-address=127.0.0.1 --temp-dir="$DIR/$name" \
        --object-store-memory="$STORE" --num-gpus=0 \
        --dashboard-agent-listen-port="${ports[0]}" --dashboard-agent-grpc-port="${ports[1]}" \
        --metrics-export-port="${ports[2]}" --runtime-env-agent-port="${ports[3]}" \
        --disable-usage-stats "$@" >"$DIR/$name.log" 2>&1 || {
        echo "local_cluster: starting node '$name' failed; its log:" >&2
        cat "$DIR/$name.log" >&2
        return 1
    }
}

_raylet_pid() {  # PID of a node's raylet, found by its socket path under the node's temp dir
    pgrep -f -- "raylet/raylet .*--raylet_socket_name=$DIR/$1/" | head -n1 || true
}

cmd_start() {
    if [[ -e "$DIR/address" ]]; then
        echo "local_cluster: a cluster is already recorded in $DIR (run '$0 stop' first)" >&2
        return 1
    fi
    mkdir -p "$DIR"
    if [[ "$RAY_AUTH_MODE" == token ]]; then
        "$RAY" get-auth-token --generate >/dev/null
    fi
    _start_node head --head --port="$PORT" --num-cpus="$HEAD_CPUS" --include-dashboard=false \
        --dashboard-port="$(_free_ports 1)" --resources='{"nas_node_head": 1}'
    echo "$ADDRESS" >"$DIR/address"
    for i in $(seq 1 "$WORKERS"); do
        _start_node "w$i" --address="$ADDRESS" --num-cpus="$WORKER_CPUS" \
            --resources="{\"nas_node_w$i\": 1, \"nas_worker\": 1}"
    done
    echo "local_cluster: head + $WORKERS workers up at $ADDRESS (state in $DIR)" >&2
    echo "$ADDRESS"
}

_tree() {  # the given PIDs and all their descendants
    local pid
    for pid in "$@"; do
        echo "$pid"
        # shellcheck disable=SC2046
        _tree $(pgrep -P "$pid" || true)
    done
}

_node_pids() {  # every process of one node: those naming its temp dir, and their descendants (workers)
    # shellcheck disable=SC2046
    _tree $(pgrep -f -- "$DIR/$1(/| |$)" || true) | sort -u
}

cmd_kill_node() {  # SIGKILL one node's processes (what a machine failure looks like to the rest)
    local pids
    pids="$(_node_pids "$1")"
    [[ -n "$pids" ]] || { echo "local_cluster: node '$1' has no processes" >&2; return 1; }
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    echo "local_cluster: killed node $1 ($(echo $pids | wc -w) processes)" >&2
}

cmd_stop() {
    [[ -d "$DIR" ]] || return 0
    # `ray stop` kills every Ray process of the machine (other users' clusters, local `ray.init()`s); stop only
    # the processes of our nodes, by PID: workers first, then the head, so no worker lingers retrying the GCS.
    local name pids
    for name in $(_node_names | tac); do
        pids="$(_node_pids "$name")"
        # shellcheck disable=SC2086
        [[ -z "$pids" ]] || kill -TERM $pids 2>/dev/null || true
    done
    sleep 1
    for name in $(_node_names | tac); do
        pids="$(_node_pids "$name")"
        # shellcheck disable=SC2086
        [[ -z "$pids" ]] || kill -9 $pids 2>/dev/null || true
    done
    rm -rf "$DIR"
    echo "local_cluster: stopped" >&2
}

cmd_status() {
    if [[ ! -e "$DIR/address" ]]; then
        echo "local_cluster: not running (no $DIR/address)" >&2
        return 1
    fi
    "$RAY" status --address="$(cat "$DIR/address")"
    for name in $(_node_names); do
        local pid
        pid="$(_raylet_pid "$name")"
        echo "node $name: raylet pid ${pid:-none (dead)}"
    done
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    address) cat "$DIR/address" ;;
    raylet-pid) _raylet_pid "${2:?node name: head, w1, w2, ...}" ;;
    kill-node) cmd_kill_node "${2:?node name: w1, w2, ...}" ;;
    *) echo "usage: $0 start|stop|status|address|raylet-pid NODE|kill-node NODE" >&2; exit 2 ;;
esac
