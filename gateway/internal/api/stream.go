package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/cursor"
	"github.com/chatscalable/chatscalable/gateway/internal/hub"
	"github.com/chatscalable/chatscalable/gateway/internal/sse"
	"github.com/chatscalable/chatscalable/gateway/internal/stream"
	"github.com/gorilla/mux"
)

// listen is the seed-compatible SSE stream: GET /listen?room=lobby.
func (s *Server) listen(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	if room == "" {
		room = DefaultRoom
	}
	s.stream(w, r, room)
}

// roomEvents is GET /rooms/{room}/events.
func (s *Server) roomEvents(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, mux.Vars(r)["room"])
}

// resumeFrom returns the cursor a client resumes from: the Last-Event-ID
// header (what EventSource sends when it reconnects) or else the
// last_event_id query parameter (for the first connection, which cannot
// set headers). The header wins: it is the newer position.
func resumeFrom(r *http.Request) string {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v
	}
	return r.URL.Query().Get("last_event_id")
}

// stream sends a room's messages as SSE until the client goes away, falls
// behind, or the gateway stops. The client is registered with the room's
// hub before anything is read from history, so no message falls between
// the replay and the live feed; live frames at or below the last replayed
// sequence are skipped, so none is sent twice.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, room string) {
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if hasBody(r) {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, CodeBadRequest, "a listen request has no body")
		return
	}
	var from *cursor.Cursor
	if v := resumeFrom(r); v != "" {
		c, err := cursor.Parse(v, room)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalidCursor, "Last-Event-ID: "+err.Error())
			return
		}
		from = &c
	}
	user := strings.TrimSpace(r.URL.Query().Get("user"))
	if err := broker.ValidateUser(user); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidUser, err.Error())
		return
	}
	if user == "" {
		user = DefaultUser
	}
	if err := s.cfg.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	// On Linux the stream is handed to the stream loop once its headers
	// and replay are out; elsewhere (or with the loop off) it stays on
	// this handler goroutine.
	var st *stream.Stream
	if s.cfg.Loop != nil && canHijack(w) {
		st = s.cfg.Loop.NewStream()
	}
	rc := http.NewResponseController(w)
	remote := r.RemoteAddr // kept by the stream, unlike the request
	listener := hub.Listener{Queue: s.cfg.ClientQueue, Budget: s.cfg.ClientBuffer}
	if st != nil {
		listener.Notify = st.Notify
		listener.OnEnd = func(err error) {
			if errors.Is(err, hub.ErrSlowClient) {
				s.cfg.Metrics.SlowDisconnects.Inc()
			}
			st.Notify()
		}
	} else {
		listener.OnEnd = func(err error) {
			if errors.Is(err, hub.ErrSlowClient) {
				s.cfg.Metrics.SlowDisconnects.Inc()
				// Interrupt a write blocked on the stalled connection now,
				// rather than when its write deadline passes.
				_ = rc.SetWriteDeadline(time.Now())
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PublishTimeout)
	c, joinedAt, err := s.cfg.Hub.Join(ctx, room, listener)
	cancel()
	if err != nil {
		s.cfg.Log.Warn("join room", "room", room, "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cannot listen to the room now; try again")
		return
	}
	s.cfg.Metrics.SSEConnections.Inc()
	presenceID := ""
	if s.cfg.Presence != nil {
		presenceID = s.cfg.Presence.Join(room, user)
	}
	leave := func() {
		if ended, why := c.Ended(); ended && errors.Is(why, hub.ErrSlowClient) {
			s.cfg.Log.Info("listener cut off", "room", room, "remote", remote, "reason", why)
		}
		s.cfg.Hub.Leave(c)
		s.cfg.Metrics.SSEConnections.Dec()
		if s.cfg.Presence != nil {
			s.cfg.Presence.Leave(presenceID)
		}
	}
	if st != nil {
		s.handOver(w, r, st, c, room, from, joinedAt, leave)
		return
	}
	defer leave()

	sse.SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	buf := sse.AppendRetry(make([]byte, 0, 64), s.cfg.Retry)
	send := func(b []byte) bool { return s.write(w, rc, b) }
	if !send(buf) {
		return
	}
	var sent uint64 // the last sequence sent; live frames up to it are skipped
	if from != nil {
		s.cfg.Metrics.Replays.Inc()
		var ok bool
		if sent, ok = s.replay(r.Context(), send, room, *from, joinedAt); !ok {
			return
		}
	}
	heartbeat := time.NewTimer(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var out []byte // the frames of one write
	for {
		select {
		case <-c.Ready():
			// Coalesce: write everything waiting, then flush once.
			if !s.setDeadline(rc, c) {
				return
			}
			var delivered int
			out, delivered = c.AppendWaiting(out[:0], &sent)
			c.SetUnsent(len(out))                   // until the connection has taken it
			if _, err := w.Write(out); err != nil { //nolint:gosec // SSE frames of JSON, served as text/event-stream
				return
			}
			if cap(out) > 64<<10 {
				out = nil // let a burst's memory go
			}
			if rc.Flush() != nil { // under the deadline set above
				return
			}
			c.SetUnsent(0)
			s.cfg.Metrics.Delivered.Add(float64(delivered))
			heartbeat.Reset(s.cfg.Heartbeat)
		case <-heartbeat.C:
			if !send(sse.AppendComment(buf[:0], "heartbeat")) {
				return
			}
			heartbeat.Reset(s.cfg.Heartbeat)
		case <-c.Done():
			if errors.Is(c.Err(), hub.ErrClosed) {
				// The gateway is stopping: ask the client to come back soon,
				// to whichever gateway the load balancer picks.
				send(sse.AppendRetry(buf[:0], s.cfg.ShutdownRetry))
			}
			return
		case <-r.Context().Done():
			return
		}
	}
}

// canHijack reports whether the connection under w can be taken over
// (HTTP/1.x; not HTTP/2).
func canHijack(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// handOver takes the connection over from net/http, writes the response
// headers and the replay itself, and attaches the connection to the stream
// loop, which writes the live feed from then on. leave undoes the join
// when the stream ends.
func (s *Server) handOver(w http.ResponseWriter, r *http.Request, st *stream.Stream, c *hub.Client, room string, from *cursor.Cursor, joinedAt uint64, leave func()) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		leave()
		s.cfg.Log.Warn("take over stream connection", "err", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, "cannot stream on this connection")
		return
	}
	// The replay runs under the request's context; net/http cancels it
	// when this handler returns, and the loop needs none.
	fail := func() {
		_ = conn.Close()
		leave()
	}
	h := w.Header().Clone()
	sse.SetHeaders(h)
	h.Set("Connection", "close") // the body ends when the connection does
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(sse.AppendRetry(nil, s.cfg.Retry))
	send := func(b []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		_, err := conn.Write(b)
		return err == nil
	}
	if !send(buf.Bytes()) {
		fail()
		return
	}
	var sent uint64
	if from != nil {
		s.cfg.Metrics.Replays.Inc()
		var ok bool
		if sent, ok = s.replay(r.Context(), send, room, *from, joinedAt); !ok {
			fail()
			return
		}
	}
	// What the stream keeps until it ends must not hold on to the request.
	route, _ := r.Context().Value(routeKey{}).(*routeName)
	remote := r.RemoteAddr
	err = st.Attach(conn, c, sent, func(reason error, delivered int64) {
		leave()
		s.cfg.Log.Debug("stream ended", "room", room, "reason", reason, "delivered", delivered, "remote", remote)
		if route != nil {
			route.done(context.Background(), http.StatusOK, 0)
		}
	})
	if err != nil {
		s.cfg.Log.Warn("attach stream", "err", err)
		fail()
		return
	}
	if route != nil {
		route.handedOver = true // the request's line is written when the stream ends
	}
}

// EncodePresence returns the SSE frame of a presence event.
func (s *Server) EncodePresence(e broker.PresenceEvent) []byte {
	data, _ := json.Marshal(e)
	return sse.AppendEvent(make([]byte, 0, len(data)+32), "", "presence", data)
}

// resetNotice is the data of a reset event: the client missed messages.
type resetNotice struct {
	// Reason is history_recreated, history_truncated, unknown_position
	// or replay_limit.
	Reason string `json:"reason"`
	// Missed is how many messages the client missed, when known.
	Missed *uint64 `json:"missed,omitempty"`
}

// replay sends the room's stored messages after from, up to at least
// upTo (the room's position when the client joined the live feed), and
// returns the last sequence the client has. When the client cannot get
// everything it missed (the history was recreated, retention removed
// messages, or more than --max-replay are missing) it first gets a reset
// event and then the newest retained messages.
func (s *Server) replay(ctx context.Context, send func([]byte) bool, room string, from cursor.Cursor, upTo uint64) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.PublishTimeout)
	defer cancel()
	fail := func(err error) (uint64, bool) {
		s.cfg.Log.Warn("replay", "room", room, "err", err)
		return 0, false
	}
	after := from.Seq
	var reset *resetNotice
	switch {
	case from.Epoch != s.cfg.Epoch():
		reset, after = &resetNotice{Reason: "history_recreated"}, 0
	case from.Seq > upTo:
		// Past what this gateway has delivered: its live feed may lag the
		// gateway that gave out the cursor, or no message ever had it.
		// Taking it at its word would skip every message up to it, so
		// unless the room holds it, the client is told and starts over
		// from what is retained.
		ok, err := s.holds(ctx, room, from.Seq)
		if err != nil {
			return fail(err)
		}
		if ok {
			return from.Seq, true
		}
		reset, after = &resetNotice{Reason: "unknown_position"}, 0
	case from.Seq == upTo:
		// Nothing was stored between the client's last message and its
		// joining the live feed.
		return from.Seq, true
	default:
		// Retention removes a room's oldest messages first, so if the
		// client's last message is still stored, so is all that follows.
		m, err := s.cfg.Store.Get(ctx, room, from.Seq)
		if err != nil {
			return fail(err)
		}
		if m == nil {
			reset = &resetNotice{Reason: "history_truncated"}
		}
	}
	msgs, _, err := s.cfg.Store.After(ctx, room, after, s.cfg.MaxReplay)
	if err != nil {
		return fail(err)
	}
	if n := len(msgs); n == s.cfg.MaxReplay && msgs[n-1].Seq < upTo {
		// More than MaxReplay missed: send the newest MaxReplay up to upTo.
		skipped, err := s.countBetween(ctx, room, msgs[n-1].Seq, upTo)
		if err != nil {
			return fail(err)
		}
		if reset == nil {
			reset = &resetNotice{Reason: "replay_limit", Missed: &skipped}
		}
		if msgs, err = s.cfg.Store.Before(ctx, room, upTo+1, s.cfg.MaxReplay); err != nil {
			return fail(err)
		}
	}
	if reset != nil {
		data, _ := json.Marshal(reset)
		if !send(sse.AppendEvent(nil, "", "reset", data)) {
			return 0, false
		}
	}
	// A stream replica may lag a moment behind the live feed: read on until
	// the replay reaches the position the client joined at.
	sent := after
	deadline := time.Now().Add(2 * time.Second)
	for {
		// Written in pieces of about replayChunk bytes: a replay of a
		// thousand large messages is never joined into one buffer.
		var buf []byte
		n := 0
		flush := func() bool {
			if len(buf) == 0 {
				return true
			}
			ok := send(buf)
			buf = buf[:0]
			s.cfg.Metrics.Replayed.Add(float64(n))
			s.cfg.Metrics.Delivered.Add(float64(n))
			n = 0
			return ok
		}
		for _, m := range msgs {
			if m.Seq > sent {
				frame := s.EncodeFrame(m)
				buf = append(buf, frame...)
				sent = m.Seq
				if len(frame) > 0 {
					n++
				}
				if len(buf) >= replayChunk && !flush() {
					return 0, false
				}
			}
		}
		if !flush() {
			return 0, false
		}
		if sent >= upTo {
			return sent, true
		}
		if time.Now().After(deadline) {
			s.cfg.Log.Warn("replay did not reach the live position", "room", room, "sent", sent, "joined_at", upTo)
			return 0, false // the client reconnects and resumes from what it got
		}
		if len(msgs) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if msgs, _, err = s.cfg.Store.After(ctx, room, sent, s.cfg.MaxReplay); err != nil {
			return fail(err)
		}
	}
}

// holds reports whether the room's history holds the message at seq,
// waiting a moment for a stream replica that lags the one that stored it.
func (s *Server) holds(ctx context.Context, room string, seq uint64) (bool, error) {
	deadline := time.Now().Add(time.Second)
	for {
		m, err := s.cfg.Store.Get(ctx, room, seq)
		if err != nil || m != nil {
			return m != nil, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// replayChunk is the size of the pieces a replay is written in.
const replayChunk = 64 << 10

// countBetween counts the room's messages with lo < seq <= hi.
func (s *Server) countBetween(ctx context.Context, room string, lo, hi uint64) (uint64, error) {
	first, pendingLo, err := s.cfg.Store.After(ctx, room, lo, 1)
	if err != nil || len(first) == 0 {
		return 0, err
	}
	beyond, pendingHi, err := s.cfg.Store.After(ctx, room, hi, 1)
	if err != nil {
		return 0, err
	}
	return uint64(len(first)) + pendingLo - (uint64(len(beyond)) + pendingHi), nil
}

// setDeadline sets the write deadline for the next writes, unless the hub
// has cut the client off (its onEnd may have just set an expired deadline).
func (s *Server) setDeadline(rc *http.ResponseController, c *hub.Client) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	select {
	case <-c.Done():
		return !errors.Is(c.Err(), hub.ErrSlowClient)
	default:
		return true
	}
}

// write writes b (which may be empty) and flushes, under a write deadline.
func (s *Server) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil { //nolint:gosec // SSE frames of JSON, served as text/event-stream
			return false
		}
	}
	return rc.Flush() == nil
}
