#!/usr/bin/env bash
# Runs the standard benchmarks (`make bench`): a local 3-node peer mesh on
# :8091-:8093, a single-node gateway on :8094 (publish ingest) and a fresh
# one on :8095 (idle memory), then
# `chat-bench suite`, which writes the medians into docs/BENCHMARKS.md.
# The load generator runs on the same machine as the servers.
#
# Environment: BIN (default bin), RUNS (default 3), SETTLE (seconds to wait
# after the cluster is ready, default 20), SHORT=1 for a quick,
# small run (not comparable with the targets), MESH_PROCS (default 1): the
# GOMAXPROCS of each mesh node and of the load generator. Three nodes and
# the load generator share two cores; with Go's default each would run two
# schedulers (eight on two cores), whose spinning for work costs more than
# it gives. One each is what a container limited to its share of the cores
# gets (Go sizes GOMAXPROCS from the cgroup limit). MESH_PROCS=0 keeps Go's
# default, for comparison.
set -euo pipefail
BIN=${BIN:-bin}
RUNS=${RUNS:-3}
DATA=$(mktemp -d)
pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	rm -rf "$DATA"
}
trap stop INT TERM EXIT

ulimit -n "$(ulimit -Hn)"
procs=()
if [ "${MESH_PROCS:-1}" != 0 ]; then
	procs=(env "GOMAXPROCS=${MESH_PROCS:-1}")
fi
"${procs[@]}" env BIN="$BIN" DATA="$DATA/mesh" HTTP_BASE=8091 NATS_BASE=4291 ROUTE_BASE=6291 \
	deployments/local/cluster.sh mesh >"$DATA/cluster.out" 2>&1 &
pids+=($!)
"$BIN/chat-gateway" --node-name single --http-addr 127.0.0.1:8094 --nats-listen off \
	--data-dir "$DATA/single" --services off --log-level warn >"$DATA/single.log" 2>&1 &
pids+=($!)
# A fresh gateway for the idle-memory scenario alone.
"$BIN/chat-gateway" --node-name idle --http-addr 127.0.0.1:8095 --nats-listen off \
	--data-dir "$DATA/idle" --services off --log-level warn >"$DATA/idle.log" 2>&1 &
idle_pid=$!
pids+=($idle_pid)

ready() { for u in "$@"; do curl -sf "$u/readyz" >/dev/null || return 1; done; }
for _ in $(seq 1 120); do
	ready http://127.0.0.1:8091 http://127.0.0.1:8092 http://127.0.0.1:8093 http://127.0.0.1:8094 http://127.0.0.1:8095 && break
	sleep 0.5
done
ready http://127.0.0.1:8091 http://127.0.0.1:8092 http://127.0.0.1:8093 http://127.0.0.1:8094 http://127.0.0.1:8095 || {
	echo "the benchmark cluster did not become ready"; cat "$DATA/cluster.out"; exit 1
}
# Let the mesh settle before measuring: its presence replicas warm up for
# a few seconds after start and then announce what they held back, and the
# services create their buckets. Measured right after start, the first
# scenario's p99 took that start-up work (up to 150 ms more in alternating
# runs); 20 s later old and new binaries measured alike.
sleep "${SETTLE:-20}"
short=()
[ "${SHORT:-0}" = 1 ] && short=(--short)
"${procs[@]}" "$BIN/chat-bench" suite --cluster http://127.0.0.1:8091,http://127.0.0.1:8092,http://127.0.0.1:8093 \
	--single http://127.0.0.1:8094 --idle-url http://127.0.0.1:8095 --idle-pid "$idle_pid" --runs "$RUNS" --out docs/BENCHMARKS.md "${short[@]}"
