// Command chat-signin is a demo sign-in service for ChatScalable: anyone
// may sign in with a display name of their choice, and the chat page gets
// tokens for that name that gateways started with --auth jwt accept.
//
// It proves nothing about who a user is. It stands where an application's
// real identity provider goes, and shows what that provider must do: mint
// tokens whose sub is the user and whose chat claim grants rooms
// ({"publish":[…],"subscribe":[…],"admin":bool}), and answer the page's
// GET of --auth-token-url with {"token":"…"} for a signed-in browser.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway/internal/commandline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	version = envflag.BuildVersion(version)
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(commandline.Healthcheck("chat-signin", envPrefix, defaultHealthURL, os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	c, err := parseFlags(args, os.Getenv, os.Stdout)
	if envflag.Answered(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-signin: %v\n", err)
		return 2
	}
	log := commandline.Logger(os.Stderr, c.LogLevel, c.LogFormat)
	s, err := newService(c, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-signin: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Warn("chat-signin is a demo: anyone may sign in with any name; put a real identity provider in its place before trusting names")
	log.Info("chat-signin started", "http", ln.Addr().String(), "base", c.BasePath, "version", version)
	select {
	case err := <-served:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	log.Info("stopping", "grace", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}
