package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/hub"
	"github.com/chatscalable/chatscalable/gateway/internal/sse"
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

// stream sends a room's messages as SSE until the client goes away, falls
// behind, or the gateway stops. The client is registered with the room's
// hub before the first byte is sent, so a client that has read the opening
// retry field receives every message stored after it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, room string) {
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if err := s.cfg.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	c, err := s.cfg.Hub.Join(room, s.cfg.ClientQueue, func(err error) {
		if errors.Is(err, hub.ErrSlowClient) {
			// Interrupt a write blocked on the stalled connection now,
			// rather than when its write deadline passes.
			_ = rc.SetWriteDeadline(time.Now())
		}
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cannot listen to the room now; try again")
		return
	}
	defer s.cfg.Hub.Leave(c)

	sse.SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	buf := sse.AppendRetry(make([]byte, 0, 64), s.cfg.Retry)
	if !s.write(w, rc, buf) {
		return
	}
	heartbeat := time.NewTimer(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case frame := <-c.Frames():
			// Coalesce: queue everything already waiting, then flush once.
			if !s.setDeadline(rc, c) {
				return
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
		drain:
			for {
				select {
				case frame = <-c.Frames():
					if _, err := w.Write(frame); err != nil {
						return
					}
				default:
					break drain
				}
			}
			if !s.write(w, rc, nil) {
				return
			}
			heartbeat.Reset(s.cfg.Heartbeat)
		case <-heartbeat.C:
			if !s.write(w, rc, sse.AppendComment(buf[:0], "heartbeat")) {
				return
			}
			heartbeat.Reset(s.cfg.Heartbeat)
		case <-c.Done():
			if errors.Is(c.Err(), hub.ErrClosed) {
				// The gateway is stopping: ask the client to come back soon,
				// to whichever gateway the load balancer picks.
				s.write(w, rc, sse.AppendRetry(buf[:0], s.cfg.ShutdownRetry))
			}
			return
		case <-r.Context().Done():
			return
		}
	}
}

// setDeadline sets the write deadline for the next writes, unless the hub
// has cut the client off (its onEnd may have just set an expired deadline).
func (s *Server) setDeadline(rc *http.ResponseController, c *hub.Client) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	select {
	case <-c.Done():
		return !errors.Is(c.Err(), hub.ErrSlowClient)
	default:
		return true
	}
}

// write writes b (which may be empty) and flushes, under a write deadline.
func (s *Server) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil {
			return false
		}
	}
	return rc.Flush() == nil
}
