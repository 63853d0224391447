// chat-gateway's flags of NATS security: TLS, and who may connect to the
// embedded node. parseFlags calls addNATSSecurityFlags; each flag fills
// gateway.Options as it is parsed (password files are read then), and
// gateway.Start checks the result.

package main

import (
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/node/nodeflags"
	"github.com/chatscalable/chatscalable/gateway"
)

// addNATSSecurityFlags defines --nats-tls-cert, --nats-tls-key,
// --nats-tls-ca, the embedded node's password files (one per client role,
// and --cluster-password-file for the mesh's routes) and --nats-no-auth.
func addNATSSecurityFlags(fs *envflag.Set, o *gateway.Options) {
	fs.String(&o.NATSTLS.CA, "nats-tls-ca", "", "PEM CA of NATS TLS: with --nats-url, it verifies the servers' certificates; with the embedded node, the other mesh nodes' (empty: the system's roots)")
	fs.String(&o.NATSTLS.Cert, "nats-tls-cert", "", "PEM certificate of NATS TLS: with --nats-url, presented to servers that ask for a client certificate; with the embedded node, it serves its client and route listeners, which then speak TLS only")
	fs.String(&o.NATSTLS.Key, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
	nodeflags.AddAuth(fs, &o.NodeAuth, "the embedded node")
	fs.Bool(&o.NodeAuth.NoAuth, "nats-no-auth", false, "let anonymous clients into the embedded node on a listener that is not on loopback, and mesh routes in without a password (for a trusted network only; logged as a warning)")
}
