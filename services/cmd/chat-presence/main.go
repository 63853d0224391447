// Command chat-presence runs one replica of the ChatScalable presence
// service: who is online in which room, across every gateway. Run as many
// replicas as you like; one of them announces joins and leaves.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/services/presence"
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
		Name:        "chat-presence",
		Description: "chat-presence keeps who is online in which room across the ChatScalable cluster.",
		Version:     version,
		Started:     "presence service running",
		Start: func(ctx context.Context, nc *nats.Conn, log *slog.Logger) (servicecmd.Service, error) {
			return presence.Start(ctx, nc, presence.Options{Version: version, Logger: log})
		},
	}, args, getenv, stdout, stderr)
}
