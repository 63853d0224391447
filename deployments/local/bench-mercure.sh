#!/usr/bin/env bash
# Compares fan-out through the Mercure hub with fan-out through a room
# (`make bench-mercure`): the same gateways, started with --mercure, driven
# by chat-bench with and without --mercure, the two alternated RUNS times
# (rooms first in odd rounds, Mercure first in even ones) so both see the
# same noise of a shared machine:
#
#   fanout    SUBS subscribers, RATE messages/s for DURATION: deliveries/s,
#             loss, latency, and the gateways' CPU time per message
#   loaded    SUBS subscribers at 100 messages/s: latency to many subscribers
#   latency   one subscriber at 200 messages/s (on another node in a mesh)
#
# and prints the medians per endpoint as a Markdown table (every run in $OUT).
#
# TOPOLOGY=single (default) runs one gateway on :8097; TOPOLOGY=mesh a
# 3-node peer mesh on :8191-:8193 (deployments/local/cluster.sh, each node
# and chat-bench with GOMAXPROCS=MESH_PROCS, default 1, as `make bench`),
# with the subscribers spread over its nodes. Either is started once and
# given SETTLE seconds (default 5, 20 for a mesh) before the first run.
#
# Latency is measured the same way through both: from chat-bench's clock
# before it sends the publish, which a Mercure update carries in its data
# and a room's message at the start of its text (chat-bench --client-ts), so
# it counts the publish request's way into the gateway too.
#
# Environment: BIN (default bin), RUNS (default 3), DURATION (default 10s),
# SUBS (default 1000), RATE (default 1000), OUT (default a temporary file),
# TOPOLOGY, MESH_PROCS, SETTLE.
set -euo pipefail
BIN=${BIN:-bin}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
SUBS=${SUBS:-1000}
RATE=${RATE:-1000}
TOPOLOGY=${TOPOLOGY:-single}
DIR=$(mktemp -d)
OUT=${OUT:-$DIR/runs.jsonl}
pid=""
stop() {
	trap - INT TERM EXIT
	[ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	rm -rf "$DIR/data"
}
trap stop INT TERM EXIT
ulimit -n "$(ulimit -Hn)"

head -c 32 /dev/urandom | base64 >"$DIR/mercure.secret"
mercure=(--mercure --mercure-jwt-secret-file "$DIR/mercure.secret")
procs=()
case $TOPOLOGY in
single)
	urls=http://127.0.0.1:8097
	"$BIN/chat-gateway" --node-name mercure-bench --http-addr 127.0.0.1:8097 --nats-listen off \
		--data-dir "$DIR/data" --services off --log-level warn "${mercure[@]}" >"$DIR/gateway.log" 2>&1 &
	pid=$!
	gateways=$pid
	;;
mesh)
	urls=http://127.0.0.1:8191,http://127.0.0.1:8192,http://127.0.0.1:8193
	if [ "${MESH_PROCS:-1}" != 0 ]; then
		procs=(env "GOMAXPROCS=${MESH_PROCS:-1}")
	fi
	"${procs[@]}" env BIN="$BIN" DATA="$DIR/data" HTTP_BASE=8191 NATS_BASE=4391 ROUTE_BASE=6391 \
		GATEWAY_FLAGS="${mercure[*]}" deployments/local/cluster.sh mesh >"$DIR/cluster.out" 2>&1 &
	pid=$!
	;;
*)
	echo "TOPOLOGY must be single or mesh" >&2
	exit 2
	;;
esac

ready() { for u in ${urls//,/ }; do curl -sf "$u/readyz" >/dev/null || return 1; done; }
for _ in $(seq 1 120); do ready && break; sleep 0.5; done
ready || { echo "the gateways did not become ready"; cat "$DIR"/*.log "$DIR"/*.out 2>/dev/null; exit 1; }
if [ "$TOPOLOGY" = mesh ]; then
	gateways=$(pgrep -P "$pid" | paste -sd, -) # cluster.sh's children: the three gateways
	sleep "${SETTLE:-20}"
else
	sleep "${SETTLE:-5}"
fi

# cutoffs: listeners the gateways have cut off for falling behind, so far
# (a subscriber cut off loses the rest of the run).
cutoffs() {
	local n=0 u v
	for u in ${urls//,/ }; do
		v=$(curl -sf "$u/metrics" | awk '/^chat_slow_client_disconnects_total/ {print $2}')
		n=$((n + ${v:-0}))
	done
	echo "$n"
}

bench() { # endpoint scenario round chat-bench-args...
	local endpoint=$1 scenario=$2 round=$3 before line
	shift 3
	local extra=(--client-ts)
	[ "$endpoint" = mercure ] && extra=(--mercure --mercure-secret-file "$DIR/mercure.secret")
	echo "round $round: $scenario through $endpoint" >&2
	before=$(cutoffs)
	line=$("${procs[@]}" "$BIN/chat-bench" "$@" --urls "$urls" --pid "$gateways" --duration "$DURATION" "${extra[@]}" | tail -n 1)
	echo "$line" | sed "s/^{/{\"endpoint\":\"$endpoint\",\"scenario\":\"$scenario\",\"round\":$round,\"cutoffs\":$(($(cutoffs) - before)),/" >>"$OUT"
	sleep 2 # let the gateways settle between runs
}

for round in $(seq 1 "$RUNS"); do
	order=(rooms mercure)
	((round % 2 == 0)) && order=(mercure rooms)
	for scenario in fanout loaded latency; do
		for endpoint in "${order[@]}"; do
			case $scenario in
			fanout) bench "$endpoint" fanout "$round" fanout --subs "$SUBS" --rate "$RATE" --drain 15s ;;
			loaded) bench "$endpoint" loaded "$round" fanout --subs "$SUBS" --rate 100 --drain 15s ;;
			latency) bench "$endpoint" latency "$round" latency --rate 200 ;;
			esac
		done
	done
done

# median ENDPOINT SCENARIO FIELD: the median of FIELD over those runs.
median() {
	grep "\"endpoint\":\"$1\"" "$OUT" | grep "\"scenario\":\"$2\"" | grep -o "\"$3\":[0-9.e+-]*" | cut -d: -f2 |
		sort -g | awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
# runs ENDPOINT SCENARIO FIELD: FIELD of those runs, in their order.
runs() {
	grep "\"endpoint\":\"$1\"" "$OUT" | grep "\"scenario\":\"$2\"" | grep -o "\"$3\":[0-9.e+-]*" | cut -d: -f2 | paste -sd/ -
}
echo "| scenario | endpoint | deliveries/s | p50 / p99 / p999 ms | gateway CPU per message | lost, by run | cut off, by run |"
echo "|---|---|---|---|---|---|---|"
for scenario in fanout loaded latency; do
	for endpoint in rooms mercure; do
		printf '| %s | %s | %.0f | %.2f / %.2f / %.2f | %.0f µs | %s | %s |\n' "$scenario" "$endpoint" \
			"$(median "$endpoint" "$scenario" deliveries_per_sec)" \
			"$(median "$endpoint" "$scenario" p50_ms)" "$(median "$endpoint" "$scenario" p99_ms)" \
			"$(median "$endpoint" "$scenario" p999_ms)" "$(median "$endpoint" "$scenario" cpu_us_per_op)" \
			"$(runs "$endpoint" "$scenario" lost)" "$(runs "$endpoint" "$scenario" cutoffs)"
	done
done
echo "every run: $OUT" >&2
