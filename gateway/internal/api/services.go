package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/gorilla/mux"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// CodeServiceError is the code of an error a chat service reported.
const CodeServiceError = "service_error"

// listRooms is GET /rooms?limit=&after=: a page of the rooms directory.
func (s *Server) listRooms(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := broker.RoomsListRequest{Limit: broker.DefaultRoomsPage, After: q.Get("after")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > broker.MaxRoomsPage {
			writeError(w, http.StatusBadRequest, CodeInvalidLimit, fmt.Sprintf("limit must be a whole number from 1 to %d", broker.MaxRoomsPage))
			return
		}
		req.Limit = n
	}
	if len(req.After) > 256 {
		writeError(w, http.StatusBadRequest, CodeInvalidCursor, "after is not a cursor of the rooms directory")
		return
	}
	_, id, ok := s.authorize(w, r, accessAny, "", "")
	if !ok {
		return
	}
	msg, ok := s.call(w, r, "the rooms directory", broker.RoomsListSubject, req)
	if !ok {
		return
	}
	var page broker.RoomsReply
	if err := json.Unmarshal(msg.Data, &page); err != nil {
		writeError(w, http.StatusBadGateway, CodeServiceError, "the rooms directory answered with something else than a page")
		return
	}
	// The directory shows what the caller may read: a page may hold
	// fewer rooms than asked for (follow next until it is empty).
	page.Rooms = slices.DeleteFunc(page.Rooms, func(ri broker.RoomInfo) bool { return !s.visible(ri.Room, id) })
	writeJSON(w, http.StatusOK, page)
}

// getRoom is GET /rooms/{room}: one room of the directory.
func (s *Server) getRoom(w http.ResponseWriter, r *http.Request) {
	room := mux.Vars(r)["room"]
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if _, _, ok := s.authorize(w, r, accessSubscribe, room, ""); !ok {
		return
	}
	s.ask(w, r, "the rooms directory", broker.RoomsGetSubject, broker.RoomRequest{Room: room})
}

// putRoom is PUT /rooms/{room} with {"topic":"…"}, {"private":true|false}
// or both: sets the room's topic, makes it private or public again.
func (s *Server) putRoom(w http.ResponseWriter, r *http.Request) {
	room := mux.Vars(r)["room"]
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if _, _, ok := s.authorize(w, r, accessAdmin, room, ""); !ok {
		return
	}
	if mt := mediaType(r); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, CodeUnsupportedType, fmt.Sprintf("Content-Type must be application/json, not %q", mt))
		return
	}
	body, aerr := s.readBody(w, r, 4*broker.MaxTopicLen*jsonBodyFactor+1024)
	if aerr != nil {
		aerr.write(w)
		return
	}
	var in struct {
		Topic   *string `json:"topic"`
		Private *bool   `json:"private"`
	}
	if err := json.Unmarshal(body, &in); err != nil || (in.Topic == nil && in.Private == nil) {
		writeError(w, http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON object of the form {\"topic\":\"…\"}, {\"private\":true} or both")
		return
	}
	if in.Topic != nil {
		if err := broker.ValidateTopic(*in.Topic); err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
	}
	if in.Private != nil {
		if s.cfg.Auth == nil {
			// Nobody holds a grant with auth off: a private room would
			// be closed to all, by anyone who asked.
			writeError(w, http.StatusForbidden, CodeForbidden, "making a room private needs auth on (--auth jwt) and an admin token")
			return
		}
		msg, ok := s.call(w, r, "the rooms directory", broker.RoomsPrivateSubject, broker.PrivateRequest{Room: room, Private: *in.Private})
		if !ok {
			return
		}
		if in.Topic == nil {
			writeRaw(w, msg.Data)
			return
		}
	}
	s.ask(w, r, "the rooms directory", broker.RoomsTopicSubject, broker.TopicRequest{Room: room, Topic: *in.Topic})
}

// members is GET /rooms/{room}/members: who is in the room now.
func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	room := mux.Vars(r)["room"]
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if _, _, ok := s.authorize(w, r, accessSubscribe, room, ""); !ok {
		return
	}
	s.ask(w, r, "the presence service", broker.PresenceMembersSubject, broker.MembersRequest{Room: room})
}

// ask sends req to a chat service and writes its JSON reply.
func (s *Server) ask(w http.ResponseWriter, r *http.Request, service, subject string, req any) {
	if msg, ok := s.call(w, r, service, subject, req); ok {
		writeRaw(w, msg.Data)
	}
}

// call sends req to a chat service and returns its reply. A service that
// is not running, or does not answer within ServiceTimeout, gets a 503;
// an error it reports keeps its status. On failure the error response is
// written and ok is false.
func (s *Server) call(w http.ResponseWriter, r *http.Request, service, subject string, req any) (*nats.Msg, bool) {
	if s.cfg.Request == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, service+" is not available")
		return nil, false
	}
	data, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ServiceTimeout)
	defer cancel()
	msg, err := s.cfg.Request(ctx, subject, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, service+" is not running; chatting still works")
		return nil, false
	case err != nil:
		s.cfg.Log.Warn("service request", "subject", subject, "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, service+" did not answer; try again")
		return nil, false
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		status := http.StatusBadGateway
		if code == "400" {
			status = http.StatusBadRequest
		}
		writeError(w, status, CodeServiceError, msg.Header.Get(micro.ErrorHeader))
		return nil, false
	}
	return msg, true
}

// writeRaw writes a JSON body as it is.
func writeRaw(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
