// Package mercure is a Mercure hub on the gateway: /.well-known/mercure
// speaks the protocol of the Mercure hub's 0.x releases (the last is
// v0.24.2) — publish by form POST, subscribe by SSE with topic selectors
// (exact strings, "*" and RFC 6570 URI templates), resume by
// Last-Event-ID, authorization by JWT with mercure.publish and
// mercure.subscribe claims — on top of the chat's bus: updates are stored
// in the JetStream stream CHAT_MERCURE (broker.Mercure), so every gateway
// of the cluster delivers every update and a subscriber resumes on any of
// them, and they reach subscribers through the same hub, queues and stream
// writers as chat messages (delivery.ServeFeed), one encoding per update.
//
// Where it differs from a Mercure hub is documented in the README's
// "Mercure compatibility" section.
package mercure

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
	"github.com/nats-io/nats.go"
)

// Path is where the hub answers.
const Path = "/.well-known/mercure"

// reserved is the topic namespace publishers may not use (Mercure's
// subscription events live there).
const reserved = "/.well-known/mercure"

// Config configures a Hub.
type Config struct {
	NC       *nats.Conn
	Store    *broker.Mercure
	Delivery *delivery.Delivery
	// Epoch returns the Mercure stream's epoch (hub-assigned ids carry it).
	Epoch func() uint64
	// Ready returns nil while the stream is usable.
	Ready func() error
	// Keys verifies the tokens of publishers and subscribers (nil: none
	// is accepted, so nobody may publish and only anonymous subscribers,
	// if allowed, may subscribe).
	Keys *auth.Verifier
	// Anonymous lets subscribers without a token receive public updates.
	Anonymous bool
	// Cookie is the name of the cookie that may carry a token (Mercure's
	// default: mercureAuthorization).
	Cookie string
	// PublishOrigins are the origins a publish authorized by the cookie
	// may come from ("*": any).
	PublishOrigins []string
	// MaxReplay bounds the updates one connection replays on resuming;
	// the stream then ends and the client resumes from the last one.
	MaxReplay int
	// MaxUpdateBytes bounds a publish's body.
	MaxUpdateBytes int64
	// Subscriptions turns on subscription events and the subscriptions
	// API (subscriptions.go), as Mercure's subscriptions directive does.
	// The events need Presence, and the presence service running.
	Subscriptions bool
	// Presence is told of every subscriber (the gateway's presence
	// reporter).
	Presence Presence
	// Heartbeat and write limits are the gateway's (delivery).
	Log *slog.Logger
}

// Presence is told of subscribers joining and leaving, with metadata.
type Presence interface {
	JoinMeta(room, user string, meta json.RawMessage) (id string)
	Leave(id string)
}

// Hub serves /.well-known/mercure.
type Hub struct {
	cfg      Config
	hub      *delivery.Hub
	filters  filters
	feed     feed
	registry registry
}

// New returns a Hub whose subscribers are served by cfg.Delivery.
func New(cfg Config) *Hub {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Cookie == "" {
		cfg.Cookie = "mercureAuthorization"
	}
	if cfg.MaxReplay <= 0 {
		cfg.MaxReplay = 1000
	}
	if cfg.MaxUpdateBytes <= 0 {
		cfg.MaxUpdateBytes = 1 << 20
	}
	h := &Hub{cfg: cfg, feed: feed{store: cfg.Store, epoch: cfg.Epoch}}
	h.hub = cfg.Delivery.AddHub(cfg.NC, h.feed, delivery.HubOptions{Log: cfg.Log})
	if cfg.Subscriptions {
		// The answers stop when the gateway drains its connection.
		if _, err := h.StartSubscriptions(); err != nil {
			cfg.Log.Warn("mercure subscriptions: cannot answer other gateways", "err", err)
		}
		if _, err := cfg.NC.Subscribe(broker.PresenceEventSubject(broker.MercurePresenceRoom), h.onPresence); err != nil {
			cfg.Log.Warn("mercure subscriptions: cannot follow subscribers' presence", "err", err)
		}
	}
	return h
}

// ServeHTTP answers /.well-known/mercure: GET and HEAD subscribe, POST
// publishes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		if h.cfg.Subscriptions && (r.URL.Path == subscriptionsPath || strings.HasPrefix(r.URL.Path, subscriptionsPath+"/")) {
			h.serveSubscriptions(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.subscribe(w, r)
	case http.MethodPost:
		h.publish(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	}
}

// Reset ends every subscriber, who resumes by Last-Event-ID: the stream
// was recreated and the hub's position means nothing in the new one.
func (h *Hub) Reset() { h.hub.Reset() }
