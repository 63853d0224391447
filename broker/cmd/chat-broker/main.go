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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/health"
	"github.com/chatscalable/chatscalable/broker/node"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "healthcheck" {
		os.Exit(healthcheck(args[1:], os.Getenv, os.Stderr))
	}
	os.Exit(run(args, os.Getenv, os.Stderr))
}

type config struct {
	name, clientListen, clusterName, clusterListen, routes, dataDir, monitorListen, logLevel string
	lameDuck, electionTimeout                                                                time.Duration
	authUser, authPasswordFile                                                               string
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
	fs.String(&c.monitorListen, "monitor-listen", "0.0.0.0:8222", "NATS HTTP monitoring listener (/healthz, /varz, /jsz); 'off' disables it")
	fs.Duration(&c.electionTimeout, "election-timeout", time.Second, "Raft election timeout: a new leader is elected between this and twice this after a node is lost (nats-server's own default is 4s)")
	fs.Duration(&c.lameDuck, "lame-duck", 5*time.Second, "on SIGTERM, time spent moving clients to other brokers before stopping")
	fs.String(&c.authUser, "auth-user", "", "user name every NATS client must present (empty: no authentication)")
	fs.String(&c.authPasswordFile, "auth-password-file", "", "file holding that user's password, e.g. a Docker secret")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "chat-broker runs one node of the ChatScalable NATS cluster.\n\nUsage:\n  chat-broker [flags]\n  chat-broker healthcheck [--monitor-url URL]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.name == "" {
		return c, errors.New("--node-name must not be empty")
	}
	return c, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	c, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
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
	password, err := envflag.ReadSecret(c.authPasswordFile)
	if err != nil || (c.authUser != "") != (password != "") {
		fmt.Fprintf(stderr, "chat-broker: --auth-user and --auth-password-file go together (%v)\n", err)
		return 2
	}
	opts := node.Options{
		Username:         c.authUser,
		Password:         password,
		Name:             c.name,
		DataDir:          c.dataDir,
		ClientListen:     c.clientListen,
		ClusterName:      c.clusterName,
		LameDuckDuration: c.lameDuck,
		ElectionTimeout:  c.electionTimeout,
		Logger:           log,
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
		"cluster", n.ClusterURL(), "monitor", n.MonitorURL())
	<-ctx.Done()
	log.Info("stopping", "lame_duck", c.lameDuck)
	n.Shutdown()
	log.Info("broker stopped", "node", c.name)
	return 0
}

// healthcheck asks the node's monitoring endpoint whether it runs with
// JetStream enabled, so a container HEALTHCHECK needs no shell or curl.
func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	fs := envflag.New("chat-broker healthcheck", getenv, stderr)
	var monitor string
	var timeout time.Duration
	fs.String(&monitor, "monitor-url", "http://127.0.0.1:8222", "base URL of the node's monitoring endpoint")
	fs.Duration(&timeout, "timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
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
