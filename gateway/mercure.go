// The gateway's Mercure hub (package mercure), with --mercure.

package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/mercure"
)

// startMercure makes the Mercure hub: its key verifier and its hub in the
// gateway's delivery (its store is made before the history is first
// ensured, which ensures the Mercure stream too).
func (g *Gateway) startMercure(ctx context.Context) error {
	o := g.opts.Mercure
	var err error
	if o.keyed() {
		keys := o.Keys
		keys.ExpOptional = true // Mercure tokens need not expire
		if g.mercureKeys, err = auth.New(ctx, keys); err != nil {
			return fmt.Errorf("mercure keys: %w", err)
		}
	} else {
		g.log.Warn("mercure has no key (--mercure-jwt-secret-file, --mercure-jwt-key-file or --mercure-jwks-url): nobody may publish")
	}
	g.mercure = mercure.New(mercure.Config{
		NC:             g.nc,
		Store:          g.mercureStore,
		Delivery:       g.delivery,
		Epoch:          g.mercureEpoch.Load,
		Ready:          g.mercureReady,
		Keys:           g.mercureKeys,
		Anonymous:      o.Anonymous,
		Cookie:         o.Cookie,
		PublishOrigins: o.PublishOrigins,
		MaxReplay:      o.MaxReplay,
		Subscriptions:  o.Subscriptions,
		Presence:       g.reporter,
		Log:            g.log.With("component", "mercure"),
	})
	return nil
}

// mercureReady returns nil while the gateway is ready and the Mercure
// stream has been ensured.
func (g *Gateway) mercureReady() error {
	if g.mercureEpoch.Load() == 0 {
		return errors.New("the Mercure stream is not ready")
	}
	return g.Ready()
}

// ensureMercure creates or updates the Mercure stream; a recreated stream
// ends the hub's subscribers, who resume by Last-Event-ID.
func (g *Gateway) ensureMercure(ctx context.Context, clusterSize int) error {
	o := g.opts.Mercure
	epoch, err := g.mercureStore.Ensure(ctx, broker.MercureConfig{
		MaxAge: o.MaxAge, MaxMsgs: o.MaxMsgs, MaxBytes: o.MaxBytes, Replicas: o.Replicas, ClusterSize: clusterSize,
	})
	if err != nil {
		return err
	}
	if old := g.mercureEpoch.Swap(epoch); old != 0 && old != epoch {
		g.log.Warn("mercure stream was recreated", "old_epoch", old, "epoch", epoch)
		if g.mercure != nil {
			g.mercure.Reset()
		}
	}
	return nil
}
