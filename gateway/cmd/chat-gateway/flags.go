// chat-gateway's flags, each with a CHAT_-prefixed environment variable as
// its default (--http-addr ↔ CHAT_HTTP_ADDR).

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
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
// gateway.DefaultOptions. --help and --version write to out and return
// errHelp and envflag.ErrVersion.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (options, error) {
	c := options{
		Options:         gateway.DefaultOptions(),
		ShutdownTimeout: defaults.ShutdownTimeout,
		LogLevel:        defaults.LogLevel,
		LogFormat:       defaults.LogFormat,
	}
	fs := envflag.New("chat-gateway", getenv, out)
	maxMsgs := int(c.History.MaxMsgsPerRoom)
	sseWriter, services, authMode := string(c.SSEWriter), string(c.Services), string(c.Auth)
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
	fs.Int(&c.ClientQueue, "client-queue", c.ClientQueue, "messages queued per SSE client whose connection holds output it has not taken, before it is disconnected as too slow (four times as many while the connection has taken everything: the wait is the gateway's own)")
	fs.Int(&c.ClientBuffer, "client-buffer", c.ClientBuffer, "bytes waiting per SSE client (queued messages and output its connection has not taken) before it is disconnected as too slow")
	fs.Duration(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "how long a client may take to take a response, or to catch up with its SSE stream, however little it reads meanwhile")
	fs.Int(&c.MaxConns, "max-conns", c.MaxConns, "most open HTTP connections (SSE streams included); more are refused with 503 and Retry-After; 0: the process's open-file limit less 512 kept for NATS and JetStream")
	fs.Int(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "most open HTTP connections from one client address; 0: no limit (behind a proxy every client shares its address)")
	fs.Duration(&c.Heartbeat, "heartbeat", c.Heartbeat, "interval of SSE heartbeat comments")
	fs.String(&sseWriter, "sse-writer", sseWriter, "how SSE streams are written: loop (a few goroutines write every stream, on connections taken over from net/http; Linux, else handler) or handler (one net/http handler per stream)")
	fs.Duration(&c.SSECoalesce, "sse-coalesce", c.SSECoalesce, "with --sse-writer loop, while its writers are behind (streams have waited for them without a break for 2ms): the shortest time between two writes to one SSE stream, so a busy room's messages go out together (a gateway that keeps up writes at once; 0: always at once)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "grace period for a graceful stop")
	fs.String(&services, "services", services, "where the presence and rooms services run: in-process, off (run elsewhere), or auto (in-process with the embedded NATS node)")
	fs.String(&c.AdminAddr, "admin-addr", "", "listener for operators (e.g. 127.0.0.1:9090): /metrics, /node details and health probes move there from the public listener (empty: all on --http-addr)")
	fs.String(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS and HTTP/2 with; needs --tls-key")
	fs.String(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.String(&authMode, "auth", authMode, "who may publish and listen: off (anyone, as any user: loopback or trusted networks only) or jwt (a JSON Web Token per request)")
	fs.String(&c.AuthJWT.SecretFile, "auth-jwt-secret-file", "", "with --auth jwt: file holding the HS256 secret (at least 32 bytes), e.g. a Docker secret")
	fs.String(&c.AuthJWT.KeyFile, "auth-jwt-key-file", "", "with --auth jwt: PEM public key verifying tokens (RSA: RS256, ECDSA: ES256/384/512, Ed25519: EdDSA)")
	fs.String(&c.AuthJWT.JWKSURL, "auth-jwks-url", "", "with --auth jwt: URL of the issuer's JSON Web Key Set (cached, refreshed hourly and when a token names an unknown key)")
	fs.String(&c.AuthJWT.Issuer, "auth-issuer", "", "with --auth jwt: required iss claim (empty: not checked)")
	fs.String(&c.AuthJWT.Audience, "auth-audience", "", "with --auth jwt: required aud claim (empty: not checked)")
	fs.String(&c.AuthJWT.Cookie, "auth-cookie", "", "with --auth jwt: name of a cookie that may carry the token, for EventSource (empty: none)")
	fs.String(&c.AuthTokenURL, "auth-token-url", "", "with --auth jwt: where the chat page gets its token (a GET with the browser's credentials answering {\"token\":\"…\"})")
	fs.String(&c.AuthSignInURL, "auth-signin-url", "", "with --auth jwt: where the chat page links a browser that is not signed in (the token URL answered 401); ?next=<the page's path> is added")
	fs.Bool(&c.AuthJWT.QueryToken, "auth-query-token", false, "with --auth jwt: accept the token in an access_token query parameter (never logged)")
	fs.Float(&c.PublishRate, "publish-rate", 0, "messages per second one authenticated user may publish (token bucket; 0: no limit); over it, 429 with Retry-After")
	fs.Float(&c.PublishRatePerIP, "publish-rate-per-ip", 0, "messages per second one client address may publish (0: no limit; behind a proxy every client shares its address)")
	fs.Int(&c.PublishBurst, "publish-burst", c.PublishBurst, "messages a user or address may publish at once above its rate")
	fs.Int(&c.MaxStreamsPerUser, "max-streams-per-user", 0, "most open SSE streams of one authenticated user (0: no limit)")
	var allowedOrigins, corsOrigins, privateRooms string
	fs.String(&privateRooms, "private-rooms", "", "comma-separated room patterns (team-*) that only a token granting them can see; to anyone else they do not exist")
	fs.String(&allowedOrigins, "allowed-origins", "", "comma-separated origins (https://host[:port]) whose pages may post with the token cookie, besides the gateway's own")
	fs.String(&corsOrigins, "cors-origins", "", "comma-separated origins whose pages may call the JSON API (CORS)")
	fs.String(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.String(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.String(&c.PprofListen, "pprof-listen", "", "address of a pprof listener for profiling, e.g. 127.0.0.1:6060 (empty: off)")
	addNATSSecurityFlags(fs, &c.Options)
	mercureOrigins := addMercureFlags(fs, &c.Mercure)
	fs.Version(version)
	fs.Intro = `chat-gateway serves the ChatScalable HTTP API and chat page on a NATS bus.

Usage:
  chat-gateway [flags]
  chat-gateway token [flags]        print a signed token (chat-gateway token --help)
  chat-gateway healthcheck [flags]  exit 0 when the gateway answers ready`
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.History.MaxMsgsPerRoom = int64(maxMsgs)
	c.SSEWriter, c.Services, c.Auth = gateway.SSEWriter(sseWriter), gateway.ServicesMode(services), gateway.AuthMode(authMode)
	var err error
	if c.NATSPassword, err = envflag.ReadSecret(passwordFile); err != nil {
		return c, err
	}
	c.ClusterRoutes = envflag.SplitList(routes)
	c.AllowedOrigins, c.CORSOrigins = envflag.SplitList(allowedOrigins), envflag.SplitList(corsOrigins)
	c.PrivateRooms = envflag.SplitList(privateRooms)
	c.Mercure.PublishOrigins = envflag.SplitList(*mercureOrigins)
	return c, c.validate()
}

// pageURL reports whether u is a URL the chat page may use: a path of the
// gateway's site or an http(s) URL.
func pageURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.Scheme == "" && p.Host == "" {
		return strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//")
	}
	return (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
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
	if c.PublishRate < 0 || c.PublishRatePerIP < 0 || c.PublishBurst < 1 || c.MaxStreamsPerUser < 0 {
		errs = append(errs, errors.New("--publish-rate, --publish-rate-per-ip and --max-streams-per-user must not be negative, and --publish-burst must be at least 1"))
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
	for _, p := range c.PrivateRooms {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("--private-rooms %q: %w", p, err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	keys := 0
	for _, k := range []string{c.AuthJWT.SecretFile, c.AuthJWT.KeyFile, c.AuthJWT.JWKSURL} {
		if k != "" {
			keys++
		}
	}
	switch c.Auth {
	case gateway.AuthOff:
		if keys > 0 || c.AuthTokenURL != "" || c.AuthSignInURL != "" || c.AuthJWT.Issuer != "" || c.AuthJWT.Audience != "" || c.AuthJWT.Cookie != "" || c.AuthJWT.QueryToken {
			errs = append(errs, errors.New("--auth-* settings are given but --auth is off; add --auth jwt"))
		}
	case gateway.AuthJWT:
		if keys != 1 {
			errs = append(errs, errors.New("--auth jwt needs exactly one of --auth-jwt-secret-file, --auth-jwt-key-file and --auth-jwks-url"))
		}
	default:
		errs = append(errs, fmt.Errorf("--auth %q is not one of off, jwt", c.Auth))
	}
	for _, u := range []struct{ flag, url string }{{"--auth-token-url", c.AuthTokenURL}, {"--auth-signin-url", c.AuthSignInURL}} {
		if u.url != "" && !pageURL(u.url) {
			errs = append(errs, fmt.Errorf("%s %q must be a path on the gateway's site (/auth/token) or an http(s) URL", u.flag, u.url))
		}
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
