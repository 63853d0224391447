// Package inprocess runs a replica of each chat service inside another
// program, on that program's NATS connection. chat-gateway does so with
// its embedded node (the quickstart and the peer mesh), so that a chat of
// one or a few gateways needs no other process.
package inprocess

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
)

// Options tunes the in-process replicas.
type Options struct {
	Version string
	Logger  *slog.Logger
	// PresenceWarmUp is how long the presence replica listens before it
	// announces changes (0: the presence service's default).
	PresenceWarmUp time.Duration
}

// StartFunc starts the chat services on nc, for a NATS cluster of
// clusterSize servers, and returns a function that stops them; it is what
// gateway.Options.StartServices takes.
type StartFunc = func(ctx context.Context, nc *nats.Conn, clusterSize int) (stop func() error, err error)

// Starter returns a StartFunc that starts a presence and a rooms replica;
// if either fails, neither is left running.
func Starter(o Options) StartFunc {
	return func(ctx context.Context, nc *nats.Conn, clusterSize int) (func() error, error) {
		p, err := presence.Start(ctx, nc, presence.Options{Version: o.Version, Logger: o.Logger, WarmUp: o.PresenceWarmUp, ClusterSize: clusterSize})
		if err != nil {
			return nil, fmt.Errorf("presence service: %w", err)
		}
		r, err := rooms.Start(ctx, nc, rooms.Options{Version: o.Version, Logger: o.Logger, ClusterSize: clusterSize})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("rooms service: %w", err), p.Stop())
		}
		return func() error { return errors.Join(p.Stop(), r.Stop()) }, nil
	}
}
