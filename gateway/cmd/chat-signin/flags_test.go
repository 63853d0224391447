package main

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFlagsFromTheEnvironment(t *testing.T) {
	c, err := parseFlags(nil, env(map[string]string{
		"CHAT_SIGNIN_SECRET_FILE":      "/run/secrets/jwt_secret",
		"CHAT_SIGNIN_SESSION_KEY_FILE": "/run/secrets/session_key",
		"CHAT_SIGNIN_PUBLISH":          "lobby, team-*",
		"CHAT_SIGNIN_ADMIN_USERS":      "ana,bo",
		"CHAT_SIGNIN_TTL":              "5m",
		"CHAT_SIGNIN_SESSION_TTL":      "1h",
		"CHAT_SIGNIN_BASE_PATH":        "/id",
		"CHAT_SIGNIN_COOKIE_SECURE":    "true",
		"CHAT_TTL":                     "1s", // another command's: not read
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretFile != "/run/secrets/jwt_secret" || c.SessionKeyFile != "/run/secrets/session_key" ||
		!slices.Equal(c.Publish, []string{"lobby", "team-*"}) || !slices.Equal(c.Subscribe, []string{"*"}) ||
		!slices.Equal(c.AdminUsers, []string{"ana", "bo"}) || c.TTL != 5*time.Minute || c.SessionTTL != time.Hour ||
		c.BasePath != "/id" || !c.CookieSecure || c.HTTPAddr != ":8090" || c.Cookie != "chat_session" {
		t.Errorf("config %+v", c)
	}
	// A flag wins over the environment.
	c, err = parseFlags([]string{"--ttl", "2m"}, env(map[string]string{
		"CHAT_SIGNIN_SECRET_FILE": "s", "CHAT_SIGNIN_SESSION_KEY_FILE": "k", "CHAT_SIGNIN_TTL": "5m",
	}), io.Discard)
	if err != nil || c.TTL != 2*time.Minute {
		t.Errorf("--ttl 2m over CHAT_SIGNIN_TTL=5m: %v %v", c.TTL, err)
	}
}

func TestBadFlags(t *testing.T) {
	keys := []string{"--secret-file", "s", "--session-key-file", "k"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "exactly one of --secret-file and --private-key-file"},
		{[]string{"--secret-file", "s", "--private-key-file", "p", "--session-key-file", "k"}, nil, "exactly one"},
		{[]string{"--secret-file", "s"}, nil, "--session-key-file is required"},
		{append(keys, "--base-path", "/auth/"), nil, "--base-path"},
		{append(keys, "--base-path", "auth"), nil, "--base-path"},
		{append(keys, "--cookie-name", "a b"), nil, "--cookie-name"},
		{append(keys, "--ttl", "1s"), nil, "--ttl must be"},
		{append(keys, "--session-ttl", "0s"), nil, "--session-ttl must be"},
		{append(keys, "--publish", "team-["), nil, `--publish "team-["`},
		{append(keys, "--admin-users", "a\x01"), nil, "--admin-users"},
		{append(keys, "--log-level", "loud"), nil, "--log-level"},
		{append(keys, "--log-format", "xml"), nil, "--log-format"},
		{append(keys, "extra"), nil, `unexpected argument "extra"`},
		{keys, map[string]string{"CHAT_SIGNIN_TTL": "soon"}, `CHAT_SIGNIN_TTL="soon"`},
		{append(keys, "--nope"), nil, "flag provided but not defined"},
	} {
		var out bytes.Buffer
		_, err := parseFlags(tc.args, env(tc.env), &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), tc.want) {
			t.Errorf("%q %v: %v, want an error saying %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"demo", "real identity provider", "-session-key-file", "CHAT_SIGNIN_SESSION_KEY_FILE", "-admin-users", "<base>/token"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}
