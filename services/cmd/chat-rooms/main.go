// Command chat-rooms runs the ChatScalable rooms directory (package
// services/rooms): a stateless NATS micro service answering
// chat.rooms.list, chat.rooms.get and chat.rooms.topic. Run as many
// replicas as wanted; they share the requests.
//
//	chat-rooms [--nats-url URL] [--log-level LEVEL]
//
// Every flag can also be set with its CHAT_ environment variable
// (--nats-url ↔ CHAT_NATS_URL). It waits for NATS and JetStream to be
// reachable, and stops cleanly on SIGINT or SIGTERM.
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
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

type config struct {
	natsURL, logLevel string
}

func parse(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := envflag.New("chat-rooms", getenv, out)
	fs.String(&c.natsURL, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "chat-rooms runs the ChatScalable rooms directory service.\n\nUsage:\n  chat-rooms [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.natsURL == "" {
		return c, errors.New("--nats-url must not be empty")
	}
	return c, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	c, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-rooms: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintf(stderr, "chat-rooms: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	closed := make(chan struct{})
	nc, err := nats.Connect(c.natsURL,
		nats.Name("chat-rooms"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		log.Error("connect to nats", "url", c.natsURL, "err", err)
		return 1
	}

	svc, err := startService(ctx, nc, log)
	if err != nil { // interrupted before the service could start
		log.Info("stopping", "reason", "signal before start")
		nc.Close()
		return 0
	}
	log.Info("rooms service started", "version", version, "nats", c.natsURL)

	<-ctx.Done()
	log.Info("stopping")
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
	log.Info("rooms service stopped")
	return 0
}

// startService calls rooms.Start every second until it succeeds (NATS or
// JetStream may not be up yet) or ctx ends.
func startService(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*rooms.Service, error) {
	var lastErr string
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		svc, err := rooms.Start(attempt, nc, rooms.Options{Version: version, Logger: log})
		cancel()
		if err == nil {
			return svc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if msg := err.Error(); msg != lastErr {
			log.Warn("rooms service not started yet; retrying every second", "err", err)
			lastErr = msg
		} else {
			log.Debug("rooms service not started yet", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
