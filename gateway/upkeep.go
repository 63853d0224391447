// Keeping the bus ready: the history stream (and the Mercure stream and
// the private rooms with it), the in-process services, and what the live
// feeds missed while NATS was away. keepHistory runs ensureHistory at
// start, after every reconnect and failed publish, and every 30 s.

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatscalable/chatscalable/broker/node"
)

func (g *Gateway) triggerRecheck() {
	select {
	case g.recheck <- struct{}{}:
	default:
	}
}

func (g *Gateway) ensureHistory(parent context.Context) error {
	// Each step gets its own time budget: while a cluster forms, the
	// stream check can take most of one, and the steps after it must not
	// fail (and send listeners away) for lack of time.
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(parent, 5*time.Second) }
	cfg := g.opts.History
	cfg.ClusterSize = g.clusterSize()
	cfg.MaxTextBytes = g.opts.MaxMessageBytes
	ctx, cancel := step()
	epoch, err := g.history.Ensure(ctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	if old := g.epoch.Swap(epoch); old != 0 && old != epoch {
		g.log.Warn("history stream was recreated", "old_epoch", old, "epoch", epoch)
		if g.delivery != nil {
			g.delivery.Reset()
		}
	}
	if g.mercureStore != nil {
		ctx, cancel := step()
		err := g.ensureMercure(ctx, cfg.ClusterSize)
		cancel()
		if err != nil {
			return err
		}
	}
	// Rooms made private through the directory are refused until known.
	ctx, cancel = step()
	err = g.privacy.Ensure(ctx, g.history.JetStream(), cfg.StreamReplicas())
	cancel()
	if err != nil {
		return err
	}
	if g.servicesPending() {
		// Started before the gateway says it is ready, so the first
		// listeners' joins are heard by a presence replica of this node.
		ctx, cancel := step()
		g.startServices(ctx)
		cancel()
	}
	g.streamReady.Store(true)
	if g.delivery != nil {
		// Deliver what the live feeds missed while NATS was unreachable.
		ctx, cancel := step()
		err := g.delivery.Resync(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", errResyncPending, err)
		}
	}
	return nil
}

// errResyncPending means the history stream is usable but some rooms could
// not yet be checked for messages their live feed missed.
var errResyncPending = errors.New("rooms not yet checked for missed messages")

// servicesPending reports whether in-process services should run here
// but have not started yet.
func (g *Gateway) servicesPending() bool {
	g.servicesMu.Lock()
	defer g.servicesMu.Unlock()
	return !g.servicesUp && g.inProcessServices()
}

func (g *Gateway) inProcessServices() bool {
	switch g.opts.Services {
	case ServicesInProcess:
		return true
	case ServicesOff:
		return false
	default: // ServicesAuto
		return g.node != nil && g.opts.StartServices != nil
	}
}

// startServices starts this gateway's replicas of the chat services. They
// need JetStream, so they start once the history stream is ready; those
// that fail to start are tried again at the next check, and those that
// started keep running meanwhile.
func (g *Gateway) startServices(ctx context.Context) {
	// The mesh's size comes from its configuration: the connection may
	// not have heard of every node yet, and a bucket made with one copy
	// would die with its node.
	stop, err := g.opts.StartServices(ctx, g.nc, g.clusterSize())
	g.servicesMu.Lock()
	if stop != nil {
		g.services = append(g.services, stop)
	}
	g.servicesUp = err == nil
	g.servicesMu.Unlock()
	switch {
	case err == nil:
		g.servicesLog.ready(g.log)
	case ctx.Err() == nil: // not the gateway stopping
		g.servicesLog.failed(g.log, err)
	}
}

// clusterSize is the number of NATS servers this gateway knows of: for a
// mesh member, itself and the other nodes in its routes; for a client of an
// external cluster, the servers it was given or has discovered.
func (g *Gateway) clusterSize() int {
	if g.node != nil {
		return node.MeshSize(g.node.ClusterURL(), g.opts.ClusterRoutes)
	}
	return len(g.nc.Servers())
}

// keepHistory makes sure the history stream exists: until it does, then
// again after every (re)connect and failed publish, since the cluster may
// have lost it, and every 30 s, since someone may have recreated it.
func (g *Gateway) keepHistory(ctx context.Context) {
	defer g.wg.Done()
	wait := time.Duration(0)
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-g.recheck:
		case <-timer.C:
		}
		timer.Stop()
		wait = 30 * time.Second
		if !g.nc.IsConnected() {
			continue // the reconnect handler asks again
		}
		err := g.ensureHistory(ctx)
		switch {
		case errors.Is(err, errResyncPending):
			g.log.Warn("history resync incomplete; retrying", "err", err)
			wait = time.Second
		case err != nil:
			g.streamReady.Store(false)
			if ctx.Err() != nil {
				return // the gateway stops: not a failure of the stream
			}
			g.historyLog.failed(g.log, err)
			wait = time.Second
		default:
			g.historyLog.ready(g.log)
			if g.servicesPending() {
				wait = time.Second // try the in-process services again soon
			}
		}
	}
}

// retryLog keeps the log of a step the gateway retries readable (the
// history stream's check, the in-process services' start): a mesh that
// starts waits seconds for its peers before a stream has its replicas,
// and a cluster that lost its quorum fails every check each second. Until
// the step first succeeded a failure is logged at INFO, after that at
// WARN; repeats are counted and logged at most once every retryLogEvery,
// and the recovery is logged once.
type retryLog struct {
	failing, recovered string // the messages
	wasReady           bool
	last               time.Time // when a failure was last logged
	failures           int       // since then
}

const retryLogEvery = 30 * time.Second

func (h *retryLog) failed(log *slog.Logger, err error) {
	h.failures++
	now := time.Now()
	if !h.last.IsZero() && now.Sub(h.last) < retryLogEvery {
		return
	}
	level := slog.LevelWarn
	if !h.wasReady {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, h.failing, "err", err, "failures", h.failures)
	h.last, h.failures = now, 0
}

func (h *retryLog) ready(log *slog.Logger) {
	if !h.last.IsZero() {
		log.Info(h.recovered, "failures_since_last_line", h.failures)
	}
	h.wasReady, h.last, h.failures = true, time.Time{}, 0
}
