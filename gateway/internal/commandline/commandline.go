// Package commandline holds what the gateway module's commands share
// around their flags: the healthcheck subcommand of a container image and
// the logger --log-level and --log-format choose.
package commandline

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/health"
)

// Healthcheck is the `healthcheck` subcommand of command name: it exits 0
// when a GET of --healthcheck-url (default defaultURL) answers 200, so a
// container HEALTHCHECK needs no shell or curl. Its flags' environment
// variables start with envPrefix. --help prints its usage on stdout.
func Healthcheck(name, envPrefix, defaultURL string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := envflag.NewPrefixed(name+" healthcheck", envPrefix, getenv, stdout)
	fs.Intro = fmt.Sprintf("%s healthcheck exits 0 when a GET of --healthcheck-url answers 200, else 1\n(a container's HEALTHCHECK).\n\nUsage: %s healthcheck [flags]", name, name)
	var url string
	var timeout time.Duration
	fs.String(&url, "healthcheck-url", defaultURL, "URL to check")
	fs.Duration(&timeout, "healthcheck-timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		if envflag.Answered(err) {
			return 0
		}
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 2
	}
	if err := health.CheckURL(url, timeout); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	return 0
}

// Logger returns a logger writing to w at level (debug, info, warn or
// error) in format (text or json).
func Logger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	var handler slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})
	if format == "json" {
		handler = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	}
	return slog.New(handler)
}
