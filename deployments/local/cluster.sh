#!/usr/bin/env bash
# Runs a local ChatScalable cluster in the foreground; Ctrl-C stops every
# process it started.
#
#   cluster.sh mesh     3 chat-gateway nodes, each embedding a NATS node, joined as a peer
#                       mesh, each running a replica of the presence and rooms services
#   cluster.sh brokers  3 chat-broker nodes, 2 stateless chat-gateway nodes, 2 chat-presence
#                       replicas and 1 chat-rooms
#
# Environment: BIN (binaries, default bin), DATA (data folder, default
# data/cluster), HTTP_BASE (first HTTP port, default 8081), NATS_BASE (first
# NATS client port, default 4221), ROUTE_BASE (first route port, default 6221),
# GATEWAY_FLAGS (more flags of every chat-gateway, split on spaces, e.g.
# "--mercure --mercure-jwt-secret-file F").
#
# NATS credentials are made once in DATA/secrets (secrets.sh): the routes'
# password for both; for the brokers also a password per role, which the
# gateways (gateway), services (service) and the nats CLI (reader, admin) log
# in with. The mesh's client listeners are on loopback, open to anonymous
# clients like the quickstart's.
set -euo pipefail

mode=${1:-mesh}
BIN=${BIN:-bin}
DATA=${DATA:-data/cluster}
HTTP_BASE=${HTTP_BASE:-8081}
NATS_BASE=${NATS_BASE:-4221}
ROUTE_BASE=${ROUTE_BASE:-6221}
MONITOR_BASE=${MONITOR_BASE:-8221}

read -ra gateway_flags <<<"${GATEWAY_FLAGS:-}"

pids=()
stop() {
	trap - INT TERM EXIT
	if ((${#pids[@]})); then
		echo "stopping ${#pids[@]} processes"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	echo "stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

routes=""
for i in 0 1 2; do
	routes+="${routes:+,}nats://127.0.0.1:$((ROUTE_BASE + i))"
done

# start NAME LOG BINARY ARGS... runs a process in the background, its output
# in LOG.
start() {
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	pids+=($!)
	echo "started $name (pid $!), log $log"
}

mkdir -p "$DATA"
secrets="$DATA/secrets"
"$(dirname "$0")/secrets.sh" "$secrets" >/dev/null
case "$mode" in
mesh)
	for i in 0 1 2; do
		name="gw-$((i + 1))"
		start "$name" "$DATA/$name.log" "$BIN/chat-gateway" \
			--node-name "$name" \
			--http-addr "127.0.0.1:$((HTTP_BASE + i))" \
			--nats-listen "127.0.0.1:$((NATS_BASE + i))" \
			--cluster-listen "127.0.0.1:$((ROUTE_BASE + i))" \
			--cluster-routes "$routes" \
			--cluster-password-file "$secrets/nats_cluster_password" \
			--data-dir "$DATA/$name" "${gateway_flags[@]}"
	done
	echo
	echo "ChatScalable peer mesh of 3 gateway nodes:"
	for i in 0 1 2; do
		echo "  gw-$((i + 1))  http://localhost:$((HTTP_BASE + i))   nats://127.0.0.1:$((NATS_BASE + i))"
	done
	;;
brokers)
	urls=""
	for i in 0 1 2; do
		name="broker-$((i + 1))"
		urls+="${urls:+,}nats://127.0.0.1:$((NATS_BASE + i))"
		start "$name" "$DATA/$name.log" "$BIN/chat-broker" \
			--node-name "$name" \
			--client-listen "127.0.0.1:$((NATS_BASE + i))" \
			--cluster-listen "127.0.0.1:$((ROUTE_BASE + i))" \
			--cluster-routes "$routes" \
			--monitor-listen "127.0.0.1:$((MONITOR_BASE + i))" \
			--gateway-password-file "$secrets/nats_gateway_password" \
			--service-password-file "$secrets/nats_service_password" \
			--reader-password-file "$secrets/nats_reader_password" \
			--admin-password-file "$secrets/nats_admin_password" \
			--cluster-password-file "$secrets/nats_cluster_password" \
			--data-dir "$DATA/$name"
	done
	for i in 0 1; do
		name="gw-$((i + 1))"
		start "$name" "$DATA/$name.log" "$BIN/chat-gateway" \
			--node-name "$name" \
			--http-addr "127.0.0.1:$((HTTP_BASE + i))" \
			--nats-url "$urls" --nats-user gateway --nats-password-file "$secrets/nats_gateway_password" "${gateway_flags[@]}"
	done
	# Two presence replicas (one announces, both answer) and one directory.
	service=(--nats-url "$urls" --nats-user service --nats-password-file "$secrets/nats_service_password")
	start presence-1 "$DATA/presence-1.log" "$BIN/chat-presence" "${service[@]}"
	start presence-2 "$DATA/presence-2.log" "$BIN/chat-presence" "${service[@]}"
	start rooms "$DATA/rooms.log" "$BIN/chat-rooms" "${service[@]}"
	echo
	echo "ChatScalable: 3 brokers and 2 stateless gateways:"
	for i in 0 1 2; do
		echo "  broker-$((i + 1))  nats://127.0.0.1:$((NATS_BASE + i))   monitor http://127.0.0.1:$((MONITOR_BASE + i))"
	done
	for i in 0 1; do
		echo "  gw-$((i + 1))      http://localhost:$((HTTP_BASE + i))"
	done
	echo "  chat-presence ×2, chat-rooms ×1"
	echo "  nats CLI: --user reader --password \$(cat $secrets/nats_reader_password) (nats sub 'chat.room.>')"
	echo "            --user admin --password \$(cat $secrets/nats_admin_password) (nats micro ls)"
	;;
*)
	echo "usage: $0 mesh|brokers" >&2
	exit 2
	;;
esac
echo
echo "Press Ctrl-C to stop them all."
# Any process ending stops the cluster, so nothing is left half running.
wait -n "${pids[@]}" || true
echo "a process ended on its own; see its log in $DATA"
exit 1
