package mercure

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
)

// earliest is the Last-Event-ID that asks for every retained update.
const earliest = "earliest"

// maxSelectors bounds a subscription's topic selectors.
const maxSelectors = 1000

// subscribe is GET /.well-known/mercure?topic=…: the updates one of whose
// topics matches a selector (private ones only if one of their topics
// matches the token's mercure.subscribe claim), as an event stream in
// Mercure's format, first those after Last-Event-ID (header, else the
// lastEventID query parameter) when given.
func (h *Hub) subscribe(w http.ResponseWriter, r *http.Request) {
	claims, err := h.authorize(r, false)
	if err != nil || (claims == nil && !h.cfg.Anonymous) {
		h.refuse(w, r, err)
		return
	}
	q := r.URL.Query()
	selectors := q["topic"]
	switch {
	case len(selectors) == 0:
		http.Error(w, `Missing "topic" parameter.`, http.StatusBadRequest)
		return
	case len(selectors) > maxSelectors:
		http.Error(w, `Too many "topic" parameters.`, http.StatusBadRequest)
		return
	}
	if err := h.cfg.Ready(); err != nil {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	var allowed []string // nil: no private update
	var expires time.Time
	if claims != nil {
		allowed = claims.Mercure.Subscribe
		if claims.ExpiresAt != nil {
			expires = claims.ExpiresAt.Time
		}
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("lastEventID")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	after, echo, replay, err := h.resume(ctx, lastID)
	cancel()
	if err != nil {
		h.cfg.Log.Warn("mercure resume", "err", err)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
	hd.Set("Pragma", "no-cache")
	hd.Set("Expire", "0") // sic: what a Mercure hub sends
	hd.Set("X-Accel-Buffering", "no")
	if lastID != "" {
		hd.Set("Last-Event-ID", echo)
	}
	if r.Method == http.MethodHead {
		return
	}
	f, put := h.filters.get(selectors, allowed)
	var once sync.Once
	release := func() { once.Do(put) }
	own := "" // the end of this subscriber's subscription ids
	if h.cfg.Subscriptions {
		s := subscriber{ID: newSubscriberID(), Topics: selectors}
		own = "/" + url.QueryEscape(s.ID)
		if claims != nil {
			s.Payload = claims.Mercure.Payload
		}
		h.registry.add(s)
		presenceID := ""
		if h.cfg.Presence != nil {
			meta, _ := json.Marshal(broker.MercureSubscriberMeta{Topics: selectors, Payload: payloadJSON(s.Payload)})
			presenceID = h.cfg.Presence.JoinMeta(broker.MercurePresenceRoom, s.ID, meta)
		}
		release = func() {
			once.Do(func() {
				put()
				h.registry.remove(s.ID)
				if presenceID != "" {
					h.cfg.Presence.Leave(presenceID)
				}
			})
		}
	}
	req := delivery.FeedRequest{
		Hub:  h.hub,
		Room: room,
		Accept: func(fr delivery.Frame) bool {
			m := fr.Meta.(*updateMeta)
			return !isOwnEvent(m, own) && m.acceptedBy(f)
		},
		Head:        []byte(":\n"),
		Expires:     expires,
		QuietExpiry: true,
		Release:     release,
	}
	if replay {
		req.Replay = func(ctx context.Context, send func([]byte) bool, upTo uint64) (uint64, bool) {
			return h.replay(ctx, send, f, own, after, upTo)
		}
	}
	err = h.cfg.Delivery.ServeFeed(w, r, req)
	if err != nil {
		release()
		h.cfg.Log.Warn("mercure subscribe", "err", err)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
	}
}

// resume finds where a subscriber resumes: after the update with id
// lastID. It returns the sequence to replay after, the Last-Event-ID to
// answer with, and whether to replay at all:
//   - "earliest": every retained update;
//   - an id of a retained update (one the hub assigned carries its own
//     sequence; a publisher's is looked up): the updates after it, and the
//     id is echoed;
//   - a hub-assigned id of this stream whose update retention removed: the
//     retained updates, answering "earliest" (some are lost);
//   - any other id: no replay, answering "earliest", as Mercure does since
//     v0.24 for an id it does not know (dunglas/mercure #704, #1321).
func (h *Hub) resume(ctx context.Context, lastID string) (after uint64, echo string, replay bool, err error) {
	if lastID == "" {
		return 0, "", false, nil
	}
	first, last, err := h.cfg.Store.Bounds(ctx)
	if err != nil {
		return 0, "", false, err
	}
	from := max(first, 1) - 1 // after this, every retained update
	if lastID == earliest {
		return from, earliest, true, nil
	}
	if seq, ok := broker.ParseMercureID(lastID, h.cfg.Epoch()); ok && seq <= last {
		if seq < first {
			return from, earliest, true, nil
		}
		return seq, lastID, true, nil
	}
	seq, err := h.cfg.Store.FindID(ctx, lastID)
	if err != nil {
		return 0, "", false, err
	}
	if seq == 0 {
		return 0, earliest, false, nil
	}
	return seq, lastID, true, nil
}

// errReplayCapped ends a stream whose replay reached MaxReplay updates:
// the client resumes from the last one it got.
var errReplayCapped = errors.New("replay capped")

// replay sends the updates after seq up to upTo (the position the
// subscriber joined the live feed at) that its filter takes, and returns
// the last sequence the client has. After MaxReplay updates the stream
// ends (false), and the client, reconnecting with the last id it got,
// takes the rest, as from a Mercure hub whose buffer a replay filled.
func (h *Hub) replay(ctx context.Context, send func([]byte) bool, f *filter, own string, after, upTo uint64) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pos, sent := after, 0
	for pos < upTo {
		us, err := h.cfg.Store.After(ctx, pos, 256)
		if err != nil {
			h.cfg.Log.Warn("mercure replay", "err", err)
			return pos, false
		}
		if len(us) == 0 {
			break
		}
		var buf []byte
		done := false
		for _, u := range us {
			if u.Seq > upTo {
				done = true
				break
			}
			pos = u.Seq
			if m := (&updateMeta{topics: u.Topics, private: u.Private}); isOwnEvent(m, own) || !f.accepts(m) {
				continue
			}
			buf = appendUpdate(buf, u, broker.MercureID(u, h.cfg.Epoch()))
			if sent++; sent >= h.cfg.MaxReplay {
				h.cfg.Log.Debug("mercure replay", "err", errReplayCapped, "updates", sent)
				send(buf)
				return pos, false
			}
		}
		if len(buf) > 0 && !send(buf) {
			return pos, false
		}
		if done {
			break
		}
	}
	return max(pos, upTo), true
}

// isOwnEvent reports whether an update is a subscription event of the
// subscriber whose ids end with own ("": none). A subscriber never gets
// its own events, as on a Mercure hub, which publishes them before it adds
// the subscriber; here the event may reach the gateway's feed after the
// subscriber joined it.
func isOwnEvent(m *updateMeta, own string) bool {
	return own != "" && m.private && len(m.topics) == 1 &&
		strings.HasPrefix(m.topics[0], subscriptionsPath+"/") && strings.HasSuffix(m.topics[0], own)
}
