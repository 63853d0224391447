package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/broker/node"
)

func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseAuth(t *testing.T) {
	gw, route := secretFile(t, "gw-pass"), secretFile(t, "route-pass")
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		err  string // "" for none
	}{
		{"no credentials", []string{"--cluster-listen", "off"}, nil, "NATS clients must log in"},
		{"routes without credentials", []string{"--gateway-password-file", gw}, nil, "routes must log in"},
		{"a single broker", []string{"--cluster-listen", "off", "--gateway-password-file", gw}, nil, ""},
		{"a cluster", []string{"--gateway-password-file", gw, "--cluster-password-file", route}, nil, ""},
		{"no-auth", []string{"--no-auth"}, nil, ""},
		{"no-auth from the environment", nil, map[string]string{"CHAT_NO_AUTH": "true"}, ""},
		{"no-auth and a password", []string{"--no-auth", "--reader-password-file", gw}, nil, "exclude each other"},
		{"a missing password file", []string{"--cluster-listen", "off", "--reader-password-file", gw + ".missing"}, nil, "no such file"},
		{"a missing file from the environment", []string{"--cluster-listen", "off"}, map[string]string{"CHAT_ADMIN_PASSWORD_FILE": "/nonexistent"}, "CHAT_ADMIN_PASSWORD_FILE"},
		{"an empty password file", []string{"--cluster-listen", "off", "--reader-password-file", secretFile(t, " ")}, nil, "is empty"},
		{"verify clients without a CA", []string{"--no-auth", "--nats-tls-verify-clients"}, nil, "needs --nats-tls-ca"},
		{"a certificate without a key", []string{"--no-auth", "--nats-tls-cert", gw}, nil, "go together"},
	} {
		t.Run(c.name, func(t *testing.T) {
			getenv := noEnv
			if c.env != nil {
				getenv = func(k string) string { return c.env[k] }
			}
			cfg, err := parse(c.args, getenv, io.Discard)
			if c.err == "" && err != nil {
				t.Fatalf("parse: %v", err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("parse: %v, want an error with %q", err, c.err)
			}
			if c.err == "" && !cfg.auth.NoAuth && cfg.auth.Passwords[node.RoleGateway] != "gw-pass" {
				t.Errorf("gateway password %q", cfg.auth.Passwords[node.RoleGateway])
			}
		})
	}
}

func TestMonitorOnLoopbackByDefault(t *testing.T) {
	cfg, err := parse([]string{"--no-auth"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !node.IsLoopback(cfg.monitorListen) {
		t.Errorf("--monitor-listen defaults to %s", cfg.monitorListen)
	}
}
