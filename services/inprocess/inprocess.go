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
	"sync"
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
// clusterSize servers; it is what gateway.Options.StartServices takes. It
// returns a stop for the services it started (nil if none) and an error
// naming those that did not start; called again, it starts only those.
type StartFunc = func(ctx context.Context, nc *nats.Conn, clusterSize int) (stop func() error, err error)

// Starter returns a StartFunc for a presence and a rooms replica. One
// failing to start leaves the other running: a presence replica restarted
// because the rooms service's bucket was slow to make would warm up again,
// and would not know the listeners of a gateway that crashes meanwhile.
func Starter(o Options) StartFunc {
	var mu sync.Mutex
	var presenceUp, roomsUp bool
	return func(ctx context.Context, nc *nats.Conn, clusterSize int) (func() error, error) {
		mu.Lock()
		defer mu.Unlock()
		var stops []func() error
		var errs []error
		if !presenceUp {
			p, err := presence.Start(ctx, nc, presence.Options{Version: o.Version, Logger: o.Logger, WarmUp: o.PresenceWarmUp, ClusterSize: clusterSize})
			if err != nil {
				errs = append(errs, fmt.Errorf("presence service: %w", err))
			} else {
				presenceUp = true
				stops = append(stops, p.Stop)
			}
		}
		if !roomsUp {
			r, err := rooms.Start(ctx, nc, rooms.Options{Version: o.Version, Logger: o.Logger, ClusterSize: clusterSize})
			if err != nil {
				errs = append(errs, fmt.Errorf("rooms service: %w", err))
			} else {
				roomsUp = true
				stops = append(stops, r.Stop)
			}
		}
		if len(stops) == 0 {
			return nil, errors.Join(errs...)
		}
		stop := func() error {
			var errs []error
			for _, s := range stops {
				errs = append(errs, s())
			}
			return errors.Join(errs...)
		}
		return stop, errors.Join(errs...)
	}
}
