package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
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

// stream checks a listen request and hands the listener to delivery,
// which streams the room until the client goes away, falls behind, or the
// gateway stops.
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
	req := delivery.Request{Room: room}
	if v := resumeFrom(r); v != "" {
		c, err := delivery.ParseCursor(v, room)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalidCursor, "Last-Event-ID: "+err.Error())
			return
		}
		req.From = &c
	}
	named := strings.TrimSpace(r.URL.Query().Get("user"))
	if err := broker.ValidateUser(named); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidUser, err.Error())
		return
	}
	user, id, ok := s.authorize(w, r, accessSubscribe, room, named)
	if !ok {
		return
	}
	req.User = user
	if id != nil {
		req.Expires = id.Expires
		release, ok := s.cfg.StreamsPerUser.Acquire("user:" + user)
		if !ok {
			s.cfg.Metrics.RateLimited.WithLabelValues("streams_user").Inc()
			writeError(w, http.StatusTooManyRequests, CodeTooManyStreams, "you hold as many streams as a user may; close one first")
			return
		}
		req.Release = release
	}
	if req.User == "" {
		req.User = DefaultUser
	}
	if err := s.cfg.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	req.Detach = detacher(r)
	err := s.cfg.Delivery.Serve(w, r, req)
	if err != nil && req.Release != nil {
		req.Release() // the stream never started
	}
	switch {
	case errors.Is(err, delivery.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}
