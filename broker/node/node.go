// Package node runs an embedded NATS server with JetStream: the bus of a
// quickstart gateway, a member of a gateway peer mesh, or a dedicated
// chat-broker. It is apart from package broker (the bus contract) so that
// programs that only use the bus, such as the chat services, do not link
// nats-server.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options describes an embedded NATS node.
type Options struct {
	// Name is the node's server name; it must be unique within a cluster.
	Name string
	// DataDir holds the JetStream store (nats-server uses DataDir/jetstream).
	DataDir string
	// ClientListen is "host:port" for NATS clients; empty means no client
	// listener (in-process connections only).
	ClientListen string
	// ClusterName names the NATS cluster this node joins (default "chat").
	ClusterName string
	// ClusterListen is "host:port" for routes from other nodes; empty means
	// a standalone node.
	ClusterListen string
	// Routes are the other nodes' route URLs (nats://host:6222); a route to
	// the node itself is allowed and ignored by nats-server.
	Routes []string
	// MonitorListen is "host:port" of the NATS HTTP monitoring endpoint
	// (/healthz, /varz, /jsz); empty disables it.
	MonitorListen string
	// LameDuckDuration is how long Shutdown spends in lame-duck mode,
	// moving clients to other nodes before stopping (0: stop at once).
	LameDuckDuration time.Duration
	// Auth says who may connect as a client or a route (see Auth); Start
	// refuses anonymous clients on a listener off loopback, and routes
	// without credentials, unless Auth.NoAuth.
	Auth Auth
	// TLS, when it names files, makes the client and route listeners
	// speak TLS only, with TLS.Cert; routes verify each other with TLS.CA.
	TLS broker.TLSFiles
	// VerifyClients requires clients to present a certificate signed by
	// TLS.CA, besides their password.
	VerifyClients bool
	// ElectionTimeout, when set, makes the cluster's Raft groups elect a new
	// leader after between ElectionTimeout and twice that without hearing
	// from the old one (nats-server's default is 4–9 s). It is process-wide
	// and set by the first node started; commands set it, tests leave it.
	ElectionTimeout time.Duration
	// Logger receives the node's log lines; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the node to accept connections
	// (default 10s).
	ReadyTimeout time.Duration
	// ListenFlags name the command-line flags that set ClientListen,
	// ClusterListen and MonitorListen, so that an address already in use
	// is reported with the flag that changes it.
	ListenFlags ListenFlags
}

// ListenFlags are the flags of a command that set a node's listeners
// (empty: the error names the listener only).
type ListenFlags struct{ Client, Cluster, Monitor string }

// Node is a running embedded NATS node with JetStream enabled.
type Node struct {
	srv      *server.Server
	lameDuck bool
	login    nats.Option // the in-process user, when clients must log in
}

// ErrNotReady is returned when a node does not become ready in time.
var ErrNotReady = errors.New("nats node did not become ready")

// Start starts an embedded NATS node and waits until it accepts
// connections. The node does not handle signals: its owner shuts it down.
func Start(o Options) (*Node, error) {
	if err := o.Auth.check(o); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: o.Name,
		JetStream:  true,
		StoreDir:   o.DataDir, // nats-server stores in StoreDir/jetstream
		NoSigs:     true,
		NoLog:      o.Logger == nil,
		// The ASCII-art banner; Start logs one line instead.
		DisableJetStreamBanner: true,
		ReconnectErrorReports:  reconnectErrorReports,
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
	if o.ClusterListen != "" {
		host, port, err := splitHostPort(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen address: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: host, Port: port}
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "chat"
		}
		if len(o.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
			if len(opts.Routes) != len(o.Routes) {
				return nil, fmt.Errorf("cluster routes %q: each must be a URL such as nats://host:6222", o.Routes)
			}
			routesWithCredentials(opts.Routes, o.Auth.RoutePassword)
		}
	} else if len(o.Routes) > 0 {
		return nil, errors.New("cluster routes need a cluster listen address")
	}
	if o.MonitorListen != "" {
		host, port, err := splitHostPort(o.MonitorListen)
		if err != nil {
			return nil, fmt.Errorf("monitor listen address: %w", err)
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if o.LameDuckDuration > 0 {
		opts.LameDuckDuration = o.LameDuckDuration
		opts.LameDuckGracePeriod = min(o.LameDuckDuration/2, 10*time.Second)
	}
	if o.ElectionTimeout > 0 {
		setElectionTimeout(o.ElectionTimeout)
	}
	login, err := o.Auth.apply(opts)
	if err != nil {
		return nil, err
	}
	if err := serverTLS(opts, o.TLS, o.VerifyClients); err != nil {
		return nil, err
	}
	if err := o.checkListeners(); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure nats node: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(&natsLogger{l: o.Logger.With("component", "nats"), started: time.Now()}, false, false, false)
	}
	srv.Start()
	wait := o.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w within %s", ErrNotReady, wait)
	}
	if o.Logger != nil {
		o.Logger.Info("nats node ready", "component", "nats", "version", server.VERSION, "name", srv.Name(),
			"cluster", srv.ClusterName(), "jetstream_dir", filepath.Join(o.DataDir, "jetstream"))
	}
	return &Node{srv: srv, lameDuck: o.LameDuckDuration > 0, login: login}, nil
}

// checkListeners tries each listen address before nats-server does: a
// nats-server that cannot bind a port logs it and waits to be ready until
// ReadyTimeout, so a port in use would otherwise end in "did not become
// ready" without its cause.
func (o Options) checkListeners() error {
	for _, l := range []struct{ what, addr, flag string }{
		{"NATS client listener", o.ClientListen, o.ListenFlags.Client},
		{"cluster route listener", o.ClusterListen, o.ListenFlags.Cluster},
		{"monitoring listener", o.MonitorListen, o.ListenFlags.Monitor},
	} {
		if l.addr == "" || strings.HasSuffix(l.addr, ":0") || strings.HasSuffix(l.addr, ":-1") {
			continue // none, or any free port
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			set := ""
			if l.flag != "" {
				set = " (set by " + l.flag + ")"
			}
			return fmt.Errorf("the %s %s%s cannot open: %w; is another ChatScalable node or NATS server running there? Stop it or choose another address", l.what, l.addr, set, err)
		}
		_ = ln.Close()
	}
	return nil
}

// Clustered reports whether the node is a member of a NATS cluster.
func (n *Node) Clustered() bool { return n.srv.ClusterAddr() != nil }

// ClusterURL returns the node's route URL, or "" for a standalone node.
func (n *Node) ClusterURL() string { return tcpURL(n.srv.ClusterAddr()) }

// MonitorURL returns the node's monitoring base URL (http://host:port), or
// "" without monitoring.
func (n *Node) MonitorURL() string {
	if a := n.srv.MonitorAddr(); a != nil {
		return "http" + strings.TrimPrefix(tcpURL(a), "nats")
	}
	return ""
}

func tcpURL(a net.Addr) string {
	addr, ok := a.(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// ClientURL returns the node's NATS client URL, or "" without a listener.
func (n *Node) ClientURL() string {
	return tcpURL(n.srv.Addr())
}

// Connect opens a client connection to the node, in-process: it works with
// or without a client listener and never touches the network.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(n.srv)}, opts...)
	if n.login != nil {
		opts = append(opts, n.login)
	}
	return nats.Connect("", opts...)
}

// Shutdown stops the node and waits until it has stopped. A node with a
// lame-duck duration first moves its clients to other nodes over that time.
func (n *Node) Shutdown() {
	if n.lameDuck && n.srv.Running() {
		n.srv.LameDuckShutdown()
	}
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

// natsLogger adapts nats-server's logger to slog, at the levels an
// operator reads them by: the start-up dump of versions and settings is
// DEBUG (Start logs one line of it instead), a peer not reachable is
// INFO while the cluster forms (its nodes start one after another) and
// WARN after, not ERROR (nats-server itself reports a failing route every
// reconnectErrorReports attempts, with the attempt's number), and the
// waits of a cluster forming are INFO while the node starts.
type natsLogger struct {
	l       *slog.Logger
	started time.Time
}

// formingFor is how long after its start a node's cluster may still be
// forming: its peers starting one after another.
const formingFor = 30 * time.Second

// reconnectErrorReports: a route that keeps failing is logged on every
// this many attempts (about every 30 s at nats-server's one attempt a
// second), not on each one.
const reconnectErrorReports = 30

func (g *natsLogger) Noticef(f string, v ...any) {
	if strings.HasPrefix(f, "  ") || strings.HasPrefix(f, "---") {
		g.l.Debug(fmt.Sprintf(f, v...)) // the start-up dump
		return
	}
	g.l.Info(fmt.Sprintf(f, v...))
}

func (g *natsLogger) Warnf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	if time.Since(g.started) < formingFor && (strings.HasPrefix(msg, "Waiting for routing to be established") ||
		strings.HasPrefix(msg, "JetStream has not established contact with a meta leader")) {
		g.l.Info(msg)
		return
	}
	g.l.Warn(msg)
}

func (g *natsLogger) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	if strings.HasPrefix(f, "Error trying to connect to route") || strings.Contains(f, "Error flushing: ") {
		// A peer not up yet, or gone: the cluster goes on.
		if time.Since(g.started) < formingFor {
			g.l.Info(msg)
		} else {
			g.l.Warn(msg)
		}
		return
	}
	g.l.Error(msg)
}

func (g *natsLogger) Fatalf(f string, v ...any) { g.l.Error(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Debugf(f string, v ...any) { g.l.Debug(fmt.Sprintf(f, v...)) }
func (g *natsLogger) Tracef(f string, v ...any) { g.l.Debug(fmt.Sprintf(f, v...)) }

// MeshSize returns the number of nodes in a mesh: this node (whose route
// URL is self) and each route that does not point back to it. A route
// points back when its port is this node's route port and its host is this
// machine (a loopback or unspecified address, the host name, or an address
// of a local interface).
func MeshSize(self string, routes []string) int {
	selfURL, err := url.Parse(self)
	if self == "" || err != nil {
		return 1 + len(routes)
	}
	seen := map[string]bool{}
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			continue
		}
		if u.Port() == selfURL.Port() && isLocalHost(u.Hostname()) {
			continue
		}
		seen[u.Host] = true
	}
	return 1 + len(seen)
}

func isLocalHost(host string) bool {
	if host == "localhost" {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
