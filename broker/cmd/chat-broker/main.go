// Command chat-broker runs one node of a dedicated ChatScalable NATS
// cluster: a JetStream-enabled nats-server that keeps the room history,
// with stateless chat-gateway replicas as its clients (--nats-url).
//
//	chat-broker [flags]              run a node
//	chat-broker healthcheck [flags]  exit 0 if the node's /healthz is ok
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/health"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodeflags"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	version = envflag.BuildVersion(version)
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "healthcheck" {
		os.Exit(healthcheck(args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(args, os.Getenv, os.Stdout, os.Stderr))
}

type config struct {
	name, clientListen, clusterName, clusterListen, routes, dataDir, monitorListen, logLevel string
	lameDuck, electionTimeout                                                                time.Duration
	auth                                                                                     node.Auth
	tls                                                                                      broker.TLSFiles
	verifyClients                                                                            bool
}

func parse(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	host, _ := os.Hostname()
	fs := envflag.New("chat-broker", getenv, out)
	fs.String(&c.name, "node-name", host, "server name of this node; unique in the cluster")
	fs.String(&c.clientListen, "client-listen", "0.0.0.0:4222", "NATS client listener (gateways, services, nats CLI)")
	fs.String(&c.clusterName, "cluster-name", "chat", "NATS cluster name")
	fs.String(&c.clusterListen, "cluster-listen", "0.0.0.0:6222", "route listener for the other brokers ('off': a single node)")
	fs.String(&c.routes, "cluster-routes", "", "comma-separated route URLs of the brokers (nats://host:6222), this node's own allowed")
	fs.String(&c.dataDir, "data-dir", "./data", "folder for JetStream data")
	fs.String(&c.monitorListen, "monitor-listen", "127.0.0.1:8222", "NATS HTTP monitoring listener (/healthz, /varz, /jsz; unauthenticated: keep it on loopback or a private network); 'off' disables it")
	fs.Duration(&c.electionTimeout, "election-timeout", time.Second, "Raft election timeout: a new leader is elected between this and twice this after a node is lost (nats-server's own default is 4s)")
	fs.Duration(&c.lameDuck, "lame-duck", 5*time.Second, "on SIGTERM, time spent moving clients to other brokers before stopping")
	nodeflags.AddAuth(fs, &c.auth, "this broker")
	fs.Bool(&c.auth.NoAuth, "no-auth", false, "accept anonymous NATS clients and routes without credentials, with every right (for a trusted network only; logged as a warning)")
	fs.String(&c.tls.Cert, "nats-tls-cert", "", "PEM certificate of the client and route listeners; with it they speak TLS only")
	fs.String(&c.tls.Key, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
	fs.String(&c.tls.CA, "nats-tls-ca", "", "PEM CA that signs the other brokers' certificates (routes verify each other) and, with --nats-tls-verify-clients, the clients' (empty: the system's roots)")
	fs.Bool(&c.verifyClients, "nats-tls-verify-clients", false, "require clients to present a certificate signed by --nats-tls-ca, besides their password")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Version(version)
	fs.Intro = "chat-broker runs one node of the ChatScalable NATS cluster.\n\nUsage:\n  chat-broker [flags]\n  chat-broker healthcheck [--monitor-url URL]"
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.validate()
}

// validate refuses a configuration that leaves the bus open by mistake.
func (c config) validate() error {
	var errs []error
	if c.name == "" {
		errs = append(errs, errors.New("--node-name must not be empty"))
	}
	switch {
	case c.auth.NoAuth && (len(c.auth.Passwords) > 0 || c.auth.RoutePassword != ""):
		errs = append(errs, errors.New("--no-auth and password files exclude each other"))
	case c.auth.NoAuth:
	case len(c.auth.Passwords) == 0:
		errs = append(errs, errors.New("NATS clients must log in: give at least one of --gateway-password-file, --service-password-file, --reader-password-file, --admin-password-file (or --no-auth to accept anonymous clients)"))
	}
	if !c.auth.NoAuth && c.clusterListen != "off" && c.auth.RoutePassword == "" {
		errs = append(errs, errors.New("routes must log in: give --cluster-password-file (or --cluster-listen off for a single broker, or --no-auth)"))
	}
	if err := c.tls.Check(); err != nil {
		errs = append(errs, fmt.Errorf("--nats-tls-cert, --nats-tls-key, --nats-tls-ca: %w", err))
	} else if c.tls.Enabled() && (c.tls.Cert == "" || c.tls.Key == "") {
		errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key are required for TLS"))
	}
	if c.verifyClients && c.tls.CA == "" {
		errs = append(errs, errors.New("--nats-tls-verify-clients needs --nats-tls-ca"))
	}
	return errors.Join(errs...)
}

// run runs the broker; --help and --version print on stdout, logs and
// errors go to stderr.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parse(args, getenv, stdout)
	if envflag.Answered(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-broker: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintf(stderr, "chat-broker: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts := node.Options{
		Auth:             c.auth,
		TLS:              c.tls,
		VerifyClients:    c.verifyClients,
		Name:             c.name,
		DataDir:          c.dataDir,
		ClientListen:     c.clientListen,
		ClusterName:      c.clusterName,
		LameDuckDuration: c.lameDuck,
		ElectionTimeout:  c.electionTimeout,
		Logger:           log,
		ListenFlags:      node.ListenFlags{Client: "--client-listen", Cluster: "--cluster-listen", Monitor: "--monitor-listen"},
	}
	if c.clusterListen != "off" {
		opts.ClusterListen = c.clusterListen
		opts.Routes = envflag.SplitList(c.routes)
	}
	if c.monitorListen != "off" {
		opts.MonitorListen = c.monitorListen
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(opts)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	log.Info("broker started", "node", c.name, "version", version, "nats", n.ClientURL(),
		"cluster", n.ClusterURL(), "monitor", n.MonitorURL(), "roles", roles(c.auth), "tls", c.tls.Enabled())
	if c.auth.NoAuth {
		log.Warn("NATS AUTHENTICATION IS OFF (--no-auth): any client that reaches this broker may publish, read and delete everything, forge live messages, and any server may join its cluster as a route; use it on a trusted network only")
	}
	<-ctx.Done()
	log.Info("stopping", "lame_duck", c.lameDuck)
	n.Shutdown()
	log.Info("broker stopped", "node", c.name)
	return 0
}

// roles lists the roles whose users may log in, for the start line.
func roles(a node.Auth) string {
	if a.NoAuth {
		return "anonymous"
	}
	var out []string
	for _, r := range node.Roles {
		if _, ok := a.Passwords[r]; ok {
			out = append(out, string(r))
		}
	}
	return strings.Join(out, ",")
}

// healthcheck asks the node's monitoring endpoint whether it runs with
// JetStream enabled, so a container HEALTHCHECK needs no shell or curl.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := envflag.New("chat-broker healthcheck", getenv, stdout)
	fs.Intro = "chat-broker healthcheck exits 0 when the node's monitoring endpoint reports JetStream\nrunning, else 1 (a container's HEALTHCHECK).\n\nUsage: chat-broker healthcheck [flags]"
	var monitor string
	var timeout time.Duration
	fs.String(&monitor, "monitor-url", "http://127.0.0.1:8222", "base URL of the node's monitoring endpoint")
	fs.Duration(&timeout, "timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		if envflag.Answered(err) {
			return 0
		}
		fmt.Fprintf(stderr, "chat-broker healthcheck: %v\n", err)
		return 2
	}
	// Only "is JetStream on": a node must count as healthy before its
	// cluster forms, since swarm hides unhealthy tasks from the DNS the
	// other nodes need to find it.
	if err := health.CheckURL(strings.TrimRight(monitor, "/")+"/healthz?js-enabled-only=true", timeout); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	return 0
}
