package main

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "a Centrifugo HMAC secret for the tests"

func TestCentrifugoTokenSubscribesToTheChannel(t *testing.T) {
	signed, err := centrifugoToken(testSecret, "bench", []string{"room-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(signed, claims, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || !tok.Valid {
		t.Fatalf("the token does not verify with the secret: %v", err)
	}
	if claims["sub"] != "bench" {
		t.Errorf("sub = %v", claims["sub"])
	}
	if ch, _ := claims["channels"].([]any); len(ch) != 1 || ch[0] != "room-1" {
		t.Errorf("channels = %v, want [room-1]", claims["channels"])
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || time.Until(exp.Time) < 59*time.Minute || time.Until(exp.Time) > time.Hour {
		t.Errorf("exp = %v (%v), want an hour from now", exp, err)
	}
}

func TestCentrifugoSSEURLCarriesTheConnectRequest(t *testing.T) {
	u, err := url.Parse(centrifugoSSEURL("http://127.0.0.1:8000/", "a.b+c/d"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "127.0.0.1:8000" || u.Path != "/connection/uni_sse" {
		t.Errorf("URL %s: want the uni_sse path on the base's host", u)
	}
	var connect map[string]string
	if err := json.Unmarshal([]byte(u.Query().Get("cf_connect")), &connect); err != nil {
		t.Fatalf("cf_connect %q is not JSON: %v", u.Query().Get("cf_connect"), err)
	}
	if len(connect) != 1 || connect["token"] != "a.b+c/d" {
		t.Errorf("cf_connect = %v, want only the token", connect)
	}
}

func TestCentrifugoPublishRequest(t *testing.T) {
	ep := centrifugoEndpoint("room-1", `say "hi"`, "tok", "the-key")
	now := time.Date(2026, 11, 30, 13, 0, 0, 123456789, time.UTC)
	req := ep.publish(context.Background(), "http://127.0.0.1:8000/", now)
	if req.Method != "POST" || req.URL.String() != "http://127.0.0.1:8000/api/publish" {
		t.Errorf("%s %s", req.Method, req.URL)
	}
	if req.Header.Get("X-API-Key") != "the-key" || req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Authorization") != "" {
		t.Errorf("headers %v", req.Header)
	}
	b, _ := io.ReadAll(req.Body)
	var body struct {
		Channel string
		Data    struct{ TS, Text string }
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if body.Channel != "room-1" || body.Data.TS != "2026-11-30T13:00:00.123456789Z" || body.Data.Text != `say "hi"` {
		t.Errorf("body %s", b)
	}
	if ep.stored != 200 || string(ep.refused) != `"error"` || ep.auth != "" || string(ep.ready) != `{"connect":{` {
		t.Errorf("stored %d, refused %q, auth %q", ep.stored, ep.refused, ep.auth)
	}
}

func TestReadCentrifugoKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	config := write("config.json", `{"client":{"token":{"hmac_secret_key":"s3cret"}},"http_api":{"key":"k3y"},"uni_sse":{"enabled":true}}`)
	k, err := readCentrifugoKeys(config, "", "")
	if err != nil || k.secret != "s3cret" || k.apiKey != "k3y" {
		t.Errorf("from the config: %+v, %v", k, err)
	}
	k, err = readCentrifugoKeys("", write("secret", "s3cret\n"), write("key", " k3y\n"))
	if err != nil || k.secret != "s3cret" || k.apiKey != "k3y" {
		t.Errorf("from files: %+v, %v", k, err)
	}
	for name, c := range map[string][3]string{
		"nothing":           {"", "", ""},
		"a secret, no key":  {"", write("s2", "x"), ""},
		"config and a file": {config, write("s3", "x"), ""},
		"no API key":        {write("c2.json", `{"client":{"token":{"hmac_secret_key":"s"}}}`), "", ""},
		"not JSON":          {write("c3.json", `client: {}`), "", ""},
		"an empty file":     {"", write("s4", "\n"), write("k4", "k")},
		"a missing file":    {filepath.Join(dir, "none.json"), "", ""},
	} {
		if _, err := readCentrifugoKeys(c[0], c[1], c[2]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCentrifugoOptions(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, []byte(`{"client":{"token":{"hmac_secret_key":"s"}},"http_api":{"key":"k"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parse("fanout", []string{"--centrifugo", "--centrifugo-config", config, "--room", "r-1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.channel != "r-1" || o.centrifugoToken == "" || !strings.Contains(o.endpoint().eventsURL("http://h"), "cf_connect=") {
		t.Errorf("channel %q, token %q", o.channel, o.centrifugoToken)
	}
	for _, bad := range [][]string{
		{"--centrifugo", "--centrifugo-config", config, "--centrifugo-channel", "ns:room"},
		{"--centrifugo", "--centrifugo-config", config, "--centrifugo-channel", "$private"},
		{"--centrifugo", "--centrifugo-config", config, "--mercure"},
		{"--centrifugo"},
	} {
		if _, err := parse("fanout", bad, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// decodeClaims reads a token's claims after checking its signature with
// testSecret.
func decodeClaims(token string, into any) error {
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }); err != nil {
		return err
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}
