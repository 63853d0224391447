// Command chat-presence runs one replica of the ChatScalable presence
// service: who is online in which room, across every gateway. Run as many
// replicas as you like; one of them announces joins and leaves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/nats-io/nats.go"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := envflag.New("chat-presence", os.Getenv, os.Stderr)
	var natsURL, logLevel string
	fs.String(&natsURL, "nats-url", "nats://127.0.0.1:4222", "comma-separated NATS URLs")
	fs.String(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "chat-presence keeps who is online in which room across the ChatScalable cluster.\n\nUsage: chat-presence [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "chat-presence: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "chat-presence: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	closed := make(chan struct{})
	nc, err := nats.Connect(natsURL, nats.Name("chat-presence"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.PingInterval(3*time.Second), nats.MaxPingsOutstanding(3),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		log.Error("connect to nats", "err", err)
		return 1
	}
	var svc *presence.Service
	for svc == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		svc, err = presence.Start(sctx, nc, presence.Options{Version: version, Logger: log})
		cancel()
		if err != nil {
			log.Warn("presence service not started; retrying", "err", err)
			select {
			case <-ctx.Done():
				nc.Close()
				return 0
			case <-time.After(time.Second):
			}
		}
	}
	<-ctx.Done()
	log.Info("stopping")
	if err := svc.Stop(); err != nil {
		log.Warn("stop", "err", err)
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
	}
	return 0
}
