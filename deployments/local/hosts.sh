#!/usr/bin/env bash
# A 3-node peer mesh on three "hosts" of this machine: each chat-gateway (with
# its embedded NATS node) runs in a Linux network namespace of its own, with
# its own address on a bridge, so you can cut the network between them and
# watch the chat go on. Run as root.
#
#   hosts.sh up            create bridge csbr250 (10.231.250.0/24, this machine is .1),
#                          namespaces cs250-n1..n3 (10.231.250.11..13) and start gw-1..gw-3
#   hosts.sh isolate NODE  cut NODE (n1, n2 or n3) off from the two others (iptables DROP
#                          rules inside the namespaces; this machine still reaches it)
#   hosts.sh cut A B       cut the link between A and B only
#   hosts.sh heal          lift every cut
#   hosts.sh status        each node's /readyz and what it is cut from
#   hosts.sh down          stop the gateways and remove everything up made
#
# Environment: BIN (binaries, default bin: make build), DATA (logs, data and
# secrets, default data/hosts). The Go tests of the same faults are in
# e2e/hoststest (docs/RELIABILITY.md).
set -euo pipefail

BIN=${BIN:-bin}
DATA=${DATA:-data/hosts}
N=250
BR=csbr$N
NET=10.231.$N
NODES=(n1 n2 n3)
HTTP_PORT=8080
NATS_PORT=4222
ROUTE_PORT=6222

ip_of() { echo "$NET.$((10 + ${1#n}))"; }
ns_of() { echo "cs$N-$1"; }
forward_rule() { echo "FORWARD -i $BR -o $BR -m comment --comment chatscalable-hosts -j ACCEPT"; }

need_root() {
	[ "$(id -u)" = 0 ] || { echo "hosts.sh needs root (network namespaces, bridge, iptables)" >&2; exit 1; }
}

check_node() {
	case "${1:-}" in n1 | n2 | n3) ;; *) echo "unknown node '${1:-}': n1, n2 or n3" >&2; exit 2 ;; esac
}

# rules NODE writes the filter table of NODE's namespace from the cuts in DATA/cuts
# (lines "A B"), both directions.
rules() {
	local node=$1 a b other
	{
		printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n'
		while read -r a b; do
			other=""
			[ "$a" = "$node" ] && other=$b
			[ "$b" = "$node" ] && other=$a
			[ -n "$other" ] || continue
			printf -- '-A INPUT -s %s/32 -j DROP\n-A OUTPUT -d %s/32 -j DROP\n' "$(ip_of "$other")" "$(ip_of "$other")"
		done <"$DATA/cuts"
		printf 'COMMIT\n'
	} | ip netns exec "$(ns_of "$node")" iptables-restore
}

apply_cuts() {
	for n in "${NODES[@]}"; do rules "$n"; done
}

up() {
	need_root
	if ip link show "$BR" >/dev/null 2>&1; then
		echo "$BR exists already: run '$0 down' first" >&2
		exit 1
	fi
	for b in chat-gateway; do
		[ -x "$BIN/$b" ] || { echo "$BIN/$b is missing: run make build" >&2; exit 1; }
	done
	mkdir -p "$DATA"
	: >"$DATA/cuts"
	"$(dirname "$0")/secrets.sh" "$DATA/secrets" >/dev/null
	local s=$DATA/secrets bin routes=""
	bin=$(cd "$BIN" && pwd)/chat-gateway
	ip link add "$BR" type bridge
	ip addr add "$NET.1/24" dev "$BR"
	ip link set "$BR" up
	# shellcheck disable=SC2046 # the rule's words
	iptables -I $(forward_rule)
	for n in "${NODES[@]}"; do
		routes+="${routes:+,}nats://$(ip_of "$n"):$ROUTE_PORT"
	done
	for n in "${NODES[@]}"; do
		local ns veth=csv$N${n} addr
		ns=$(ns_of "$n")
		addr=$(ip_of "$n")
		ip netns add "$ns"
		ip link add "$veth" type veth peer name "csp$N$n"
		ip link set "csp$N$n" netns "$ns"
		ip link set "$veth" master "$BR" up
		ip netns exec "$ns" ip link set lo up
		ip netns exec "$ns" ip link set "csp$N$n" name eth0
		ip netns exec "$ns" ip addr add "$addr/24" dev eth0
		ip netns exec "$ns" ip link set eth0 up
		rules "$n"
		local name=gw-${n#n}
		setsid ip netns exec "$ns" "$bin" --node-name "$name" \
			--http-addr "0.0.0.0:$HTTP_PORT" --nats-listen "0.0.0.0:$NATS_PORT" \
			--cluster-listen "$addr:$ROUTE_PORT" --cluster-routes "$routes" \
			--cluster-password-file "$s/nats_cluster_password" \
			--gateway-password-file "$s/nats_gateway_password" --service-password-file "$s/nats_service_password" \
			--reader-password-file "$s/nats_reader_password" --admin-password-file "$s/nats_admin_password" \
			--data-dir "$DATA/$name" >"$DATA/$name.log" 2>&1 &
		echo $! >"$DATA/$name.pid"
	done
	echo "waiting for the three gateways to be ready"
	for n in "${NODES[@]}"; do
		for _ in $(seq 120); do
			curl -fs -o /dev/null "http://$(ip_of "$n"):$HTTP_PORT/readyz" && break
			sleep 0.5
		done
	done
	status
	cat <<EOF

Open http://$NET.11:$HTTP_PORT and http://$NET.13:$HTTP_PORT side by side; then
  $0 isolate n3     # n3 answers 503 to publishes, keeps its listeners; n1 and n2 go on
  $0 cut n1 n2      # only the link n1-n2 (both still reach n3)
  $0 heal           # everything catches up
  $0 down           # stop and remove everything
NATS: nats -s nats://$NET.11:$NATS_PORT --user admin --password \$(cat $s/nats_admin_password) stream info CHAT_ROOMS
Logs: $DATA/gw-*.log
EOF
}

status() {
	for n in "${NODES[@]}"; do
		local code cuts
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(ip_of "$n"):$HTTP_PORT/readyz" || true)
		cuts=$(awk -v n="$n" '$1 == n { print $2 } $2 == n { print $1 }' "$DATA/cuts" 2>/dev/null | sort -u | tr '\n' ' ')
		printf '  %s  gw-%s  http://%s:%s  nats://%s:%s  readyz %s%s\n' "$n" "${n#n}" "$(ip_of "$n")" "$HTTP_PORT" \
			"$(ip_of "$n")" "$NATS_PORT" "$code" "${cuts:+  cut from: $cuts}"
	done
}

down() {
	need_root
	for n in "${NODES[@]}"; do
		local pidf=$DATA/gw-${n#n}.pid
		[ -f "$pidf" ] || continue
		local pid
		pid=$(cat "$pidf")
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$pidf"
	done
	for n in "${NODES[@]}"; do ip netns del "$(ns_of "$n")" 2>/dev/null || true; done
	ip link del "$BR" 2>/dev/null || true
	# shellcheck disable=SC2046 # the rule's words
	while iptables -D $(forward_rule) 2>/dev/null; do :; done
	rm -f "$DATA/cuts"
	echo "removed $BR, its namespaces and its FORWARD rule (data and logs stay in $DATA)"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
isolate)
	need_root
	check_node "${2:-}"
	for n in "${NODES[@]}"; do [ "$n" = "$2" ] || echo "$2 $n" >>"$DATA/cuts"; done
	apply_cuts
	status
	;;
cut)
	need_root
	check_node "${2:-}"
	check_node "${3:-}"
	echo "$2 $3" >>"$DATA/cuts"
	apply_cuts
	status
	;;
heal)
	need_root
	: >"$DATA/cuts"
	apply_cuts
	status
	;;
*)
	echo "usage: $0 up|down|status|isolate NODE|cut A B|heal" >&2
	exit 2
	;;
esac
