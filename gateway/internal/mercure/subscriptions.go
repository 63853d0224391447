package mercure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// Subscriptions, as a Mercure hub with its subscriptions directive serves
// them: every subscriber gets an id (urn:uuid:, version 4); connecting and
// disconnecting publish one private update per topic selector, on the
// topic /.well-known/mercure/subscriptions/{selector}/{subscriber}, whose
// data is the subscription as JSON-LD; and GET
// /.well-known/mercure/subscriptions[/{selector}[/{subscriber}]] lists the
// active ones. Both are the cluster's. A subscriber is a member of the
// presence room broker.MercurePresenceRoom, its subscription as metadata:
// the presence service announces its arrival and its departure once,
// also when its gateway dies, and the gateways turn that into the events
// (onPresence), which go through the Mercure stream like any update. The
// list is asked of every gateway (broker.MercureSubscriptionsSubject),
// merging what they answer within subscriptionsWait.

const (
	subscriptionsPath = Path + "/subscriptions"
	jsonLDContext     = "https://mercure.rocks/"
	// subscriptionsWait is how long a listing waits for the gateways'
	// answers.
	subscriptionsWait = 300 * time.Millisecond
)

// subscriber is one subscriber of this gateway, as the subscriptions API
// shows it.
type subscriber struct {
	ID      string   `json:"id"`
	Topics  []string `json:"topics"`
	Payload any      `json:"payload,omitempty"`
}

// Subscription is one (subscriber, selector) pair in JSON-LD.
type Subscription struct {
	Context     string `json:"@context,omitempty"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Subscriber  string `json:"subscriber"`
	Topic       string `json:"topic"`
	Active      bool   `json:"active"`
	LastEventID string `json:"lastEventID,omitempty"`
	Payload     any    `json:"payload,omitempty"`
}

// subscriptions is the collection in JSON-LD.
type subscriptions struct {
	Context       string         `json:"@context"`
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	LastEventID   string         `json:"lastEventID"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// registry holds this gateway's subscribers.
type registry struct {
	mu   sync.Mutex
	subs map[string]subscriber
}

func (g *registry) add(s subscriber) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.subs == nil {
		g.subs = map[string]subscriber{}
	}
	g.subs[s.ID] = s
}

func (g *registry) remove(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.subs, id)
}

func (g *registry) list() []subscriber {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]subscriber, 0, len(g.subs))
	for _, s := range g.subs {
		out = append(out, s)
	}
	return out
}

// newSubscriberID returns urn:uuid: and a random UUID, version 4.
func newSubscriberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return "urn:uuid:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// subscriptionID is the id, and the event topic, of a subscriber's
// subscription to one selector.
func subscriptionID(selector, subscriberID string) string {
	return subscriptionsPath + "/" + url.QueryEscape(selector) + "/" + url.QueryEscape(subscriberID)
}

// subscription returns s's subscription to selector.
func (s subscriber) subscription(selector string, active bool) Subscription {
	return Subscription{ID: subscriptionID(selector, s.ID), Type: "Subscription", Subscriber: s.ID, Topic: selector, Active: active, Payload: s.Payload}
}

// answerSubscribers answers another gateway's request for this gateway's
// subscribers.
func (h *Hub) answerSubscribers(msg *nats.Msg) {
	b, err := json.Marshal(h.registry.list())
	if err != nil || msg.Reply == "" {
		return
	}
	if err := msg.Respond(b); err != nil {
		h.cfg.Log.Debug("mercure subscriptions answer", "err", err)
	}
}

// StartSubscriptions makes the hub answer the other gateways' requests
// for its subscribers; it returns how to stop.
func (h *Hub) StartSubscriptions() (stop func(), err error) {
	sub, err := h.cfg.NC.Subscribe(broker.MercureSubscriptionsSubject, h.answerSubscribers)
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// allSubscribers asks every gateway for its subscribers and merges the
// answers that arrive within subscriptionsWait.
func (h *Hub) allSubscribers(ctx context.Context) ([]subscriber, error) {
	inbox := h.cfg.NC.NewRespInbox()
	sub, err := h.cfg.NC.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := h.cfg.NC.PublishRequest(broker.MercureSubscriptionsSubject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, subscriptionsWait)
	defer cancel()
	seen := map[string]bool{}
	var out []subscriber
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over
		}
		var subs []subscriber
		if json.Unmarshal(msg.Data, &subs) != nil {
			continue
		}
		for _, s := range subs {
			if !seen[s.ID] {
				seen[s.ID] = true
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// onPresence turns the presence service's announcement of a subscriber
// arriving or leaving (a gateway that died included) into its
// subscription events: one private update per selector, as a Mercure hub
// publishes when a subscriber connects and disconnects. Every gateway with
// subscriptions on hears each announcement and publishes the same events
// with the same de-duplication ids, derived from the announcement's, so
// the stream keeps each once.
func (h *Hub) onPresence(msg *nats.Msg) {
	var e broker.PresenceEvent
	var meta broker.MercureSubscriberMeta
	if err := json.Unmarshal(msg.Data, &e); err != nil || e.Room != broker.MercurePresenceRoom || json.Unmarshal(e.Meta, &meta) != nil {
		h.cfg.Log.Debug("mercure subscriptions: not a subscriber's presence", "err", err)
		return
	}
	once := msg.Header.Get("Nats-Msg-Id")
	if once == "" {
		once = e.Type + e.User
	}
	s := subscriber{ID: e.User, Topics: meta.Topics}
	if len(meta.Payload) > 0 {
		s.Payload = meta.Payload
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for i, sel := range s.Topics {
			doc := s.subscription(sel, e.Type == "join")
			doc.Context = jsonLDContext
			data, _ := json.MarshalIndent(doc, "", "  ")
			u := broker.MercureUpdate{Topics: []string{doc.ID}, Data: string(data), Private: true, Time: time.Now().Truncate(time.Millisecond)}
			if _, err := h.cfg.Store.PublishOnce(ctx, u, "mercure-subscription-"+once+"-"+strconv.Itoa(i)); err != nil {
				h.cfg.Log.Warn("mercure subscription event", "subscriber", s.ID, "err", err)
				return
			}
		}
	}()
}

// payloadJSON is a token's mercure.payload as JSON (nil for none).
func payloadJSON(p any) json.RawMessage {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return b
}

// serveSubscriptions answers GET /.well-known/mercure/subscriptions,
// /subscriptions/{selector} and /subscriptions/{selector}/{subscriber}:
// the active subscriptions of the cluster in JSON-LD, to a token whose
// mercure.subscribe claim matches the request URI.
func (h *Hub) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	claims, err := h.authorize(r, false)
	if err != nil || claims == nil || claims.Mercure.Subscribe == nil || !matchAny([]string{r.URL.RequestURI()}, claims.Mercure.Subscribe) {
		h.refuse(w, r, err)
		return
	}
	var selector, subscriberID string
	rest := strings.TrimPrefix(r.URL.EscapedPath(), subscriptionsPath)
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case rest == "":
	case len(parts) <= 2:
		var err1, err2 error
		selector, err1 = url.QueryUnescape(parts[0])
		if len(parts) == 2 {
			subscriberID, err2 = url.QueryUnescape(parts[1])
		}
		if err1 != nil || err2 != nil || selector == "" || len(parts) == 2 && subscriberID == "" {
			http.NotFound(w, r)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	last, err := h.lastEventID(ctx)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	subs, err := h.allSubscribers(ctx)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	var body any
	if subscriberID != "" {
		i := slices.IndexFunc(subs, func(s subscriber) bool { return s.ID == subscriberID && slices.Contains(s.Topics, selector) })
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		doc := subs[i].subscription(selector, true)
		doc.Context, doc.LastEventID = jsonLDContext, last
		body = doc
	} else {
		list := subscriptions{Context: jsonLDContext, ID: r.URL.RequestURI(), Type: "Subscriptions", LastEventID: last, Subscriptions: []Subscription{}}
		for _, s := range subs {
			for _, sel := range s.Topics {
				if selector == "" || sel == selector {
					list.Subscriptions = append(list.Subscriptions, s.subscription(sel, true))
				}
			}
		}
		body = list
	}
	w.Header().Set("ETag", last)
	if r.Header.Get("If-None-Match") == last {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ld+json")
	_, _ = w.Write(b)
}

// lastEventID is the id of the newest stored update, or earliest.
func (h *Hub) lastEventID(ctx context.Context) (string, error) {
	_, last, err := h.cfg.Store.Bounds(ctx)
	if err != nil || last == 0 {
		return earliest, err
	}
	us, err := h.cfg.Store.After(ctx, last-1, 1)
	if err != nil {
		return "", err
	}
	if len(us) == 0 {
		return earliest, nil
	}
	return broker.MercureID(us[0], h.cfg.Epoch()), nil
}
