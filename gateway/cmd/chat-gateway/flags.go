// chat-gateway's flags, each with a CHAT_-prefixed environment variable as
// its default (--http-addr ↔ CHAT_HTTP_ADDR).

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
)

// options is chat-gateway's configuration: the gateway's options, filled
// by the flag parser itself, and the few settings of the command.
type options struct {
	gateway.Options
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	PprofListen     string
}

// errHelp is returned by parseFlags when --help was asked for; usage has
// been written.
var errHelp = flag.ErrHelp

// parseFlags reads the configuration from args (without the program name)
// and from environment variables looked up with getenv, over
// gateway.DefaultOptions. Usage and errors are written to out.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (options, error) {
	c := options{
		Options:         gateway.DefaultOptions(),
		ShutdownTimeout: defaults.ShutdownTimeout,
		LogLevel:        defaults.LogLevel,
		LogFormat:       defaults.LogFormat,
	}
	fs := envflag.New("chat-gateway", getenv, out)
	maxMsgs := int(c.History.MaxMsgsPerRoom)
	sseWriter, services := string(c.SSEWriter), string(c.Services)
	var routes string
	fs.String(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address")
	fs.String(&c.NodeName, "node-name", c.NodeName, "name of this gateway node, shown to users and in X-Chat-Node; unique in a cluster")
	fs.String(&c.NATSURL, "nats-url", "", "comma-separated NATS URLs of an external NATS cluster; empty starts an embedded NATS node")
	fs.String(&c.NATSUser, "nats-user", "", "user name for the external NATS cluster")
	var passwordFile string
	fs.String(&passwordFile, "nats-password-file", "", "file holding the NATS password, e.g. a Docker secret")
	fs.String(&c.DataDir, "data-dir", c.DataDir, "folder for the embedded node's JetStream data")
	fs.String(&c.NATSListen, "nats-listen", c.NATSListen, "NATS client listener of the embedded node ('off' disables it)")
	fs.String(&c.ClusterName, "cluster-name", c.ClusterName, "NATS cluster name of the embedded node's peer mesh")
	fs.String(&c.ClusterListen, "cluster-listen", "", "route listener (host:port) joining the embedded node to a peer mesh; empty: standalone")
	fs.String(&routes, "cluster-routes", "", "comma-separated route URLs of the mesh's nodes (nats://host:6222), this node's own allowed")
	fs.Duration(&c.ElectionTimeout, "election-timeout", c.ElectionTimeout, "Raft election timeout of the mesh: a new leader is elected between this and twice this after a node is lost")
	fs.Int(&c.MaxMessageBytes, "max-message-bytes", c.MaxMessageBytes, "largest message text accepted, in bytes")
	fs.Int(&maxMsgs, "history-max-msgs", maxMsgs, "messages kept per room")
	fs.Duration(&c.History.MaxAge, "history-max-age", c.History.MaxAge, "how long messages are kept")
	fs.Int(&c.History.Replicas, "history-replicas", c.History.Replicas, "replicas of the history stream; 0 picks 3 on a cluster of 3 or more nodes, else 1, and never scales down")
	fs.Int(&c.MaxReplay, "max-replay", c.MaxReplay, "most messages replayed to a client resuming from a cursor; beyond it the client gets a reset event and the newest messages")
	fs.Int(&c.ClientQueue, "client-queue", c.ClientQueue, "messages queued per SSE client before it is disconnected as too slow")
	fs.Int(&c.ClientBuffer, "client-buffer", c.ClientBuffer, "bytes waiting per SSE client (queued messages and output its connection has not taken) before it is disconnected as too slow")
	fs.Duration(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "how long a client may take to take a response, or to catch up with its SSE stream, however little it reads meanwhile")
	fs.Int(&c.MaxConns, "max-conns", c.MaxConns, "most open HTTP connections (SSE streams included); more are refused with 503 and Retry-After; 0: the process's open-file limit less 512 kept for NATS and JetStream")
	fs.Int(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "most open HTTP connections from one client address; 0: no limit (behind a proxy every client shares its address)")
	fs.Duration(&c.Heartbeat, "heartbeat", c.Heartbeat, "interval of SSE heartbeat comments")
	fs.String(&sseWriter, "sse-writer", sseWriter, "how SSE streams are written: loop (a few goroutines write every stream, on connections taken over from net/http; Linux, else handler) or handler (one net/http handler per stream)")
	fs.Duration(&c.SSECoalesce, "sse-coalesce", c.SSECoalesce, "with --sse-writer loop, while many streams wait to be written: the shortest time between two writes to one SSE stream, so a busy room's messages go out together (an idle gateway writes at once; 0: always at once)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "grace period for a graceful stop")
	fs.String(&services, "services", services, "where the presence and rooms services run: in-process, off (run elsewhere), or auto (in-process with the embedded NATS node)")
	fs.String(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.String(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.String(&c.PprofListen, "pprof-listen", "", "address of a pprof listener for profiling, e.g. 127.0.0.1:6060 (empty: off)")
	addNATSSecurityFlags(fs, &c.Options)
	fs.Usage = func() {
		fmt.Fprintf(out, "chat-gateway serves the ChatScalable HTTP API and chat page on a NATS bus.\n\nUsage: chat-gateway [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.History.MaxMsgsPerRoom = int64(maxMsgs)
	c.SSEWriter, c.Services = gateway.SSEWriter(sseWriter), gateway.ServicesMode(services)
	var err error
	if c.NATSPassword, err = envflag.ReadSecret(passwordFile); err != nil {
		return c, err
	}
	c.ClusterRoutes = envflag.SplitList(routes)
	return c, c.validate()
}

func (c options) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name must not be empty"))
	}
	if c.MaxMessageBytes < 1 || c.MaxMessageBytes > 512*1024 {
		errs = append(errs, errors.New("--max-message-bytes must be from 1 to 524288"))
	}
	if c.History.MaxMsgsPerRoom < 1 {
		errs = append(errs, errors.New("--history-max-msgs must be at least 1"))
	}
	if c.History.MaxAge <= 0 {
		errs = append(errs, errors.New("--history-max-age must be positive"))
	}
	if c.History.Replicas < 0 || c.History.Replicas > 5 {
		errs = append(errs, errors.New("--history-replicas must be from 0 (automatic) to 5"))
	}
	if c.MaxReplay < 1 || c.MaxReplay > 100000 {
		errs = append(errs, errors.New("--max-replay must be from 1 to 100000"))
	}
	if c.ClientQueue < 1 {
		errs = append(errs, errors.New("--client-queue must be at least 1"))
	}
	if c.ClientBuffer < 4096 || c.ClientBuffer > 1<<30 {
		errs = append(errs, errors.New("--client-buffer must be from 4096 bytes to 1 GiB"))
	}
	if c.WriteTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("--write-timeout must be at least 100ms"))
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		errs = append(errs, errors.New("--max-conns and --max-conns-per-ip must not be negative"))
	}
	if c.Heartbeat <= 0 {
		errs = append(errs, errors.New("--heartbeat must be positive"))
	}
	if c.NATSURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must be set for the embedded NATS node"))
	}
	if c.NATSURL != "" && (c.ClusterListen != "" || len(c.ClusterRoutes) > 0) {
		errs = append(errs, errors.New("--cluster-listen and --cluster-routes are for the embedded node; with --nats-url the gateway is a client of that cluster"))
	}
	if len(c.ClusterRoutes) > 0 && c.ClusterListen == "" {
		errs = append(errs, errors.New("--cluster-routes needs --cluster-listen"))
	}
	if c.SSECoalesce < 0 || c.SSECoalesce > time.Second {
		errs = append(errs, errors.New("--sse-coalesce must be from 0 to 1s"))
	}
	switch c.SSEWriter {
	case gateway.SSEWriterLoop, gateway.SSEWriterHandler:
	default:
		errs = append(errs, fmt.Errorf("--sse-writer %q is not one of loop, handler", c.SSEWriter))
	}
	switch c.Services {
	case gateway.ServicesAuto, gateway.ServicesInProcess, gateway.ServicesOff:
	default:
		errs = append(errs, fmt.Errorf("--services %q is not one of auto, in-process, off", c.Services))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q is not text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}
