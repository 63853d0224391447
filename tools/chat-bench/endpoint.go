package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// endpoint is what a run subscribes to and publishes through: a chat
// room (its events and messages), a topic of the gateway's Mercure hub
// (/.well-known/mercure, --mercure), or a channel of a Centrifugo
// (--centrifugo, centrifugo.go).
type endpoint struct {
	eventsURL func(base string) string
	// marker occurs once in every message event of the stream and nowhere
	// else in it: at the start of a line (rooms, Mercure) or inside the
	// data line (Centrifugo); subscribers count it.
	marker []byte
	// markerInLine says the marker is inside a line (Centrifugo's), not
	// at its start.
	markerInLine bool
	// stamp precedes the RFC 3339 time a probe measures a message's
	// latency from, ended by '"' or ' ': the envelope's "ts" (the gateway's
	// clock when it accepted the publish), or the publisher's clock before
	// it sent the request, at the start of a room message's text
	// (--client-ts) or in a Mercure update's data.
	stamp []byte
	// ready, when set, is in the line of the stream that tells the
	// subscription is in place: a subscriber is open once a line holding
	// it arrived (unset: once the first line did).
	ready []byte
	// auth is the Authorization header of every request ("": none).
	auth string
	// publish returns the request that publishes one message, its data
	// carrying now as "ts" for the probes when the gateway does not add it.
	publish func(ctx context.Context, base string, now time.Time) *http.Request
	// stored is the status of a publish that was stored.
	stored int
	// refused, when set, in the body of a response with the stored status
	// means the publish failed all the same (Centrifugo's API answers a
	// refused command 200 with an error object).
	refused []byte
}

// mercurePath is where a gateway with --mercure serves its hub.
const mercurePath = "/.well-known/mercure"

// endpoint returns the endpoint of o: its room, its Mercure topic, or
// its Centrifugo channel.
func (o options) endpoint() *endpoint {
	text := strings.Repeat("x", o.size)
	if o.centrifugo {
		return centrifugoEndpoint(o.channel, text, o.centrifugoToken, o.centrifugoKeys.apiKey)
	}
	if o.mercure {
		return mercureEndpoint(o.topic, o.selector, text, o.bearer)
	}
	room, body := o.room, fmt.Sprintf(`{"user":"bench","text":%q}`, text)
	stamp := `"ts":"`
	if o.clientTS {
		stamp = `"text":"`
	}
	return &endpoint{
		eventsURL: func(base string) string { return strings.TrimRight(base, "/") + "/rooms/" + room + "/events" },
		marker:    []byte("event: message\n"),
		stamp:     []byte(stamp),
		auth:      o.bearer,
		publish: func(ctx context.Context, base string, now time.Time) *http.Request {
			u := strings.TrimRight(base, "/") + "/rooms/" + room + "/messages"
			b := body
			if o.clientTS {
				b = `{"user":"bench","text":"` + now.UTC().Format(time.RFC3339Nano) + " " + text + `"}`
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			if o.bearer != "" {
				req.Header.Set("Authorization", o.bearer)
			}
			return req
		},
		stored: http.StatusCreated,
	}
}

// mercureEndpoint subscribes with the selector and publishes updates of
// the topic whose data is {"ts":"<publisher's clock>","text":"<text>"},
// as a Mercure client does: a form POST answered 200 with the update's id,
// and an event stream whose updates each have an "id:" line (the hub
// assigns one; the data is one line, so no data line starts with "id: ").
func mercureEndpoint(topic, selector, text, auth string) *endpoint {
	query := "?topic=" + url.QueryEscape(selector)
	head := "topic=" + url.QueryEscape(topic) + "&data=" + url.QueryEscape(`{"ts":"`)
	tail := url.QueryEscape(`","text":"` + text + `"}`)
	return &endpoint{
		eventsURL: func(base string) string { return strings.TrimRight(base, "/") + mercurePath + query },
		marker:    []byte("id: "),
		stamp:     []byte(`"ts":"`),
		auth:      auth,
		publish: func(ctx context.Context, base string, now time.Time) *http.Request {
			body := head + url.QueryEscape(now.UTC().Format(time.RFC3339Nano)) + tail
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+mercurePath, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			return req
		},
		stored: http.StatusOK,
	}
}

// mintMercureToken signs, with the HS256 secret in path (surrounding
// whitespace trimmed, as the gateway reads it), a token that may publish
// and receive every topic, valid for ttl.
func mintMercureToken(path string, ttl time.Duration) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the secret file
	if err != nil {
		return "", err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < 32 {
		return "", fmt.Errorf("the secret in %s has %d bytes; HS256 needs at least 32", path, len(secret))
	}
	claims := jwt.MapClaims{
		"sub":     "bench",
		"exp":     time.Now().Add(ttl).Unix(),
		"mercure": map[string][]string{"publish": {"*"}, "subscribe": {"*"}},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
