// The events a stream carries, encoded once per message for all listeners.

package delivery

import (
	"encoding/json"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

// WireMessage is a message as the API returns and streams it: the
// envelope, its sequence and its resumable cursor.
type WireMessage struct {
	broker.Message
	Cursor string `json:"cursor"`
}

// AppendJSON appends w as JSON to b: the same bytes json.Marshal gives
// for w, without reflection.
func (w WireMessage) AppendJSON(b []byte) []byte {
	b = w.Message.AppendJSON(b)
	b = append(b[:len(b)-1], `,"cursor":`...) // the envelope's closing brace
	b = broker.AppendJSONString(b, w.Cursor)
	return append(b, '}')
}

// Wire returns m as the API shows it.
func (d *Delivery) Wire(m broker.Message) WireMessage {
	return WireMessage{Message: m, Cursor: EncodeCursor(d.opts.Epoch(), m.Seq, m.Room)}
}

// Acceptable reports whether a stored message meets the message rules; one
// that does not (published around the gateway, with NATS directly) is
// counted and logged, and never shown.
func (d *Delivery) Acceptable(m broker.Message) bool {
	err := broker.ValidateStored(m, d.opts.MaxMessageBytes)
	if err == nil {
		return true
	}
	d.opts.Metrics.Withheld.Inc()
	d.opts.Log.Warn("withheld a stored message that breaks the message rules", "room", m.Room, "seq", m.Seq, "user", m.User, "err", err)
	return false
}

// messageFrame returns the "message" event of a stored message, with its
// cursor as the event id; nil withholds a message that breaks the rules.
func (d *Delivery) messageFrame(m broker.Message) []byte {
	if !d.Acceptable(m) {
		return nil
	}
	w := d.Wire(m)
	data := w.AppendJSON(make([]byte, 0, 256+len(m.Text)))
	return appendEvent(make([]byte, 0, len(data)+64), w.Cursor, "message", data)
}

// presenceFrame returns the "presence" event of a presence event.
func presenceFrame(e broker.PresenceEvent) []byte {
	data, _ := json.Marshal(e)
	return appendEvent(make([]byte, 0, len(data)+32), "", "presence", data)
}

// authExpiringFrame appends the "auth-expiring" event: the listener's
// token expires at t, when the stream ends; the client fetches a fresh
// token and resumes by cursor.
func authExpiringFrame(b []byte, t time.Time) []byte {
	data, _ := json.Marshal(struct {
		Expires time.Time `json:"expires"`
	}{t.UTC()})
	return appendEvent(b, "", "auth-expiring", data)
}

// resetNotice is the data of a reset event: the client missed messages.
type resetNotice struct {
	// Reason is history_recreated, history_truncated, unknown_position
	// or replay_limit.
	Reason string `json:"reason"`
	// Missed is how many messages the client missed, when known.
	Missed *uint64 `json:"missed,omitempty"`
}

// resetFrame returns the "reset" event of n.
func resetFrame(n resetNotice) []byte {
	data, _ := json.Marshal(n)
	return appendEvent(nil, "", "reset", data)
}
