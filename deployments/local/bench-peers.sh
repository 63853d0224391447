#!/usr/bin/env bash
# Measures ChatScalable and its peers side by side in one run
# (`make bench-peers`): one single-node gateway (embedded NATS, JetStream
# history), one Centrifugo v6 (memory engine, no history, uni_sse
# endpoint, HTTP publish API) and one Mercure.rocks hub (local transport,
# no history), driven by the same load generator (chat-bench) one system
# after the other, the order rotated each round (each system goes first in
# turn) so all see the same noise of a shared machine:
#
#   fanout-100k  1,000 subscribers, 100 msg/s (100,000 deliveries/s): p50/p99
#   fanout-1m    1,000 subscribers, 1,000 msg/s (1,000,000 deliveries/s offered)
#   latency      one listener, 200 msg/s: p50/p99
#   publish      publish ingest, 50 concurrent publishers (ours: 201 = stored
#                in JetStream; Centrifugo: 200 = accepted, nothing stored)
#   idle         memory per SSE connection, 10,000 connections, on a fresh
#                server process each round
#   room-10k     10,000 listeners in one room at 10 msg/s (100,000
#                deliveries/s)
#   rooms-5k     5,000 rooms × 2 listeners, 1,000 msg/s taking the rooms in
#                turn (BIG=0 skips both)
#
# Latency is measured from the publisher's clock before it sends, for all
# (ours with chat-bench --client-ts; the peers' data carries it), so it
# counts the publish request's way in too. Every server runs with Go's
# default GOMAXPROCS (all the machine's cores), and the load generator
# shares those cores with it. The medians, every run, the machine and the
# ratios ours/peer go into docs/BENCHMARKS.md between the peers markers
# (chat-bench peers-report); every run's JSON is in $OUT.
#
# Environment: BIN (default bin), RUNS (default 3), DURATION (default 4s),
# CENTRIFUGO (default tools/bin/centrifugo), MERCURE (default
# tools/bin/mercure; MERCURE= leaves Mercure out), PORT_BASE (default
# 18100: the script uses PORT_BASE+1 … +6 on 127.0.0.1), BIG (default 1),
# OUT (default a temporary file), REPORT (default docs/BENCHMARKS.md),
# SCENARIOS (default all: a space-separated subset of fanout-100k fanout-1m
# latency publish room-10k rooms-5k idle sweep, e.g. SCENARIOS=publish
# REPORT=/tmp/publish.md to repeat one figure without the rest).
set -euo pipefail
BIN=${BIN:-bin}
RUNS=${RUNS:-3}
DURATION=${DURATION:-4s}
CENTRIFUGO=${CENTRIFUGO:-tools/bin/centrifugo}
MERCURE=${MERCURE-tools/bin/mercure}
PORT_BASE=${PORT_BASE:-18100}
BIG=${BIG:-1}
REPORT=${REPORT:-docs/BENCHMARKS.md}
SCENARIOS=${SCENARIOS:-fanout-100k fanout-1m latency publish room-10k rooms-5k idle sweep}
# wanted SCENARIO: whether SCENARIOS names it.
wanted() { [[ " $SCENARIOS " == *" $1 "* ]]; }
DIR=$(mktemp -d)
OUT=${OUT:-$DIR/runs.jsonl}
pids=()
stop() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DIR/data"
}
trap stop INT TERM EXIT
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 25000 ] || echo "warning: ulimit -n is $(ulimit -n); the 10,000-connection scenarios need about 21,000" >&2

[ -x "$CENTRIFUGO" ] || { echo "no Centrifugo at $CENTRIFUGO: run make tools/bin/centrifugo" >&2; exit 1; }
[ -z "$MERCURE" ] || [ -x "$MERCURE" ] || { echo "no Mercure hub at $MERCURE: run make tools/bin/mercure (or MERCURE= to leave it out)" >&2; exit 1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)

# Centrifugo's config: keys made for this run, the memory engine (its
# default) and no history (no channel options enable it), uni_sse on, no
# usage statistics sent out.
secret=$(head -c 32 /dev/urandom | base64)
apikey=$(head -c 24 /dev/urandom | base64)
centrifugo_config() { # port
	cat <<EOF
{
  "log": {"level": "error"},
  "http_server": {"address": "127.0.0.1", "port": $1},
  "engine": {"type": "memory"},
  "client": {"token": {"hmac_secret_key": "$secret"}},
  "http_api": {"key": "$apikey"},
  "uni_sse": {"enabled": true},
  "health": {"enabled": true},
  "usage_stats": {"disabled": true}
}
EOF
}

# The Mercure hub's Caddyfile: HS256 tokens with the key of this run, the
# local transport (no history), no admin endpoint, plain HTTP.
head -c 32 /dev/urandom | base64 >"$DIR/mercure.secret"
mercure_config() { # port
	cat <<EOF
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:$1 {
	mercure {
		transport local
		publisher_jwt {env.MERCURE_KEY}
		subscriber_jwt {env.MERCURE_KEY}
	}
	respond "Not Found" 404
}
EOF
}

# start_ours NAME PORT, start_centrifugo NAME PORT, start_mercure NAME
# PORT: start a server in the background and set $started_pid; ready URL
# PATH NAME waits for it.
start_ours() {
	"$BIN/chat-gateway" --node-name "$1" --http-addr "127.0.0.1:$2" --nats-listen off \
		--data-dir "$DIR/data/$1" --services off --log-level warn >"$DIR/$1.log" 2>&1 &
	started_pid=$!
	pids+=("$started_pid")
	ready "http://127.0.0.1:$2" /readyz "$1"
}
start_centrifugo() {
	centrifugo_config "$2" >"$DIR/$1.json"
	"$CENTRIFUGO" --config "$DIR/$1.json" >"$DIR/$1.log" 2>&1 &
	started_pid=$!
	pids+=("$started_pid")
	ready "http://127.0.0.1:$2" /health "$1"
}
start_mercure() {
	mercure_config "$2" >"$DIR/$1.Caddyfile"
	MERCURE_KEY=$(cat "$DIR/mercure.secret") XDG_DATA_HOME="$DIR/data/$1" XDG_CONFIG_HOME="$DIR/data/$1" \
		"$MERCURE" run --config "$DIR/$1.Caddyfile" --adapter caddyfile >"$DIR/$1.log" 2>&1 &
	started_pid=$!
	pids+=("$started_pid")
	# The hub answers 401 to a subscriber without a token once it is up.
	for _ in $(seq 1 120); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/.well-known/mercure?topic=x")" = 401 ] && return 0
		sleep 0.25
	done
	echo "$1 did not become ready" >&2
	cat "$DIR/$1.log" >&2
	exit 1
}
ready() { # url path name
	for _ in $(seq 1 120); do
		curl -sf "$1$2" >/dev/null && return 0
		sleep 0.25
	done
	echo "$3 did not become ready at $1" >&2
	cat "$DIR/$3.log" >&2
	exit 1
}
# stop_pid PID: stop one server of ours and forget it.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
	pids=("${keep[@]}")
}

ours_url=http://127.0.0.1:$((PORT_BASE + 1))
peer_url=http://127.0.0.1:$((PORT_BASE + 2))
start_ours ours $((PORT_BASE + 1))
ours_pid=$started_pid
start_centrifugo centrifugo $((PORT_BASE + 2))
peer_pid=$started_pid
"$CENTRIFUGO" version
systems=(ChatScalable Centrifugo)
if [ -n "$MERCURE" ]; then
	mercure_url=http://127.0.0.1:$((PORT_BASE + 3))
	start_mercure mercure $((PORT_BASE + 3))
	mercure_pid=$started_pid
	systems+=(Mercure)
fi
sleep 3 # let them settle after start

# --system and --jsonl, where this chat-bench has them (a later one does).
"$BIN/chat-bench" fanout --help 2>&1 | grep -q -- '-system' && tag_support=1 || tag_support=0
# args SYSTEM: the chat-bench arguments that point at SYSTEM.
args() {
	case $1 in
	ChatScalable) echo "--urls $ours_url --pid $ours_pid" ;;
	Centrifugo) echo "--urls $peer_url --pid $peer_pid --centrifugo --centrifugo-config $DIR/centrifugo.json" ;;
	Mercure) echo "--urls $mercure_url --pid $mercure_pid --mercure --mercure-secret-file $DIR/mercure.secret" ;;
	esac
}
# bench SYSTEM SCENARIO ROUND chat-bench-args…: one bounded run, appended to $OUT.
bench() {
	local system=$1 scenario=$2 round=$3 line extra=()
	shift 3
	wanted "$scenario" || return 0
	[ "$system" = ChatScalable ] && [ "$1" != publish ] && [ "$1" != idle ] && extra=(--client-ts)
	[ "$tag_support" = 1 ] && extra+=(--system "$system" --jsonl "$DIR/bench.jsonl")
	echo "round $round: $scenario on $system" >&2
	# shellcheck disable=SC2046 # args is a list of words without spaces
	if ! line=$(timeout 240 "$BIN/chat-bench" "$@" $(args "$system") "${extra[@]}" | tail -n 1); then
		echo "  failed: $scenario on $system (round $round)" >&2
		return 0
	fi
	echo "  $line" >&2
	echo "{\"system\":\"$system\",\"scenario\":\"$scenario\",\"round\":$round,\"result\":$line}" >>"$OUT"
	sleep 1 # let the server settle between runs
}
# idle_bench SYSTEM ROUND: idle memory on a fresh server process.
idle_bench() {
	local system=$1 round=$2 pid extra=()
	wanted idle || return 0
	[ "$tag_support" = 1 ] && extra=(--system "$system" --jsonl "$DIR/bench.jsonl")
	echo "round $round: idle on a fresh $system" >&2
	case $system in
	ChatScalable)
		start_ours "idle-$round" $((PORT_BASE + 4))
		set -- --urls "http://127.0.0.1:$((PORT_BASE + 4))"
		;;
	Centrifugo)
		start_centrifugo "idle-$round" $((PORT_BASE + 5))
		set -- --urls "http://127.0.0.1:$((PORT_BASE + 5))" --centrifugo --centrifugo-config "$DIR/idle-$round.json"
		;;
	Mercure)
		start_mercure "idle-$round" $((PORT_BASE + 6))
		set -- --urls "http://127.0.0.1:$((PORT_BASE + 6))" --mercure --mercure-secret-file "$DIR/mercure.secret"
		;;
	esac
	pid=$started_pid
	sleep 2
	local line
	if line=$(timeout 240 "$BIN/chat-bench" idle "$@" --pid "$pid" --conns 10000 --workers 2 "${extra[@]}" | tail -n 1); then
		echo "  $line" >&2
		echo "{\"system\":\"$system\",\"scenario\":\"idle\",\"round\":$round,\"result\":$line}" >>"$OUT"
	else
		echo "  failed: idle on $system (round $round)" >&2
	fi
	stop_pid "$pid"
	rm -rf "$DIR/data/idle-$round"
}

# ---- the rate sweep (issue 15, point 1) -----------------------------------
# Runs only with a chat-bench that has the sweep mode: p99 against
# deliveries/s for each system, drawn with chat-bench plot.
sweep_peers() {
	wanted sweep || return 0
	if ! "$BIN/chat-bench" sweep --help >/dev/null 2>&1; then
		echo "sweep: skipped, this chat-bench has no sweep mode (chat-bench sweep --help failed)" >&2
		return 0
	fi
	local system
	for system in "${systems[@]}"; do
		echo "sweep on $system" >&2
		# shellcheck disable=SC2046
		timeout 300 "$BIN/chat-bench" sweep $(args "$system") --subs 1000 \
			--steps 100000,500000,1000000,2000000,3000000 --step-duration 3s \
			--system "$system" --jsonl "$DIR/sweep.jsonl" >&2 || echo "sweep on $system failed" >&2
	done
	if "$BIN/chat-bench" plot --help >/dev/null 2>&1 && [ -s "$DIR/sweep.jsonl" ]; then
		"$BIN/chat-bench" plot --in "$DIR/sweep.jsonl" --out docs/bench-peers-sweep.svg >&2 || echo "plot failed" >&2
	fi
}
# ---------------------------------------------------------------------------

for round in $(seq 1 "$RUNS"); do
	# Rotate: each system goes first in turn.
	n=${#systems[@]}
	order=()
	for i in $(seq 0 $((n - 1))); do order+=("${systems[$(((round - 1 + i) % n))]}"); done
	for system in "${order[@]}"; do
		bench "$system" fanout-100k "$round" fanout --subs 1000 --rate 100 --duration "$DURATION" --drain 5s
		bench "$system" fanout-1m "$round" fanout --subs 1000 --rate 1000 --duration "$DURATION" --drain 5s
		bench "$system" latency "$round" latency --rate 200 --duration "$DURATION"
		bench "$system" publish "$round" publish --concurrency 50 --duration "$DURATION"
		if [ "$BIG" = 1 ]; then
			bench "$system" room-10k "$round" fanout --subs 10000 --rate 10 --duration "$DURATION" --drain 5s
			bench "$system" rooms-5k "$round" fanout --subs 10000 --rooms 5000 --rate 1000 --duration "$DURATION" --drain 5s
		fi
		idle_bench "$system" "$round"
	done
done
sweep_peers

took=$(($(date +%s) - started))
mercure_note=""
[ -n "$MERCURE" ] && mercure_note=" Mercure.rocks hub $("$MERCURE" list-modules --versions 2>/dev/null | awk '$1 == "http.handlers.mercure" {print $2}') (Caddy $("$MERCURE" version 2>/dev/null | cut -d' ' -f1)) with the local transport (no history)."
note="All servers on loopback with Go's default GOMAXPROCS; the load generator (chat-bench) shares the cores. ChatScalable: one gateway with embedded NATS and JetStream history (R1). Centrifugo $("$CENTRIFUGO" version 2>/dev/null | awk '{print $2; exit}') with the memory engine and no history.$mercure_note $RUNS rounds, $DURATION per run, each system first in turn; the run took ${took} s. Load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
"$BIN/chat-bench" peers-report --in "$OUT" --out "$REPORT" --note "$note"
echo "every run: $OUT" >&2
