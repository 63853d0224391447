// Package config reads chat-gateway's settings from flags, each with a
// CHAT_-prefixed environment variable as its default
// (--http-addr ↔ CHAT_HTTP_ADDR).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is chat-gateway's configuration.
type Config struct {
	HTTPAddr        string
	NodeName        string
	NATSURL         string
	DataDir         string
	NATSListen      string
	MaxMessageBytes int
	HistoryMaxMsgs  int64
	HistoryMaxAge   time.Duration
	ClientQueue     int
	Heartbeat       time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
}

// ErrHelp is returned by Parse when --help was asked for; usage has been
// written.
var ErrHelp = flag.ErrHelp

// Parse reads the configuration from args (without the program name) and
// from environment variables looked up with getenv. Usage and errors are
// written to out.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("chat-gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	host, _ := os.Hostname()
	env := envReader{getenv: getenv}

	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, env.str(name, def), usage+" (env "+envName(name)+")")
	}
	integer := func(p *int, name string, def int, usage string) {
		fs.IntVar(p, name, env.int(name, def), usage+" (env "+envName(name)+")")
	}
	duration := func(p *time.Duration, name string, def time.Duration, usage string) {
		fs.DurationVar(p, name, env.duration(name, def), usage+" (env "+envName(name)+")")
	}
	var maxMsgs int
	str(&c.HTTPAddr, "http-addr", ":8080", "HTTP listen address")
	str(&c.NodeName, "node-name", host, "name of this gateway node, shown to users and in X-Chat-Node")
	str(&c.NATSURL, "nats-url", "", "comma-separated NATS URLs of an external NATS cluster; empty starts an embedded NATS node")
	str(&c.DataDir, "data-dir", "./data", "folder for the embedded node's JetStream data")
	str(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "NATS client listener of the embedded node ('off' disables it)")
	integer(&c.MaxMessageBytes, "max-message-bytes", 4096, "largest message text accepted, in bytes")
	integer(&maxMsgs, "history-max-msgs", 1000, "messages kept per room")
	duration(&c.HistoryMaxAge, "history-max-age", 168*time.Hour, "how long messages are kept")
	integer(&c.ClientQueue, "client-queue", 256, "messages queued per SSE client before it is disconnected as too slow")
	duration(&c.Heartbeat, "heartbeat", 15*time.Second, "interval of SSE heartbeat comments")
	duration(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "grace period for a graceful stop")
	str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "chat-gateway serves the ChatScalable HTTP API and chat page on a NATS bus.\n\nUsage: chat-gateway [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if env.err != nil {
		return c, env.err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.HistoryMaxMsgs = int64(maxMsgs)
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name must not be empty"))
	}
	if c.MaxMessageBytes < 1 || c.MaxMessageBytes > 512*1024 {
		errs = append(errs, errors.New("--max-message-bytes must be from 1 to 524288"))
	}
	if c.HistoryMaxMsgs < 1 {
		errs = append(errs, errors.New("--history-max-msgs must be at least 1"))
	}
	if c.HistoryMaxAge <= 0 {
		errs = append(errs, errors.New("--history-max-age must be positive"))
	}
	if c.ClientQueue < 1 {
		errs = append(errs, errors.New("--client-queue must be at least 1"))
	}
	if c.Heartbeat <= 0 {
		errs = append(errs, errors.New("--heartbeat must be positive"))
	}
	if c.NATSURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must be set for the embedded NATS node"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "CHAT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envReader reads typed defaults from the environment, remembering the
// first bad value.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

func (e *envReader) int(name string, def int) int {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, v, err)
		return def
	}
	return n
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, v, err)
		return def
	}
	return d
}

func (e *envReader) lookup(name string) (string, bool) {
	v := e.getenv(envName(name))
	return v, v != ""
}

func (e *envReader) fail(name, v string, err error) {
	if e.err == nil {
		e.err = fmt.Errorf("%s=%q: %w", envName(name), v, err)
	}
}
