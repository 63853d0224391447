package gateway

import (
	"errors"
	"fmt"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// natsSecurity returns the options of the gateway's NATS connection that
// its security asks for: replies on the gateway's own inbox prefix, which
// the gateway role may subscribe to and no other restricted role may, and
// with an external NATS the client TLS of NATSTLS. It refuses NodeAuth
// with an external NATS, where there is no node to protect, and warns of
// an embedded node open to anyone.
func (g *Gateway) natsSecurity() ([]nats.Option, error) {
	o := &g.opts
	opts := []nats.Option{nats.CustomInboxPrefix(broker.GatewayInboxPrefix)}
	if o.NATSURL == "" {
		if o.NodeAuth.NoAuth {
			g.log.Warn("NATS AUTHENTICATION IS OFF for the embedded node (--nats-no-auth): any client that reaches its listeners may publish, read and delete everything and forge live messages, and any server may join the mesh; use it on a trusted network only")
		}
		return opts, nil // the embedded node has its own TLS and users
	}
	if !o.NodeAuth.IsZero() {
		return nil, errors.New("nats: the embedded node's credentials are set, but with an external NATS there is no embedded node (the gateway logs in with its NATS user and password)")
	}
	cfg, err := o.NATSTLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if cfg != nil {
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}
