package main

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway"
)

// envVars are the environment variables of the flags, one per flag.
var envVars = []string{
	"CHAT_MERCURE",
	"CHAT_MERCURE_JWT_SECRET_FILE",
	"CHAT_MERCURE_JWT_KEY_FILE",
	"CHAT_MERCURE_JWKS_URL",
	"CHAT_MERCURE_ANONYMOUS",
	"CHAT_MERCURE_COOKIE",
	"CHAT_MERCURE_PUBLISH_ORIGINS",
	"CHAT_MERCURE_MAX_AGE",
	"CHAT_MERCURE_MAX_MSGS",
	"CHAT_MERCURE_MAX_BYTES",
	"CHAT_MERCURE_MAX_REPLAY",
	"CHAT_MERCURE_SUBSCRIPTIONS",
	"CHAT_HTTP_ADDR",
	"CHAT_NODE_NAME",
	"CHAT_NATS_URL",
	"CHAT_NATS_USER",
	"CHAT_NATS_PASSWORD_FILE",
	"CHAT_DATA_DIR",
	"CHAT_NATS_LISTEN",
	"CHAT_CLUSTER_NAME",
	"CHAT_CLUSTER_LISTEN",
	"CHAT_CLUSTER_ROUTES",
	"CHAT_ELECTION_TIMEOUT",
	"CHAT_HISTORY_REPLICAS",
	"CHAT_MAX_MESSAGE_BYTES",
	"CHAT_HISTORY_MAX_MSGS",
	"CHAT_HISTORY_MAX_AGE",
	"CHAT_MAX_REPLAY",
	"CHAT_CLIENT_QUEUE",
	"CHAT_CLIENT_BUFFER",
	"CHAT_WRITE_TIMEOUT",
	"CHAT_MAX_CONNS",
	"CHAT_MAX_CONNS_PER_IP",
	"CHAT_HEARTBEAT",
	"CHAT_SSE_WRITER",
	"CHAT_SSE_COALESCE",
	"CHAT_SHUTDOWN_TIMEOUT",
	"CHAT_SERVICES",
	"CHAT_LOG_LEVEL",
	"CHAT_LOG_FORMAT",
	"CHAT_PPROF_LISTEN",
	"CHAT_AUTH",
	"CHAT_AUTH_JWT_SECRET_FILE",
	"CHAT_AUTH_JWT_KEY_FILE",
	"CHAT_AUTH_JWKS_URL",
	"CHAT_AUTH_ISSUER",
	"CHAT_AUTH_AUDIENCE",
	"CHAT_AUTH_COOKIE",
	"CHAT_AUTH_QUERY_TOKEN",
	"CHAT_PUBLISH_RATE",
	"CHAT_PUBLISH_RATE_PER_IP",
	"CHAT_PUBLISH_BURST",
	"CHAT_MAX_STREAMS_PER_USER",
	"CHAT_ALLOWED_ORIGINS",
	"CHAT_CORS_ORIGINS",
	"CHAT_PRIVATE_ROOMS",
	"CHAT_TLS_CERT",
	"CHAT_TLS_KEY",
	"CHAT_AUTH_TOKEN_URL",
	"CHAT_AUTH_SIGNIN_URL",
	"CHAT_ADMIN_ADDR",
}

// env returns a getenv reading m, never the process environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parse(t *testing.T, args []string, vars map[string]string) (options, string, error) {
	t.Helper()
	var out bytes.Buffer
	c, err := parseFlags(args, env(vars), &out)
	return c, out.String(), err
}

func TestDefaults(t *testing.T) {
	c, out, err := parse(t, nil, nil)
	if err != nil {
		t.Fatalf("Parse with no flags and no environment: %v\n%s", err, out)
	}
	host, _ := os.Hostname()
	want := options{
		Options: gateway.Options{
			HTTPAddr:        ":8080",
			NodeName:        host,
			NATSURL:         "",
			DataDir:         "./data",
			NATSListen:      "127.0.0.1:4222",
			ClusterName:     "chat",
			ElectionTimeout: time.Second,
			MaxMessageBytes: 4096,
			History:         broker.HistoryConfig{MaxMsgsPerRoom: 1000, MaxAge: 168 * time.Hour},
			MaxReplay:       1000,
			ClientQueue:     256,
			ClientBuffer:    1 << 20,
			WriteTimeout:    10 * time.Second,
			Heartbeat:       15 * time.Second,
			SSEWriter:       "loop",
			SSECoalesce:     10 * time.Millisecond,
			BodyTimeout:     10 * time.Second,
			Services:        "auto",
			Auth:            "off",
			PublishBurst:    20,
			Mercure:         gateway.MercureOptions{Cookie: "mercureAuthorization", MaxReplay: 1000},
		},
		ShutdownTimeout: 10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults =\n  %+v\nwant\n  %+v", c, want)
	}
	if out != "" {
		t.Errorf("Parse wrote %q on success", out)
	}
}

func TestEnvironment(t *testing.T) {
	vars := map[string]string{
		"CHAT_HTTP_ADDR":               ":9000",
		"CHAT_NODE_NAME":               "gw-env",
		"CHAT_NATS_URL":                "nats://a:4222,nats://b:4222",
		"CHAT_DATA_DIR":                "/var/lib/chat",
		"CHAT_NATS_LISTEN":             "off",
		"CHAT_MAX_MESSAGE_BYTES":       "100",
		"CHAT_HISTORY_MAX_MSGS":        "50",
		"CHAT_HISTORY_MAX_AGE":         "1h",
		"CHAT_CLIENT_QUEUE":            "8",
		"CHAT_CLIENT_BUFFER":           "65536",
		"CHAT_WRITE_TIMEOUT":           "3s",
		"CHAT_MAX_CONNS":               "5000",
		"CHAT_MAX_CONNS_PER_IP":        "50",
		"CHAT_HEARTBEAT":               "5s",
		"CHAT_SSE_WRITER":              "handler",
		"CHAT_SHUTDOWN_TIMEOUT":        "3s",
		"CHAT_LOG_LEVEL":               "debug",
		"CHAT_MERCURE":                 "true",
		"CHAT_MERCURE_PUBLISH_ORIGINS": "https://a.example, https://b.example",
		"CHAT_MERCURE_MAX_MSGS":        "500",
		"CHAT_MERCURE_MAX_AGE":         "2h",
		"HTTP_ADDR":                    ":1", // not a CHAT_ variable
	}
	c, out, err := parse(t, nil, vars)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, out)
	}
	want := options{
		Options: gateway.Options{
			HTTPAddr:        ":9000",
			NodeName:        "gw-env",
			NATSURL:         "nats://a:4222,nats://b:4222",
			DataDir:         "/var/lib/chat",
			NATSListen:      "off",
			ClusterName:     "chat",
			ElectionTimeout: time.Second,
			MaxMessageBytes: 100,
			History:         broker.HistoryConfig{MaxMsgsPerRoom: 50, MaxAge: time.Hour},
			MaxReplay:       1000,
			ClientQueue:     8,
			ClientBuffer:    65536,
			WriteTimeout:    3 * time.Second,
			MaxConns:        5000,
			MaxConnsPerIP:   50,
			Heartbeat:       5 * time.Second,
			SSEWriter:       "handler",
			SSECoalesce:     10 * time.Millisecond,
			BodyTimeout:     10 * time.Second,
			Services:        "auto",
			Auth:            "off",
			PublishBurst:    20,
			Mercure: gateway.MercureOptions{Enabled: true, Cookie: "mercureAuthorization", MaxReplay: 1000,
				PublishOrigins: []string{"https://a.example", "https://b.example"}, MaxMsgs: 500, MaxAge: 2 * time.Hour},
		},
		ShutdownTimeout: 3 * time.Second,
		LogLevel:        "debug",
		LogFormat:       "text",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("config from environment =\n  %+v\nwant\n  %+v", c, want)
	}
}

func TestFlagsOverEnvironment(t *testing.T) {
	vars := map[string]string{"CHAT_HTTP_ADDR": ":9000", "CHAT_NODE_NAME": "gw-env", "CHAT_HEARTBEAT": "5s"}
	tests := []struct {
		name  string
		args  []string
		check func(options) bool
	}{
		{"env when flag absent", nil, func(c options) bool { return c.HTTPAddr == ":9000" && c.NodeName == "gw-env" }},
		{"flag wins", []string{"--http-addr", ":7000"}, func(c options) bool { return c.HTTPAddr == ":7000" && c.NodeName == "gw-env" }},
		{"flag with =", []string{"-http-addr=:7001", "--node-name=gw-flag"}, func(c options) bool { return c.HTTPAddr == ":7001" && c.NodeName == "gw-flag" }},
		{"duration flag wins", []string{"--heartbeat", "1m"}, func(c options) bool { return c.Heartbeat == time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, out, err := parse(t, tt.args, vars)
			if err != nil {
				t.Fatalf("Parse(%q): %v\n%s", tt.args, err, out)
			}
			if !tt.check(c) {
				t.Fatalf("Parse(%q) = %+v", tt.args, c)
			}
		})
	}
}

func TestBadEnvironment(t *testing.T) {
	tests := []struct {
		key, value string
	}{
		{"CHAT_HEARTBEAT", "soon"},
		{"CHAT_HISTORY_MAX_AGE", "10"}, // a duration without a unit
		{"CHAT_MAX_MESSAGE_BYTES", "4k"},
		{"CHAT_CLIENT_QUEUE", "1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, _, err := parse(t, nil, map[string]string{"CHAT_NODE_NAME": "gw", tt.key: tt.value})
			if err == nil {
				t.Fatalf("Parse with %s=%q: want an error", tt.key, tt.value)
			}
			if !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), tt.value) {
				t.Fatalf("Parse with %s=%q: error %q does not name the variable and its value", tt.key, tt.value, err)
			}
		})
	}
}

func TestAuthFlags(t *testing.T) {
	c, out, err := parse(t, []string{"--auth", "jwt", "--auth-issuer", "https://id.example"},
		map[string]string{"CHAT_AUTH_JWT_SECRET_FILE": "/run/secrets/jwt", "CHAT_AUTH_COOKIE": "chat_token", "CHAT_AUTH_QUERY_TOKEN": "true"})
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, out)
	}
	want := gateway.AuthOptions{SecretFile: "/run/secrets/jwt", Issuer: "https://id.example", Cookie: "chat_token", QueryToken: true}
	if c.Auth != gateway.AuthJWT || c.AuthJWT != want {
		t.Fatalf("auth = %q %+v, want jwt %+v", c.Auth, c.AuthJWT, want)
	}
}

// The page's sign-in URLs: paths of the gateway's site or http(s) URLs,
// only with auth on.
func TestAuthPageURLs(t *testing.T) {
	jwt := map[string]string{"CHAT_AUTH": "jwt", "CHAT_AUTH_JWT_SECRET_FILE": "/run/secrets/jwt"}
	c, out, err := parse(t, []string{"--auth-token-url", "/auth/token"}, map[string]string{
		"CHAT_AUTH": "jwt", "CHAT_AUTH_JWT_SECRET_FILE": "/run/secrets/jwt", "CHAT_AUTH_SIGNIN_URL": "https://id.example/signin?app=chat"})
	if err != nil || c.AuthTokenURL != "/auth/token" || c.AuthSignInURL != "https://id.example/signin?app=chat" {
		t.Fatalf("Parse: %+v %v\n%s", c.Options, err, out)
	}
	for _, bad := range []string{"javascript:alert(1)", "//evil.example/signin", "auth/signin", "https:///signin", "ftp://id.example/"} {
		if _, _, err := parse(t, []string{"--auth-signin-url", bad}, jwt); err == nil || !strings.Contains(err.Error(), "--auth-signin-url") {
			t.Errorf("--auth-signin-url %q: %v, want an error naming the flag", bad, err)
		}
		if _, _, err := parse(t, []string{"--auth-token-url", bad}, jwt); err == nil || !strings.Contains(err.Error(), "--auth-token-url") {
			t.Errorf("--auth-token-url %q: %v, want an error naming the flag", bad, err)
		}
	}
	if _, _, err := parse(t, []string{"--auth-signin-url", "/auth/signin"}, nil); err == nil || !strings.Contains(err.Error(), "--auth is off") {
		t.Errorf("--auth-signin-url with auth off: %v, want an error", err)
	}
}

func TestFlagOverridesBadEnvironment(t *testing.T) {
	c, _, err := parse(t, []string{"--heartbeat", "5s"}, map[string]string{"CHAT_HEARTBEAT": "soon"})
	if err != nil || c.Heartbeat != 5*time.Second {
		t.Fatalf("Parse(--heartbeat 5s) with CHAT_HEARTBEAT=soon = %v, %v; want the flag to win", c.Heartbeat, err)
	}
}

func TestClusterFlags(t *testing.T) {
	c, _, err := parse(t, []string{"--cluster-listen", "127.0.0.1:6222", "--cluster-routes", " nats://a:6222, ,nats://b:6222"}, nil)
	if err != nil || c.ClusterListen != "127.0.0.1:6222" || !reflect.DeepEqual(c.ClusterRoutes, []string{"nats://a:6222", "nats://b:6222"}) {
		t.Fatalf("cluster flags: %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"--cluster-routes", "nats://a:6222"},
		{"--nats-url", "nats://x:4222", "--cluster-listen", ":6222"},
		{"--history-replicas", "7"},
	} {
		if _, _, err := parse(t, args, nil); err == nil {
			t.Errorf("Parse(%q): want an error", args)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			_, out, err := parse(t, []string{arg}, nil)
			if !errors.Is(err, errHelp) {
				t.Fatalf("Parse(%s) = %v, want ErrHelp", arg, err)
			}
			if !strings.Contains(out, "Usage:\n  chat-gateway [flags]") {
				t.Errorf("usage does not start with the synopsis:\n%s", out)
			}
			for _, name := range envVars {
				if !strings.Contains(out, name) {
					t.Errorf("usage does not mention %s:\n%s", name, out)
				}
			}
		})
	}
}

// TestEveryVariableIsDocumented checks envVars against the variables Parse
// actually reads, so a new flag cannot be left out of the test above.
func TestEveryVariableIsDocumented(t *testing.T) {
	read := map[string]bool{}
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, func(k string) string { read[k] = true; return "" }, &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("Parse(--help) = %v, want ErrHelp", err)
	}
	var got []string
	for k := range read {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), envVars...)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Parse reads %v, want %v", got, want)
	}
}

func TestInvalidValues(t *testing.T) {
	base := map[string]string{"CHAT_NODE_NAME": "gw"}
	tests := []struct {
		name    string
		args    []string
		vars    map[string]string
		mention string // part of the error message
	}{
		{"max-message-bytes 0", []string{"--max-message-bytes", "0"}, base, "--max-message-bytes"},
		{"max-message-bytes too big", []string{"--max-message-bytes", "524289"}, base, "--max-message-bytes"},
		{"max-message-bytes 0 from env", nil, map[string]string{"CHAT_NODE_NAME": "gw", "CHAT_MAX_MESSAGE_BYTES": "0"}, "--max-message-bytes"},
		{"log-level loud", []string{"--log-level", "loud"}, base, "loud"},
		{"log-level loud from env", nil, map[string]string{"CHAT_NODE_NAME": "gw", "CHAT_LOG_LEVEL": "loud"}, "loud"},
		{"history-max-msgs 0", []string{"--history-max-msgs", "0"}, base, "--history-max-msgs"},
		{"history-max-age negative", []string{"--history-max-age", "-1h"}, base, "--history-max-age"},
		{"client-queue 0", []string{"--client-queue", "0"}, base, "--client-queue"},
		{"client-buffer too small", []string{"--client-buffer", "100"}, base, "--client-buffer"},
		{"write-timeout 0", []string{"--write-timeout", "0s"}, base, "--write-timeout"},
		{"max-conns negative", []string{"--max-conns", "-1"}, base, "--max-conns"},
		{"max-conns-per-ip negative", []string{"--max-conns-per-ip", "-1"}, base, "--max-conns-per-ip"},
		{"heartbeat 0", []string{"--heartbeat", "0s"}, base, "--heartbeat"},
		{"sse-writer unknown", []string{"--sse-writer", "threads"}, base, "--sse-writer"},
		{"sse-coalesce negative", []string{"--sse-coalesce", "-1ms"}, base, "--sse-coalesce"},
		{"empty node name", []string{"--node-name", ""}, base, "--node-name"},
		{"empty data dir", []string{"--data-dir", ""}, base, "--data-dir"},
		{"unknown flag", []string{"--loud"}, base, "loud"},
		{"bad flag value", []string{"--heartbeat", "soon"}, base, "heartbeat"},
		{"positional argument", []string{"serve"}, base, "serve"},
		{"auth unknown", []string{"--auth", "basic"}, base, "--auth"},
		{"publish-rate negative", []string{"--publish-rate", "-1"}, base, "--publish-rate"},
		{"private-rooms bad pattern", []string{"--private-rooms", "team-["}, base, "--private-rooms"},
		{"tls-cert without a key", []string{"--tls-cert", "cert.pem"}, base, "--tls-key"},
		{"publish-burst 0", []string{"--publish-burst", "0"}, base, "--publish-burst"},
		{"auth jwt without a key", []string{"--auth", "jwt"}, base, "exactly one of"},
		{"auth jwt with two keys", []string{"--auth", "jwt", "--auth-jwt-secret-file", "s", "--auth-jwks-url", "https://id/jwks"}, base, "exactly one of"},
		{"auth settings with auth off", []string{"--auth-jwt-secret-file", "s"}, base, "--auth is off"},
		{"auth-query-token not a boolean", nil, map[string]string{"CHAT_NODE_NAME": "gw", "CHAT_AUTH_QUERY_TOKEN": "maybe"}, "CHAT_AUTH_QUERY_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(t, tt.args, tt.vars)
			if err == nil {
				t.Fatalf("Parse(%q): want an error", tt.args)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Parse(%q) = %q, want it to mention %q", tt.args, err, tt.mention)
			}
		})
	}
	// An external NATS cluster needs no data folder.
	if _, _, err := parse(t, []string{"--data-dir", "", "--nats-url", "nats://a:4222"}, base); err != nil {
		t.Fatalf("Parse with --nats-url and no --data-dir: %v", err)
	}
	// Several bad values are all reported.
	_, _, err := parse(t, []string{"--max-message-bytes", "0", "--log-level", "loud"}, base)
	if err == nil || !strings.Contains(err.Error(), "--max-message-bytes") || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("Parse with two bad values = %v, want both reported", err)
	}
}

func TestVersion(t *testing.T) {
	_, out, err := parse(t, []string{"--version"}, map[string]string{"CHAT_HEARTBEAT": "never"})
	if !errors.Is(err, envflag.ErrVersion) {
		t.Fatalf("Parse(--version) = %v, want ErrVersion", err)
	}
	if !strings.HasPrefix(out, "chat-gateway dev") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version printed %q", out)
	}
}
