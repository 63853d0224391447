#!/usr/bin/env bash
# Makes the secrets of a local or Docker deployment in a folder, keeping any
# that are already there:
#
#   secrets.sh DIR                 a password file per NATS user: nats_gateway_password,
#                                  nats_service_password, nats_reader_password,
#                                  nats_admin_password and nats_cluster_password (the routes');
#                                  jwt_secret, the HS256 secret chat-signin signs tokens with
#                                  and the gateways verify them with; signin_session_key, the
#                                  key of chat-signin's session cookie (32 random bytes each,
#                                  base64)
#   secrets.sh DIR --tls HOSTS     and a test CA with node and client certificates
#                                  (tools/testca): ca.pem, node.pem, node-key.pem,
#                                  client.pem, client-key.pem; HOSTS are the comma-separated
#                                  names the brokers are reached by
#
# The folder is readable by its owner only; the files in it (but the CA's key) by anyone, since
# the containers' user (65532) reads them through bind mounts (compose's
# file secrets). Passwords are 48 random hex digits. The test CA is for local
# use only: bring your own certificates to production.
set -euo pipefail

usage() { echo "usage: $0 DIR [--tls HOSTS]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
shift
hosts=""
if [ $# -gt 0 ]; then
	[ "$1" = --tls ] && [ $# -eq 2 ] && [ -n "$2" ] || usage
	hosts=$2
fi

mkdir -p "$dir"
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)

for user in gateway service reader admin cluster; do
	f="$dir/nats_${user}_password"
	if [ ! -s "$f" ]; then
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f"
		echo "made $f"
	fi
done
for key in jwt_secret signin_session_key; do
	f="$dir/$key"
	if [ ! -s "$f" ]; then
		head -c 32 /dev/urandom | base64 >"$f"
		echo "made $f"
	fi
done
if [ -n "$hosts" ] && [ ! -s "$dir/ca.pem" ]; then
	(cd "$root" && go run ./tools/testca --dir "$dir" --hosts "$hosts")
fi
for f in "$dir"/*; do
	[ "$(basename "$f")" = ca-key.pem ] || chmod 644 "$f"
done
