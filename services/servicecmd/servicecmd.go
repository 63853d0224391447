// Package servicecmd is the main program shared by the service commands
// (chat-presence, chat-rooms): flags with CHAT_ environment equivalents, a
// NATS connection that retries forever, starting the service once
// JetStream answers, a health file for container health checks, a
// `healthcheck` subcommand, and a graceful stop on SIGINT or SIGTERM.
package servicecmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/health"
	"github.com/nats-io/nats.go"
)

// Service is a started service.
type Service interface{ Stop() error }

// Command describes a service command.
type Command struct {
	// Name is the command's name, e.g. chat-rooms.
	Name string
	// Description is the first line of --help.
	Description string
	// Version is the command's main.version, which --version prints.
	Version string
	// Start starts the service on nc; it is called every second until it
	// succeeds.
	Start func(ctx context.Context, nc *nats.Conn, log *slog.Logger) (Service, error)
	// Started is the log message once the service runs.
	Started string
}

// healthMaxAge is how old the health file may be before the service is
// unhealthy; the running service refreshes it every 5 s.
const healthMaxAge = 15 * time.Second

// Run runs the command with args and returns its exit status: 0 on a
// graceful stop, --help or --version (which print on stdout), 1 on a
// failure, 2 on bad arguments. Logs and errors go to stderr.
func Run(c Command, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(c, args[1:], getenv, stdout, stderr)
	}
	fs := envflag.New(c.Name, getenv, stdout)
	var natsURL, natsUser, passwordFile, logLevel, healthFile string
	var tlsFiles broker.TLSFiles
	fs.String(&natsURL, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	fs.String(&natsUser, "nats-user", "", "NATS user name (a broker's service role: service)")
	fs.String(&passwordFile, "nats-password-file", "", "file holding the NATS password, e.g. a Docker secret")
	fs.String(&tlsFiles.CA, "nats-tls-ca", "", "PEM CA that signs the NATS servers' certificates; with it (or --nats-tls-cert) the connection speaks TLS (empty: the system's roots)")
	fs.String(&tlsFiles.Cert, "nats-tls-cert", "", "PEM client certificate, for servers that ask for one")
	fs.String(&tlsFiles.Key, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
	fs.String(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.String(&healthFile, "health-file", "", "`file` kept fresh while the service is connected, for "+c.Name+" healthcheck (empty: none)")
	fs.Version(c.Version)
	fs.Intro = fmt.Sprintf("%s\n\nUsage:\n  %s [flags]\n  %s healthcheck [--health-file FILE]", c.Description, c.Name, c.Name)
	if code, ok := parse(fs, args, c.Name, stderr); !ok {
		return code
	}
	if natsURL == "" {
		fmt.Fprintf(stderr, "%s: --nats-url must not be empty\n", c.Name)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "%s: --log-level: %v\n", c.Name, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	password, err := envflag.ReadSecret(passwordFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 2
	}
	// Replies come to the service role's own inbox prefix (see broker).
	security := []nats.Option{nats.CustomInboxPrefix(broker.ServiceInboxPrefix)}
	if natsUser != "" {
		security = append(security, nats.UserInfo(natsUser, password))
	}
	tlsConfig, err := tlsFiles.ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "%s: --nats-tls-ca, --nats-tls-cert, --nats-tls-key: %v\n", c.Name, err)
		return 2
	}
	if tlsConfig != nil {
		security = append(security, nats.Secure(tlsConfig))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	closed := make(chan struct{})
	nc, err := nats.Connect(natsURL, append(security,
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(3*time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)...)
	if err != nil {
		log.Error("connect to nats", "err", err)
		return 1
	}
	svc, err := start(ctx, c, nc, log)
	if err != nil { // interrupted before the service could start
		nc.Close()
		return 0
	}
	log.Info(c.Started, "nats", nc.ConnectedUrlRedacted())
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		if healthFile != "" {
			health.KeepFile(ctx, healthFile, 5*time.Second, nc.IsConnected)
		}
	}()

	<-ctx.Done()
	log.Info("stopping")
	<-healthDone
	if err := svc.Stop(); err != nil {
		log.Warn("stop service", "err", err)
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		log.Warn("nats drain timed out")
		nc.Close()
	}
	log.Info("stopped")
	return 0
}

// start calls c.Start every second until it succeeds (NATS or JetStream
// may not be up yet) or ctx ends.
func start(ctx context.Context, c Command, nc *nats.Conn, log *slog.Logger) (Service, error) {
	var lastErr string
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		svc, err := c.Start(attempt, nc, log)
		cancel()
		if err == nil {
			return svc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if msg := err.Error(); msg != lastErr {
			log.Warn("service not started yet; retrying every second", "err", err)
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func healthcheck(c Command, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := envflag.New(c.Name+" healthcheck", getenv, stdout)
	fs.Intro = fmt.Sprintf("%s healthcheck exits 0 while the running service keeps its --health-file fresh,\nelse 1 (a container's HEALTHCHECK).\n\nUsage: %s healthcheck --health-file FILE", c.Name, c.Name)
	var healthFile string
	fs.String(&healthFile, "health-file", "", "the `file` the running service keeps fresh")
	if code, ok := parse(fs, args, c.Name+" healthcheck", stderr); !ok {
		return code
	}
	if healthFile == "" {
		fmt.Fprintf(stderr, "%s healthcheck: --health-file (CHAT_HEALTH_FILE) is not set\n", c.Name)
		return 2
	}
	if err := health.CheckFile(healthFile, healthMaxAge); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	return 0
}

// parse parses args; when the command should stop (--help or --version:
// 0, a bad argument: 2, reported as name's) it returns the exit status and
// false.
func parse(fs *envflag.Set, args []string, name string, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case envflag.Answered(err):
		return 0, false
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2, false
	}
}
