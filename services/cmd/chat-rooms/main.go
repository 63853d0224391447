// Command chat-rooms runs one replica of the ChatScalable rooms directory:
// every room with its message count, last activity, member count and
// topic. It is stateless; run as many replicas as you like.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/chatscalable/chatscalable/services/servicecmd"
	"github.com/nats-io/nats.go"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	version = envflag.BuildVersion(version)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return servicecmd.Run(servicecmd.Command{
		Name:        "chat-rooms",
		Description: "chat-rooms runs the ChatScalable rooms directory service.",
		Version:     version,
		Started:     "rooms service started",
		Start: func(ctx context.Context, nc *nats.Conn, log *slog.Logger) (servicecmd.Service, error) {
			return rooms.Start(ctx, nc, rooms.Options{Version: version, Logger: log})
		},
	}, args, getenv, stdout, stderr)
}
