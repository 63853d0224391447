// The handler writer: a stream written by its own net/http handler, for
// platforms without the stream loop or when it is turned off.

package delivery

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// handlerWriter writes a stream through net/http and blocks its handler
// until the stream ends.
type handlerWriter struct {
	timeout   time.Duration
	heartbeat time.Duration
	delivered prometheus.Counter

	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context // the request's: done when the client goes away
	client *Client         // set by start
	sess   session
}

func newHandlerWriter(w http.ResponseWriter, r *http.Request, o Options) *handlerWriter {
	return &handlerWriter{timeout: o.WriteTimeout, heartbeat: o.Heartbeat, delivered: o.Metrics.Delivered,
		w: w, rc: http.NewResponseController(w), ctx: r.Context()}
}

func (h *handlerWriter) hooks(l *Listener) {
	l.OnEnd = func(err error) {
		if errors.Is(err, ErrSlowClient) {
			// Interrupt a write blocked on the stalled connection now,
			// rather than when its write deadline passes.
			_ = h.rc.SetWriteDeadline(time.Now())
		}
	}
}

func (h *handlerWriter) start(c *Client, head []byte) error {
	h.client = c
	setSSEHeaders(h.w.Header())
	h.w.WriteHeader(http.StatusOK)
	if !h.send(head) {
		return ErrClientGone
	}
	return nil
}

// send writes b and flushes, under a fresh write deadline, unless the hub
// has cut the client off (its OnEnd may have just set an expired one).
func (h *handlerWriter) send(b []byte) bool {
	_ = h.rc.SetWriteDeadline(time.Now().Add(h.timeout))
	if ended, why := h.client.Ended(); ended && errors.Is(why, ErrSlowClient) {
		return false
	}
	if len(b) > 0 {
		if _, err := h.w.Write(b); err != nil { //nolint:gosec // SSE frames of JSON, served as text/event-stream
			return false
		}
	}
	return h.rc.Flush() == nil
}

func (h *handlerWriter) abort() {}

func (h *handlerWriter) session() *session { return &h.sess }

func (h *handlerWriter) detached() bool { return false }

func (h *handlerWriter) live(s *session, done func(error)) {
	heartbeat := time.NewTimer(h.heartbeat)
	defer heartbeat.Stop()
	var expiry <-chan time.Time // the token's warning, then its expiry
	if !s.expires.IsZero() {
		t := time.NewTimer(time.Until(s.warnAt))
		defer t.Stop()
		expiry = t.C
	}
	var out []byte // the frames of one write
	for {
		beat := false
		select {
		case <-s.client.Ready():
		case <-heartbeat.C:
			beat = true
		case <-expiry: // next sends the warning, or ends the stream
			expiry = time.After(time.Until(s.expires))
		case <-s.client.Done():
		case <-h.ctx.Done():
			done(ErrClientGone)
			return
		}
		var n int
		var end error
		out, n, end = s.next(out[:0], beat)
		if len(out) > 0 {
			// Coalesced: everything waiting goes out in one write and flush.
			s.client.SetUnsent(len(out)) // until the connection has taken it
			ok := h.send(out)
			s.client.SetUnsent(0)
			if !ok {
				done(ErrClientGone)
				return
			}
			h.delivered.Add(float64(n))
			heartbeat.Reset(h.heartbeat)
		}
		if cap(out) > 64<<10 {
			out = nil // let a burst's memory go
		}
		if end != nil {
			done(end)
			return
		}
	}
}
