#!/usr/bin/env bash
# Runs a local ChatScalable cluster in the foreground, and kills or
# restarts one of its nodes from another terminal to watch a failover.
#
#   cluster.sh mesh        3 chat-gateway nodes, each embedding a NATS node, joined as a peer
#                          mesh, each running a replica of the presence and rooms services
#   cluster.sh brokers     3 chat-broker nodes, 2 stateless chat-gateway nodes, 2 chat-presence
#                          replicas and 1 chat-rooms
#   cluster.sh kill NODE   kill -9 one node of the running cluster (NODE: 2, gw-2, broker-2)
#   cluster.sh start NODE  start that node again, with the same flags and data
#   cluster.sh status      which nodes of the running cluster are up
#
# A node that dies leaves the others running; Ctrl-C (or SIGTERM) stops every
# node, restarted ones included, and exits 0. The nodes run in sessions of
# their own, so a Ctrl-C reaches this script, which stops them in order,
# rather than every node at once.
#
# Environment: BIN (binaries, default bin), DATA (data folder, default
# data/cluster; kill, start and status find the running cluster among
# data/mesh, data/brokers and data/cluster when DATA is not set), HTTP_BASE
# (first HTTP port, default 8081), NATS_BASE (first NATS client port, default
# 4231, clear of the quickstart's 4222), ROUTE_BASE (first route port,
# default 6231), MONITOR_BASE (first monitoring port of the brokers, default
# 8231), GATEWAY_FLAGS (more flags of every chat-gateway, split on spaces,
# e.g. "--mercure --mercure-jwt-secret-file F").
#
# NATS credentials are made once in DATA/secrets (secrets.sh): the routes'
# password for both; for the brokers also a password per role, which the
# gateways (gateway), services (service) and the nats CLI (reader, admin) log
# in with. The mesh's client listeners are on loopback, open to anonymous
# clients like the quickstart's. DATA/run holds each node's command line and
# pid, which kill and start use.
set -euo pipefail

here=$(dirname "$0")
mode=${1:-mesh}
BIN=${BIN:-bin}
HTTP_BASE=${HTTP_BASE:-8081}
NATS_BASE=${NATS_BASE:-4231}
ROUTE_BASE=${ROUTE_BASE:-6231}
MONITOR_BASE=${MONITOR_BASE:-8231}

# running PID: whether process PID runs (a zombie, ended but not yet
# reaped, does not).
running() {
	local st
	read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" || return 1
	[ "$st" != Z ]
}
# alive PIDFILE: whether the process whose pid is in PIDFILE runs.
alive() { [ -s "$1" ] && running "$(cat "$1")"; }

# find_data: the DATA of the running cluster, for kill, start and status.
find_data() {
	if [ -n "${DATA:-}" ]; then
		echo "$DATA"
		return
	fi
	local d found=()
	for d in data/mesh data/brokers data/cluster; do
		alive "$d/run/supervisor.pid" && found+=("$d")
	done
	case ${#found[@]} in
	1) echo "${found[0]}" ;;
	0)
		echo "no running cluster found in data/mesh, data/brokers or data/cluster (start one with make cluster, or set DATA)" >&2
		exit 1
		;;
	*)
		echo "several clusters run (${found[*]}): set DATA to the one meant" >&2
		exit 1
		;;
	esac
}

# node_name RUN NODE: the node's name (2 → gw-2 or broker-2, as the cluster has it).
node_name() {
	local run=$1 node=$2 kind
	if [[ $node =~ ^[0-9]+$ ]]; then
		kind=gw
		[ "$(cat "$run/mode")" = brokers ] && kind=broker
		node="$kind-$node"
	fi
	if [ ! -f "$run/$node.cmd" ]; then
		echo "no node $node in this cluster; it has: $(cd "$run" && ls -- *.cmd | sed 's/\.cmd$//' | tr '\n' ' ')" >&2
		exit 2
	fi
	echo "$node"
}

# launch RUN NAME: start the node whose command line is in RUN/NAME.cmd in a
# session of its own, its output appended to its log, and record its pid.
launch() {
	local run=$1 name=$2 cmd
	cmd=$(cat "$run/$name.cmd")
	# The command line was written with printf %q by this script.
	eval "setsid $cmd >>\"\$run/../\$name.log\" 2>&1 </dev/null &"
	echo $! >"$run/$name.pid"
	disown $! # this script reports a node's end itself
	echo "started $name (pid $!), log $(dirname "$run")/$name.log"
}

case "$mode" in
kill | start | status)
	DATA=$(find_data)
	run="$DATA/run"
	if [ "$mode" = status ]; then
		for f in "$run"/*.cmd; do
			name=$(basename "$f" .cmd)
			if alive "$run/$name.pid"; then echo "$name up (pid $(cat "$run/$name.pid"))"; else echo "$name down"; fi
		done
		exit 0
	fi
	[ $# -eq 2 ] || {
		echo "usage: $0 $mode NODE (a number, or a name such as gw-2)" >&2
		exit 2
	}
	name=$(node_name "$run" "$2")
	if [ "$mode" = kill ]; then
		alive "$run/$name.pid" || {
			echo "$name is not running" >&2
			exit 1
		}
		kill -KILL "$(cat "$run/$name.pid")"
		echo "killed $name (pid $(cat "$run/$name.pid")) with SIGKILL"
	else
		if alive "$run/$name.pid"; then
			echo "$name already runs (pid $(cat "$run/$name.pid"))" >&2
			exit 1
		fi
		launch "$run" "$name"
	fi
	exit 0
	;;
mesh | brokers) ;;
*)
	echo "usage: $0 mesh|brokers|kill NODE|start NODE|status" >&2
	exit 2
	;;
esac

DATA=${DATA:-data/cluster}
run="$DATA/run"
if alive "$run/supervisor.pid"; then
	echo "a cluster already runs with data in $DATA (pid $(cat "$run/supervisor.pid")); stop it first" >&2
	exit 1
fi
read -ra gateway_flags <<<"${GATEWAY_FLAGS:-}"
rm -rf "$run"
mkdir -p "$run"
echo "$mode" >"$run/mode"
echo $$ >"$run/supervisor.pid"

stop() {
	trap - INT TERM EXIT
	# Clients first (gateways, services), then the brokers they use: a
	# gateway that drains its connection to brokers already gone waits.
	local f pid
	for kind in clients brokers; do
		local pids=()
		for f in "$run"/*.pid; do
			[ "$f" = "$run/supervisor.pid" ] && continue
			case "$(basename "$f")" in broker-*) [ $kind = brokers ] || continue ;; *) [ $kind = clients ] || continue ;; esac
			alive "$f" && pids+=("$(cat "$f")")
		done
		((${#pids[@]})) || continue
		echo "stopping ${#pids[@]} processes"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		# They are not all children of this shell (a node started again
		# with "start" is not), so wait by polling, for at most 30 s.
		for _ in $(seq 1 300); do
			local left=0
			for pid in "${pids[@]}"; do running "$pid" && left=1; done
			((left)) || break
			sleep 0.1
		done
	done
	rm -f "$run/supervisor.pid"
	echo "stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

routes=""
for i in 0 1 2; do
	routes+="${routes:+,}nats://127.0.0.1:$((ROUTE_BASE + i))"
done

# node NAME ARGS...: record a node's command line and start it.
names=()
node() {
	local name=$1
	shift
	printf '%q ' "$@" >"$run/$name.cmd"
	names+=("$name")
	launch "$run" "$name"
}

secrets="$DATA/secrets"
"$here/secrets.sh" "$secrets" >/dev/null
case "$mode" in
mesh)
	for i in 0 1 2; do
		name="gw-$((i + 1))"
		node "$name" "$BIN/chat-gateway" \
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
		node "$name" "$BIN/chat-broker" \
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
		node "$name" "$BIN/chat-gateway" \
			--node-name "$name" \
			--http-addr "127.0.0.1:$((HTTP_BASE + i))" \
			--nats-url "$urls" --nats-user gateway --nats-password-file "$secrets/nats_gateway_password" "${gateway_flags[@]}"
	done
	# Two presence replicas (one announces, both answer) and one directory.
	service=(--nats-url "$urls" --nats-user service --nats-password-file "$secrets/nats_service_password")
	node presence-1 "$BIN/chat-presence" "${service[@]}"
	node presence-2 "$BIN/chat-presence" "${service[@]}"
	node rooms "$BIN/chat-rooms" "${service[@]}"
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
esac
env_prefix=""
[ "$DATA" != data/mesh ] && [ "$DATA" != data/brokers ] && [ "$DATA" != data/cluster ] && env_prefix="DATA=$DATA "
echo
echo "Watch a failover from another terminal:"
echo "  ${env_prefix}$0 kill 2     # kill -9 node 2; the others go on"
echo "  ${env_prefix}$0 start 2    # start it again; it catches up"
echo "  ${env_prefix}$0 status"
echo "Press Ctrl-C to stop them all."

# Report nodes that end and come back; never stop the others for it.
# shown[NAME] is the pid last reported up, or empty once reported ended; a
# pid that changed between two looks (killed and started again within
# one) is reported as both.
declare -A shown
for name in "${names[@]}"; do shown[$name]=$(cat "$run/$name.pid"); done
while true; do
	for name in "${names[@]}"; do
		pid=$(cat "$run/$name.pid")
		if alive "$run/$name.pid"; then
			[ "${shown[$name]}" = "$pid" ] && continue
			[ -n "${shown[$name]}" ] && echo "$name ended; the others go on (log $DATA/$name.log)"
			echo "$name is up again (pid $pid)"
			shown[$name]=$pid
		elif [ -n "${shown[$name]}" ]; then
			shown[$name]=""
			echo "$name ended; the others go on (log $DATA/$name.log). Start it again: ${env_prefix}$0 start $name"
		fi
	done
	sleep 0.5 &
	wait $! || true # wait, unlike sleep, lets a Ctrl-C through at once
done
