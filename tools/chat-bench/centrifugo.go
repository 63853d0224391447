package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo (v6) is measured as a peer: subscribers read its
// unidirectional SSE endpoint, publishes go through its HTTP server API.
const (
	centrifugoSSEPath     = "/connection/uni_sse"
	centrifugoPublishPath = "/api/publish"
	// centrifugoMarker occurs once in every publication push of the
	// uni_sse stream, `data: {"channel":"…","pub":{"data":…}}`, and in no
	// other push: the connect push lists the channels under "subs" as
	// `"name":{}` after '{' or '}', never after a string's closing quote
	// (a channel named pub included), and pings carry no JSON. A channel
	// name holds no quote (plainChannel), so it cannot fake one.
	centrifugoMarker = `","pub":{`
	// centrifugoReady is in the connect push, which Centrifugo writes once
	// the connection's server-side subscriptions are in place (it writes
	// an empty line before that).
	centrifugoReady = `{"connect":{`
)

// centrifugoKeys are what chat-bench needs from a Centrifugo: the HMAC
// secret its connection tokens are signed with and its HTTP API key.
type centrifugoKeys struct {
	secret, apiKey string
}

// centrifugoConfig is the part of a Centrifugo v6 JSON configuration file
// that holds the keys.
type centrifugoConfig struct {
	Client struct {
		Token struct {
			HMACSecretKey string `json:"hmac_secret_key"`
		} `json:"token"`
	} `json:"client"`
	HTTPAPI struct {
		Key string `json:"key"`
	} `json:"http_api"`
}

// readCentrifugoKeys takes the keys from the configuration file at
// config, or else from the files secretFile and apiKeyFile (their
// surrounding whitespace trimmed).
func readCentrifugoKeys(config, secretFile, apiKeyFile string) (centrifugoKeys, error) {
	var k centrifugoKeys
	switch {
	case config != "" && (secretFile != "" || apiKeyFile != ""):
		return k, errors.New("--centrifugo-config excludes --centrifugo-secret-file and --centrifugo-api-key-file")
	case config != "":
		b, err := os.ReadFile(config) //nolint:gosec // the operator names the config file
		if err != nil {
			return k, fmt.Errorf("--centrifugo-config: %w", err)
		}
		var c centrifugoConfig
		if err := json.Unmarshal(b, &c); err != nil {
			return k, fmt.Errorf("--centrifugo-config %s: %w", config, err)
		}
		k = centrifugoKeys{secret: c.Client.Token.HMACSecretKey, apiKey: c.HTTPAPI.Key}
		if k.secret == "" || k.apiKey == "" {
			return k, fmt.Errorf("--centrifugo-config %s: needs client.token.hmac_secret_key and http_api.key", config)
		}
		return k, nil
	case secretFile == "" || apiKeyFile == "":
		return k, errors.New("--centrifugo needs --centrifugo-config, or both --centrifugo-secret-file and --centrifugo-api-key-file")
	}
	for _, f := range []struct {
		name, path string
		to         *string
	}{{"--centrifugo-secret-file", secretFile, &k.secret}, {"--centrifugo-api-key-file", apiKeyFile, &k.apiKey}} {
		b, err := os.ReadFile(f.path) //nolint:gosec // the operator names the key files
		if err != nil {
			return k, fmt.Errorf("%s: %w", f.name, err)
		}
		if *f.to = strings.TrimSpace(string(b)); *f.to == "" {
			return k, fmt.Errorf("%s: %s is empty", f.name, f.path)
		}
	}
	return k, nil
}

// centrifugoToken signs a connection token for user sub whose "channels"
// claim subscribes the connection to channels on the server's side, as a
// unidirectional client cannot subscribe by itself.
func centrifugoToken(secret, sub string, channels []string, ttl time.Duration) (string, error) {
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix(), "channels": channels}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}

// centrifugoSSEURL is the uni_sse URL of a client connecting with token:
// the connect request goes in the cf_connect parameter, as EventSource
// cannot send a body or headers.
func centrifugoSSEURL(base, token string) string {
	connect, _ := json.Marshal(map[string]string{"token": token})
	return strings.TrimRight(base, "/") + centrifugoSSEPath + "?cf_connect=" + url.QueryEscape(string(connect))
}

// centrifugoEndpoint subscribes to channel through uni_sse with token
// (see centrifugoToken), and publishes {"ts":"<publisher's clock>",
// "text":"<text>"} to it through the HTTP API, which answers 200 to a
// publish it accepted (with the memory engine and no history, it stores
// nothing: "stored" means delivered to the channel's subscribers).
func centrifugoEndpoint(channel, text, token, apiKey string) *endpoint {
	ch, _ := json.Marshal(channel)
	head := `{"channel":` + string(ch) + `,"data":{"ts":"`
	tail := `","text":` + mustJSON(text) + `}}`
	return &endpoint{
		eventsURL:    func(base string) string { return centrifugoSSEURL(base, token) },
		marker:       []byte(centrifugoMarker),
		markerInLine: true,
		ready:        []byte(centrifugoReady),
		stamp:        []byte(`"ts":"`),
		publish: func(ctx context.Context, base string, now time.Time) *http.Request {
			body := head + now.UTC().Format(time.RFC3339Nano) + tail
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+centrifugoPublishPath, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", apiKey)
			return req
		},
		stored: http.StatusOK,
		// The API reports a refused command with 200 and an error object.
		refused: []byte(`"error"`),
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// centrifugoSetup checks the --centrifugo options, reads the keys and
// signs the subscribers' token.
func (o *options) centrifugoSetup() error {
	if o.mercure {
		return errors.New("--centrifugo and --mercure exclude each other")
	}
	if o.channel == "" {
		o.channel = o.room
	}
	if !plainChannel(o.channel) {
		// ':' starts a namespace, '$' a private channel, '#' a user
		// boundary: each changes what Centrifugo requires of a subscriber.
		return fmt.Errorf("--centrifugo-channel %q: use 1 to 255 letters, digits, '-', '_' or '.'", o.channel)
	}
	keys, err := readCentrifugoKeys(o.centrifugoConfig, o.centrifugoSecret, o.centrifugoAPIKey)
	if err != nil {
		return err
	}
	o.centrifugoKeys = keys
	o.centrifugoToken, err = centrifugoToken(keys.secret, "bench", []string{o.channel}, maxDuration+time.Hour)
	if err != nil {
		return fmt.Errorf("centrifugo token: %w", err)
	}
	return nil
}

func plainChannel(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		ok := c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
