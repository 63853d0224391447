package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NodeOptions describes an embedded NATS node.
type NodeOptions struct {
	// Name is the node's server name; it must be unique within a cluster.
	Name string
	// DataDir holds the JetStream store (nats-server uses DataDir/jetstream).
	DataDir string
	// ClientListen is "host:port" for NATS clients; empty means no client
	// listener (in-process connections only).
	ClientListen string
	// Logger receives the node's log lines; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the node to accept connections
	// (default 10s).
	ReadyTimeout time.Duration
}

// Node is a running embedded NATS node with JetStream enabled.
type Node struct {
	srv *server.Server
}

// ErrNodeNotReady is returned when a node does not become ready in time.
var ErrNodeNotReady = errors.New("nats node did not become ready")

// StartNode starts an embedded NATS node and waits until it accepts
// connections. The node does not handle signals: its owner shuts it down.
func StartNode(o NodeOptions) (*Node, error) {
	opts := &server.Options{
		ServerName: o.Name,
		JetStream:  true,
		StoreDir:   o.DataDir, // nats-server stores in StoreDir/jetstream
		NoSigs:     true,
		NoLog:      o.Logger == nil,
	}
	if o.ClientListen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(o.ClientListen)
		if err != nil {
			return nil, fmt.Errorf("nats client listen address: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure nats node: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(&natsLogger{l: o.Logger.With("component", "nats")}, false, false, false)
	}
	srv.Start()
	wait := o.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w within %s", ErrNodeNotReady, wait)
	}
	return &Node{srv: srv}, nil
}

// ClientURL returns the node's NATS client URL, or "" without a listener.
func (n *Node) ClientURL() string {
	addr, ok := n.srv.Addr().(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Connect opens a client connection to the node, in-process: it works with
// or without a client listener and never touches the network.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(n.srv)}, opts...)
	return nats.Connect("", opts...)
}

// Server returns the underlying nats-server, for monitoring and tests.
func (n *Node) Server() *server.Server { return n.srv }

// Shutdown stops the node and waits until it has stopped.
func (n *Node) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port
	}
	return host, port, nil
}

// natsLogger adapts nats-server's logger to slog.
type natsLogger struct{ l *slog.Logger }

func (g *natsLogger) Noticef(f string, v ...any) { g.l.Info(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Warnf(f string, v ...any)   { g.l.Warn(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Fatalf(f string, v ...any)  { g.l.Error(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Errorf(f string, v ...any)  { g.l.Error(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Debugf(f string, v ...any)  { g.l.Debug(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Tracef(f string, v ...any)  { g.l.Debug(fmt.Sprintf(f, v...)) }
