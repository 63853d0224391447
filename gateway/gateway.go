// Package gateway assembles chat-gateway: a NATS connection (to an embedded
// node or an external cluster), the room history stream, delivery (room
// fan-out and the SSE writers) and the HTTP API, with a graceful stop.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/gateway/internal/api"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/connlimit"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
	"github.com/chatscalable/chatscalable/gateway/internal/limits"
	"github.com/chatscalable/chatscalable/gateway/internal/mercure"
	"github.com/chatscalable/chatscalable/gateway/internal/metrics"
	"github.com/chatscalable/chatscalable/gateway/internal/privacy"
	"github.com/chatscalable/chatscalable/gateway/internal/report"
	"github.com/nats-io/nats.go"
)

// Gateway is a running chat-gateway.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	node     *node.Node
	nc       *nats.Conn
	closed   chan struct{}
	history  *broker.History
	delivery *delivery.Delivery
	metrics  *metrics.Metrics
	reporter *report.Reporter
	auth     *auth.Verifier // nil with --auth off
	privacy  *privacy.Rooms // the rooms an admin made private
	// The Mercure hub (nil unless Options.Mercure.Enabled): its store,
	// the stream's epoch (0 until ensured), its key verifier.
	mercure      *mercure.Hub
	mercureStore *broker.Mercure
	mercureEpoch atomic.Uint64
	mercureKeys  *auth.Verifier
	srv          *http.Server
	ln           *connlimit.Listener
	admin        *http.Server // nil without --admin-addr
	adminURL     string

	servicesMu sync.Mutex     // guards services and servicesUp
	services   []func() error // stop the in-process services that started
	servicesUp bool           // every in-process service has started

	lastConnErr atomicString
	epoch       atomic.Uint64
	streamReady atomic.Bool
	// historyLog and servicesLog are what keepHistory's goroutine, alone,
	// knows of its failed checks and service starts, so that they are
	// logged by their meaning and rate.
	historyLog, servicesLog retryLog
	recheck                 chan struct{}
	stop                    context.CancelFunc
	wg                      sync.WaitGroup
	served                  chan error
}

// Start starts a gateway and returns once it is listening. With an
// embedded node the history stream is ready on return; with an external
// NATS the gateway keeps trying to connect and reports not ready until it
// has.
func Start(ctx context.Context, o Options) (*Gateway, error) {
	o.setBaseline()
	if err := o.checkModes(); err != nil {
		return nil, err
	}
	g := &Gateway{
		opts:        o,
		log:         o.Logger,
		closed:      make(chan struct{}),
		recheck:     make(chan struct{}, 1),
		served:      make(chan error, 1),
		historyLog:  retryLog{failing: "history stream not ready; retrying", recovered: "history stream ready"},
		servicesLog: retryLog{failing: "in-process services not all started; retrying", recovered: "in-process services started"},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.privacy = privacy.New(g.log)
	g.metrics = metrics.New(metrics.Sources{
		Rooms: func() float64 { return float64(g.delivery.Rooms()) },
		NATSConnected: func() float64 {
			if g.nc.IsConnected() {
				return 1
			}
			return 0
		},
		Backfills: func() float64 { return float64(g.delivery.Backfills()) },
		Coalesced: func() float64 { return float64(g.delivery.Coalesced()) },
		Conns:     func() float64 { return float64(g.ln.Open()) },
	})
	if err := g.connect(); err != nil {
		g.abort()
		return nil, err
	}
	var err error
	if g.history, err = broker.NewHistory(g.nc); err != nil {
		g.abort()
		return nil, err
	}
	if o.Mercure.Enabled {
		if g.mercureStore, err = broker.NewMercure(g.nc); err != nil {
			g.abort()
			return nil, err
		}
	}
	if g.node != nil && !g.node.Clustered() {
		// A standalone node can store history at once; a mesh needs its
		// JetStream cluster to form first, which keepHistory waits for.
		if err := g.ensureHistory(ctx); err != nil {
			g.abort()
			return nil, err
		}
	}

	g.reporter = report.New(g.nc, o.NodeName, g.log)
	mode := "external"
	if g.node != nil {
		mode = "embedded"
	}
	g.delivery, err = delivery.New(g.nc, delivery.Options{
		History:         g.history,
		Epoch:           g.epoch.Load,
		Presence:        g.reporter,
		Metrics:         g.metrics,
		Log:             g.log,
		Loop:            o.SSEWriter != SSEWriterHandler,
		MaxMessageBytes: o.MaxMessageBytes,
		MaxReplay:       o.MaxReplay,
		ClientQueue:     o.ClientQueue,
		ClientBuffer:    o.ClientBuffer,
		WriteTimeout:    o.WriteTimeout,
		Heartbeat:       o.Heartbeat,
		Coalesce:        o.SSECoalesce,
		Retry:           defaults.Retry,
		ShutdownRetry:   defaults.ShutdownRetry,
		ReadTimeout:     defaults.PublishTimeout,
	})
	if err != nil {
		g.abort()
		return nil, fmt.Errorf("start the SSE stream loop: %w", err)
	}
	if o.Auth == AuthJWT {
		if g.auth, err = auth.New(ctx, o.AuthJWT); err != nil {
			g.abort()
			return nil, fmt.Errorf("auth: %w", err)
		}
	} else {
		g.log.Warn("auth is off: anyone who reaches this gateway may publish and listen as any user (--auth jwt turns it on)")
	}
	var mercureHandler http.Handler
	if o.Mercure.Enabled {
		if err := g.startMercure(ctx); err != nil {
			g.abort()
			return nil, err
		}
		mercureHandler = g.mercure
	}
	a, err := api.New(api.Config{
		Node:            o.NodeName,
		Version:         o.Version,
		NATSMode:        mode,
		Started:         time.Now(),
		Now:             o.Clock,
		Delivery:        g.delivery,
		Auth:            g.auth,
		PublishPerUser:  limits.NewRate(o.PublishRate, o.PublishBurst),
		PublishPerIP:    limits.NewRate(o.PublishRatePerIP, o.PublishBurst),
		StreamsPerUser:  limits.NewCount(o.MaxStreamsPerUser),
		AllowedOrigins:  o.AllowedOrigins,
		CORSOrigins:     o.CORSOrigins,
		PrivateRooms:    o.PrivateRooms,
		AdminPrivate:    g.privacy.Private,
		Mercure:         mercureHandler,
		TokenURL:        o.AuthTokenURL,
		SignInURL:       o.AuthSignInURL,
		Admin:           o.AdminAddr != "",
		Store:           g.history,
		Ready:           g.Ready,
		NATSServer:      g.nc.ConnectedServerName,
		StoreFailed:     g.storeFailed,
		Metrics:         g.metrics,
		Request:         g.nc.RequestWithContext,
		MaxMessageBytes: o.MaxMessageBytes,
		WriteTimeout:    o.WriteTimeout,
		BodyTimeout:     o.BodyTimeout,
		Log:             g.log,
	})
	if err != nil {
		g.abort()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	g.stop = stop
	g.wg.Add(2)
	go g.keepHistory(bg)
	go func() {
		defer g.wg.Done()
		g.reporter.Run(bg)
	}()

	g.srv = &http.Server{
		Handler:           a,
		ConnContext:       connlimit.WithConn,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	g.srv.RegisterOnShutdown(g.delivery.Close)
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		g.abort()
		return nil, fmt.Errorf("the HTTP listener %s (set by --http-addr) cannot open: %w", o.HTTPAddr, err)
	}
	maxConns := o.MaxConns
	if maxConns == 0 {
		maxConns = defaultMaxConns()
	}
	g.ln = connlimit.Wrap(ln, connlimit.Options{
		MaxConns:      maxConns,
		MaxConnsPerIP: o.MaxConnsPerIP,
		Refused:       func(reason string) { g.metrics.ConnsRefused.WithLabelValues(reason).Inc() },
	})
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			_ = g.ln.Close()
			g.abort()
			return nil, fmt.Errorf("tls certificate: %w", err)
		}
		g.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { g.served <- g.srv.ServeTLS(g.ln, "", "") }()
	} else {
		go func() { g.served <- g.srv.Serve(g.ln) }()
	}
	if o.AdminAddr != "" {
		aln, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			_ = g.srv.Close()
			g.abort()
			return nil, fmt.Errorf("admin listen on %s: %w", o.AdminAddr, err)
		}
		g.admin = &http.Server{Handler: a.AdminHandler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
		g.adminURL = "http://" + aln.Addr().String()
		go func() { _ = g.admin.Serve(aln) }()
		g.log.Info("admin listening", "addr", aln.Addr().String())
	}
	g.log.Info("gateway started", "node", o.NodeName, "http", g.ln.Addr().String(), "tls", o.TLSCert != "", "nats", mode,
		"max_conns", maxConns, "max_conns_per_ip", o.MaxConnsPerIP)
	return g, nil
}

// connect starts the embedded node if needed and connects to NATS.
func (g *Gateway) connect() error {
	o := g.opts
	natsOpts := []nats.Option{
		nats.Name("chat-gateway " + o.NodeName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(8 << 20),
		// Notice a server that stopped answering (frozen, partitioned)
		// within about 10 s, not the client's default of minutes.
		nats.PingInterval(3 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			// Not ready until the history stream is checked again after the
			// reconnect: the cluster may have restarted or lost it.
			g.streamReady.Store(false)
			if err != nil { // nil: the gateway closed the connection itself
				g.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			g.metrics.NATSReconnects.Inc()
			g.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
			g.triggerRecheck()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			server := nc.ConnectedUrlRedacted()
			if g.node != nil {
				server = "the embedded node, in-process" // nats.go names a default URL for it
			}
			g.log.Info("nats connected", "server", server)
			g.triggerRecheck()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			g.log.Warn("nats error", "subject", subject, "err", err)
		}),
		nats.DiscoveredServersHandler(func(*nats.Conn) { g.triggerRecheck() }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Say why a connection attempt failed (refused, bad
			// credentials) once per reason, not every 250 ms.
			if msg := err.Error(); msg != g.lastConnErr.Swap(msg) {
				g.log.Warn("cannot connect to nats; retrying", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(g.closed) }),
	}
	security, err := g.natsSecurity()
	if err != nil {
		return err
	}
	natsOpts = append(natsOpts, security...)
	if o.NATSURL == "" {
		listen := o.NATSListen
		if listen == "off" {
			listen = ""
		}
		g.node, err = node.Start(node.Options{
			Name:            o.NodeName,
			DataDir:         o.DataDir,
			ClientListen:    listen,
			ClusterName:     o.ClusterName,
			ClusterListen:   o.ClusterListen,
			Routes:          o.ClusterRoutes,
			ElectionTimeout: o.ElectionTimeout,
			Auth:            o.NodeAuth,
			TLS:             o.NATSTLS,
			Logger:          g.log,
			ListenFlags:     node.ListenFlags{Client: "--nats-listen", Cluster: "--cluster-listen"},
		})
		if err != nil {
			return fmt.Errorf("start embedded nats: %w", err)
		}
		if url := g.node.ClientURL(); url != "" {
			g.log.Info("nats clients welcome", "url", url)
		}
		g.nc, err = g.node.Connect(natsOpts...)
	} else {
		if o.NATSUser != "" {
			natsOpts = append(natsOpts, nats.UserInfo(o.NATSUser, o.NATSPassword))
		}
		g.nc, err = nats.Connect(strings.ReplaceAll(o.NATSURL, " ", ""), natsOpts...)
	}
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	return nil
}

// Ready returns nil while the gateway is connected to NATS and the history
// stream is usable.
// storeFailed is told when the stream did not store or read in time: a
// gateway cut off with a minority of the cluster, or whose node lost
// the stream's leader, is not ready from then until a check of the stream
// (which asks for a leader that hears a majority of its replicas) passes.
func (g *Gateway) storeFailed() {
	g.streamReady.Store(false)
	g.triggerRecheck()
}

func (g *Gateway) Ready() error {
	// The flag first: it is false from the moment a disconnect is noticed,
	// and IsConnected waits for nats.go's lock, which its reconnect loop
	// holds through each dial (up to 2 s to a server that drops packets),
	// so a publish or probe asking during a partition would wait that long
	// only to be told no.
	if !g.streamReady.Load() {
		return errors.New("the history stream is not ready")
	}
	if !g.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !g.privacy.Known() {
		return errors.New("the private rooms are not loaded")
	}
	if err := g.delivery.Err(); err != nil {
		return fmt.Errorf("the SSE stream loop stopped: %w", err)
	}
	return nil
}

// Addr returns the HTTP listen address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// URL returns the gateway's base URL, http://host:port.
func (g *Gateway) URL() string {
	addr := g.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if g.opts.TLSCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// AdminURL returns the admin listener's base URL, "" without one.
func (g *Gateway) AdminURL() string { return g.adminURL }

// Clients returns the number of SSE clients connected to this gateway.
func (g *Gateway) Clients() int64 { return g.delivery.Clients() }

// Node returns the embedded NATS node, or nil with an external NATS.
func (g *Gateway) Node() *node.Node { return g.node }

// Shutdown stops the gateway: it stops accepting requests, ends SSE
// streams with a short retry hint (clients resume elsewhere), drains the
// NATS connection and shuts the embedded node down.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	if err := g.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		_ = g.srv.Close()
	}
	if err := <-g.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http serve: %w", err))
	}
	if g.admin != nil {
		_ = g.admin.Close()
	}
	// Every listener has been ended; the loop writes each its goodbye and
	// closes the connections net/http handed over.
	if err := g.delivery.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("sse streams: %w", err))
	}
	g.stopBackground() // says goodbye to presence, stops checking history
	if g.auth != nil {
		g.auth.Close()
	}
	g.servicesMu.Lock()
	for _, stop := range g.services {
		if err := stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop service: %w", err))
		}
	}
	g.servicesMu.Unlock()
	if err := g.closeBus(ctx); err != nil {
		errs = append(errs, err)
	}
	g.log.Info("gateway stopped", "node", g.opts.NodeName)
	return errors.Join(errs...)
}

// stopBackground stops the gateway's own goroutines.
func (g *Gateway) stopBackground() {
	if g.stop != nil {
		g.stop()
		g.wg.Wait()
	}
	g.privacy.Stop()
	if g.mercureKeys != nil {
		g.mercureKeys.Close()
	}
}

// closeBus drains the NATS connection, waiting for it until ctx ends, and
// shuts the embedded node down.
func (g *Gateway) closeBus(ctx context.Context) error {
	var err error
	if g.nc != nil {
		if g.nc.Drain() != nil {
			g.nc.Close()
		}
		select {
		case <-g.closed:
		case <-ctx.Done():
			err = fmt.Errorf("nats drain: %w", ctx.Err())
		}
	}
	if g.node != nil {
		g.node.Shutdown()
	}
	return err
}

// abort undoes a Start that failed half way.
func (g *Gateway) abort() {
	g.stopBackground()
	if g.auth != nil {
		g.auth.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if g.delivery != nil {
		_ = g.delivery.Shutdown(ctx)
	}
	_ = g.closeBus(ctx)
}

// atomicString is a string read and swapped atomically.
type atomicString struct{ v atomic.Value }

// Swap stores s and returns the previous value ("" at first).
func (a *atomicString) Swap(s string) string {
	old, _ := a.v.Swap(s).(string)
	return old
}
