#!/usr/bin/env bash
# Measures what identities cost (`make bench-auth`): a fresh single-node
# gateway per run with --auth off, then --auth jwt with an HS256 secret,
# then with an RS256 public key, alternated RUNS times, each driven by
# chat-bench with a token of its kind:
#
#   publish   50 concurrent publishers for DURATION: stored messages/s, p50/p99,
#             and the gateway's CPU time per publish
#   connect   CONNS SSE listeners opened: the gateway's CPU time per connection
#             and its memory per connection
#
# and prints the medians per mode as a Markdown table (every run in $OUT).
# The CPU time per operation is read from /proc/<pid>/stat: on a shared
# machine it moves far less than a rate does.
#
# Environment: BIN (default bin), RUNS (default 3), DURATION (default 10s),
# CONNS (default 5000), OUT (default a temporary file). Needs openssl for
# the RSA key.
set -euo pipefail
BIN=${BIN:-bin}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-5000}
DIR=$(mktemp -d)
OUT=${OUT:-$DIR/runs.jsonl}
pid=""
stop() {
	trap - INT TERM EXIT
	[ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	rm -rf "$DIR/data"
}
trap stop INT TERM EXIT
command -v openssl >/dev/null || { echo "bench-auth needs openssl (apt-get install -y openssl)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

head -c 32 /dev/urandom | base64 >"$DIR/hs.secret"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/rs.key" 2>/dev/null
openssl pkey -in "$DIR/rs.key" -pubout -out "$DIR/rs.pub"
tok() { "$BIN/chat-gateway" token --sub bench --publish '*' --subscribe '*' --ttl 2h "$@"; }
tok --secret-file "$DIR/hs.secret" >"$DIR/hs.token"
tok --private-key-file "$DIR/rs.key" >"$DIR/rs.token"

flags() {
	case $1 in
	off) echo "--auth off" ;;
	hs256) echo "--auth jwt --auth-jwt-secret-file $DIR/hs.secret" ;;
	rs256) echo "--auth jwt --auth-jwt-key-file $DIR/rs.pub" ;;
	esac
}
token() {
	case $1 in
	off) echo "" ;;
	hs256) echo "$DIR/hs.token" ;;
	rs256) echo "$DIR/rs.token" ;;
	esac
}

run() { # mode round
	local mode=$1 url=http://127.0.0.1:8096
	rm -rf "$DIR/data"
	# shellcheck disable=SC2046 # the flags are words
	"$BIN/chat-gateway" --node-name "auth-$mode" --http-addr 127.0.0.1:8096 --nats-listen off \
		--data-dir "$DIR/data" --services off --log-level warn $(flags "$mode") >"$DIR/$mode.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
	curl -sf "$url/readyz" >/dev/null || { echo "the $mode gateway did not become ready"; cat "$DIR/$mode.log"; exit 1; }
	for what in publish idle; do
		local extra=(--concurrency 50 --duration "$DURATION")
		[ "$what" = idle ] && extra=(--conns "$CONNS" --settle 1s)
		"$BIN/chat-bench" "$what" --urls "$url" --pid "$pid" --token-file "$(token "$mode")" "${extra[@]}" |
			tail -n 1 | sed "s/^{/{\"auth\":\"$mode\",\"round\":$2,/" >>"$OUT"
	done
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
}

for round in $(seq 1 "$RUNS"); do
	for mode in off hs256 rs256; do
		echo "round $round: $mode" >&2
		run "$mode" "$round"
	done
done

# median MODE KIND FIELD: the median of FIELD over MODE's runs of KIND.
median() {
	grep "\"auth\":\"$1\"" "$OUT" | grep "\"mode\":\"$2\"" | grep -o "\"$3\":[0-9.e+-]*" | cut -d: -f2 |
		sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
echo "| auth | publishes/s | publish p50 / p99 ms | gateway CPU per publish | gateway CPU per connect | memory per connection |"
echo "|---|---|---|---|---|---|"
for mode in off hs256 rs256; do
	printf '| %s | %.0f | %.2f / %.2f | %.1f µs | %.1f µs | %.1f KB |\n' "$mode" \
		"$(median "$mode" publish publishes_per_sec)" "$(median "$mode" publish p50_ms)" "$(median "$mode" publish p99_ms)" \
		"$(median "$mode" publish cpu_us_per_op)" "$(median "$mode" idle cpu_us_per_op)" "$(median "$mode" idle kb_per_conn)"
done
echo "every run: $OUT" >&2
