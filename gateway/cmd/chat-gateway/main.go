// Command chat-gateway serves the ChatScalable chat: the HTTP API, SSE
// streams and the chat page, on an embedded NATS node (the quickstart) or as
// a stateless client of an external NATS cluster (--nats-url).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/gateway/internal/commandline"
	"github.com/chatscalable/chatscalable/services/inprocess"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	version = envflag.BuildVersion(version)
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(commandline.Healthcheck("chat-gateway", "CHAT_", "http://127.0.0.1:8080/readyz", os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(token(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:]))
}

// servePprof serves net/http/pprof on its own listener, kept off the
// public HTTP port.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", ln.Addr().String())
	// A profile or trace may take a minute to write; a header must come
	// quickly, and an idle connection does not stay.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func run(args []string) int {
	cfg, err := parseFlags(args, os.Getenv, os.Stdout)
	if envflag.Answered(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-gateway: %v\n", err)
		return 2
	}
	log := commandline.Logger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if cfg.PprofListen != "" {
		if err := servePprof(cfg.PprofListen, log); err != nil {
			log.Error("pprof", "err", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := cfg.Options
	o.StartServices = inprocess.Starter(inprocess.Options{Version: version, Logger: log})
	o.Version = version
	o.Logger = log
	g, err := gateway.Start(ctx, o)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	<-ctx.Done()
	stop()
	log.Info("stopping", "grace", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}
