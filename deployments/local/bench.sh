#!/usr/bin/env bash
# Runs the standard benchmarks (`make bench`): a local 3-node peer mesh on
# :8091-:8093, a single-node gateway on :8094 (publish ingest) and a fresh
# one on :8095 (idle memory), then
# `chat-bench suite`, which sweeps the fan-out rate on the mesh and on the
# single node (docs/bench-fanout.jsonl, drawn as docs/bench-fanout.svg) and
# writes the medians of the other scenarios into docs/BENCHMARKS.md.
# The load generator runs on the same machine as the servers.
#
# Environment: BENCH_HTTP_BASE (default 8091; the five gateways listen on
# it and the next four ports), BENCH_NATS_BASE (4291) and BENCH_ROUTE_BASE
# (6291) for the mesh's NATS client and route ports, so runs side by side
# do not collide; BIN (default bin), RUNS (default 3), SETTLE (seconds to wait
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
H=${BENCH_HTTP_BASE:-8091}
url() { echo "http://127.0.0.1:$((H + $1))"; }
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
"${procs[@]}" env BIN="$BIN" DATA="$DATA/mesh" HTTP_BASE="$H" NATS_BASE="${BENCH_NATS_BASE:-4291}" ROUTE_BASE="${BENCH_ROUTE_BASE:-6291}" \
	deployments/local/cluster.sh mesh >"$DATA/cluster.out" 2>&1 &
cluster_pid=$!
pids+=($cluster_pid)
"$BIN/chat-gateway" --node-name single --http-addr "127.0.0.1:$((H + 3))" --nats-listen off \
	--data-dir "$DATA/single" --services off --log-level warn >"$DATA/single.log" 2>&1 &
single_pid=$!
pids+=($single_pid)
# A fresh gateway for the idle-memory scenario alone.
"$BIN/chat-gateway" --node-name idle --http-addr "127.0.0.1:$((H + 4))" --nats-listen off \
	--data-dir "$DATA/idle" --services off --log-level warn >"$DATA/idle.log" 2>&1 &
idle_pid=$!
pids+=($idle_pid)

ready() { for u in "$@"; do curl -sf "$u/readyz" >/dev/null || return 1; done; }
for _ in $(seq 1 120); do
	ready "$(url 0)" "$(url 1)" "$(url 2)" "$(url 3)" "$(url 4)" && break
	sleep 0.5
done
ready "$(url 0)" "$(url 1)" "$(url 2)" "$(url 3)" "$(url 4)" || {
	echo "the benchmark cluster did not become ready"; cat "$DATA/cluster.out"; exit 1
}
# Let the mesh settle before measuring: its presence replicas warm up for
# a few seconds after start and then announce what they held back, and the
# services create their buckets. Measured right after start, the first
# scenario's p99 took that start-up work (up to 150 ms more in alternating
# runs); 20 s later old and new binaries measured alike.
sleep "${SETTLE:-20}"
# The mesh's gateways are cluster.sh's children: the fan-out sweep reads
# their CPU time and memory.
mesh_pids=$(pgrep -d, -P "$cluster_pid" chat-gateway)
short=()
[ "${SHORT:-0}" = 1 ] && short=(--short)
"${procs[@]}" "$BIN/chat-bench" suite --cluster "$(url 0),$(url 1),$(url 2)" \
	--single "$(url 3)" --idle-url "$(url 4)" --idle-pid "$idle_pid" --runs "$RUNS" --out docs/BENCHMARKS.md "${short[@]}" \
	--cluster-pids "$mesh_pids" --single-pid "$single_pid" --sweep-jsonl docs/bench-fanout.jsonl --plot docs/bench-fanout.svg
