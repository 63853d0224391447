package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/httpjson"
	"github.com/gorilla/mux"
)

// apiError is a client-facing error with its status and stable code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.code, e.message) }

// publishForm is the seed-compatible form publish: fields message, room
// (default lobby) and user (default anonymous). Browsers are sent back to
// the page with 303; clients that accept JSON get 201 and the message.
func (s *Server) publishForm(w http.ResponseWriter, r *http.Request) {
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	form, aerr := s.readForm(w, r)
	if aerr != nil {
		aerr.write(w)
		return
	}
	room := form.Get("room")
	if room == "" {
		room = DefaultRoom
	}
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if !form.Has("message") {
		writeError(w, http.StatusBadRequest, CodeEmptyMessage, `the form has no "message" field: the text to publish`)
		return
	}
	user, id, ok := s.authorize(w, r, accessPublish, room, form.Get("user"))
	if !ok || !s.allowPublish(w, r, id) {
		return
	}
	stored, status, ok := s.publish(w, r, room, user, form.Get("message"), "")
	if !ok {
		return
	}
	if wantJSON {
		s.writeMessage(w, status, stored)
		return
	}
	target := "/"
	if room != DefaultRoom {
		target = "/?room=" + url.QueryEscape(room)
	}
	// Browsers follow the redirect; curl and scripts print the line.
	w.Header().Set("Location", target)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusSeeOther)
	_, _ = fmt.Fprintf(w, "stored in #%s as message %d; the room's page is %s\n", room, stored.Seq, target) //nolint:gosec // text/plain, and room passed ValidateRoom: letters, digits, _ and -
}

// postMessage publishes {"user":…,"text":…} to the room in the path.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	s.postRoomMessage(w, r, mux.Vars(r)["room"])
}

// postRoomMessage publishes {"user":…,"text":…} to room.
func (s *Server) postRoomMessage(w http.ResponseWriter, r *http.Request, room string) {
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	if mt := mediaType(r); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, CodeUnsupportedType,
			fmt.Sprintf("Content-Type must be application/json, not %q", mt))
		return
	}
	body, aerr := s.readBody(w, r, s.cfg.MaxMessageBytes*jsonBodyFactor+1024)
	if aerr != nil {
		aerr.write(w)
		return
	}
	in, aerr := decodePublishBody(body)
	if aerr != nil {
		aerr.write(w)
		return
	}
	user, id := "", ""
	if in.User != nil {
		user = *in.User
	}
	user, ident, ok := s.authorize(w, r, accessPublish, room, user)
	if !ok || !s.allowPublish(w, r, ident) {
		return
	}
	if in.ID != nil {
		if id = *in.ID; !validID(id) {
			writeError(w, http.StatusBadRequest, CodeInvalidID, "id must be 1 to 64 letters, digits, '_' or '-'")
			return
		}
	}
	if stored, status, ok := s.publish(w, r, room, user, *in.Text, id); ok {
		s.writeMessage(w, status, stored)
	}
}

// writeMessage answers with a stored message as the API shows it.
func (s *Server) writeMessage(w http.ResponseWriter, status int, m broker.Message) {
	httpjson.WriteEncoded(w, status, s.cfg.Delivery.Wire(m).AppendJSON(make([]byte, 0, 256+len(m.Text))))
}

// publish validates and stores a message; id, when not empty, is the
// client's id for it. A retry (same Idempotency-Key header, or same id,
// within the stream's duplicate window) stores nothing new: the answer is
// the message stored the first time, with status 200 instead of 201 and
// Idempotent-Replayed: true. On failure publish has written the error
// response and returns false.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, room, user, text, id string) (broker.Message, int, bool) {
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !validKey(key) {
		writeError(w, http.StatusBadRequest, CodeInvalidID, "Idempotency-Key must be 1 to 128 printable ASCII characters")
		return broker.Message{}, 0, false
	}
	m, aerr := s.newMessage(room, user, text)
	if aerr != nil {
		s.published.rejected.Inc()
		aerr.write(w)
		return m, 0, false
	}
	var dedupe string
	if id != "" {
		m.ID, dedupe = id, "id:"+room+":"+id
	}
	if key != "" {
		dedupe = "key:" + room + ":" + key
	}
	start := time.Now()
	m, dup, aerr := s.store(r.Context(), m, dedupe)
	if aerr != nil {
		s.published.failed.Inc()
		aerr.write(w)
		return m, 0, false
	}
	s.cfg.Metrics.PublishSeconds.Observe(time.Since(start).Seconds())
	if dup {
		s.published.duplicate.Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		return m, http.StatusOK, true
	}
	s.published.stored.Inc()
	return m, http.StatusCreated, true
}

// validID reports whether a client's message id is valid: ids follow the
// room-name rule, 1 to 64 of [A-Za-z0-9_-].
func validID(id string) bool { return broker.ValidateRoom(id) == nil }

// validKey reports whether an Idempotency-Key is 1 to 128 printable ASCII
// characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// publishBody is the JSON body of POST /rooms/{room}/messages.
type publishBody struct {
	ID   *string `json:"id"`
	User *string `json:"user"`
	Text *string `json:"text"`
}

// decodePublishBody parses a publish body: one JSON object, valid UTF-8,
// with a text.
func decodePublishBody(body []byte) (publishBody, *apiError) {
	var in publishBody
	if !utf8.Valid(body) {
		return in, &apiError{http.StatusBadRequest, CodeInvalidUTF8, "the body is not valid UTF-8"}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return in, &apiError{http.StatusBadRequest, CodeInvalidJSON, "the body must be one JSON object of the form {\"user\":\"…\",\"text\":\"…\"}"}
	}
	if simple, ok := decodeSimpleBody(body); ok {
		in = simple
	} else if aerr := decodeJSONBody(body, &in); aerr != nil {
		return in, aerr
	}
	if in.Text == nil {
		return in, &apiError{http.StatusBadRequest, CodeEmptyMessage, "text is required"}
	}
	return in, nil
}

// decodeJSONBody decodes a publish body with encoding/json.
func decodeJSONBody(body []byte, in *publishBody) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(in); err != nil {
		return &apiError{http.StatusBadRequest, CodeInvalidJSON, "the body is not a JSON object of the form {\"user\":\"…\",\"text\":\"…\"}: " + err.Error()}
	}
	if dec.More() {
		return &apiError{http.StatusBadRequest, CodeInvalidJSON, "the body must be one JSON object"}
	}
	return nil
}

// newMessage validates the fields of a message to publish.
func (s *Server) newMessage(room, user, text string) (broker.Message, *apiError) {
	if err := broker.ValidateRoom(room); err != nil {
		return broker.Message{}, &apiError{http.StatusBadRequest, CodeInvalidRoom, err.Error()}
	}
	user = strings.TrimSpace(user)
	if err := broker.ValidateUser(user); err != nil {
		return broker.Message{}, &apiError{http.StatusBadRequest, CodeInvalidUser, err.Error()}
	}
	if user == "" {
		user = DefaultUser
	}
	text = broker.NormalizeText(text)
	if err := broker.ValidateText(text, s.cfg.MaxMessageBytes); err != nil {
		switch {
		case errors.Is(err, broker.ErrTextTooLarge):
			return broker.Message{}, &apiError{http.StatusRequestEntityTooLarge, CodeMessageTooLarge,
				fmt.Sprintf("text is %d bytes; the limit is %d", len(text), s.cfg.MaxMessageBytes)}
		case errors.Is(err, broker.ErrEmptyText):
			return broker.Message{}, &apiError{http.StatusBadRequest, CodeEmptyMessage, "text is empty"}
		case errors.Is(err, broker.ErrInvalidUTF8):
			return broker.Message{}, &apiError{http.StatusBadRequest, CodeInvalidUTF8, "text is not valid UTF-8"}
		default:
			return broker.Message{}, &apiError{http.StatusBadRequest, CodeInvalidChars, err.Error()}
		}
	}
	return broker.Message{
		ID:   broker.NewID(),
		Room: room,
		User: user,
		Text: text,
		TS:   s.cfg.Now().UTC(),
		Node: s.cfg.Node,
	}, nil
}

// store publishes m through JetStream and returns it once stored. Without
// a usable NATS connection it fails fast with 503, never a false success.
func (s *Server) store(ctx context.Context, m broker.Message, dedupeID string) (broker.Message, bool, *apiError) {
	if err := s.cfg.Ready(); err != nil {
		return m, false, &apiError{http.StatusServiceUnavailable, CodeUnavailable, err.Error()}
	}
	request := ctx
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	stored, dup, err := s.cfg.Store.Publish(ctx, m, dedupeID)
	if err != nil {
		s.cfg.Log.Warn("publish", "room", m.Room, "err", err)
		// The stream failed only if the request was still waiting for it:
		// not when the client went away, nor when this gateway's own
		// window of publishes was full.
		if request.Err() == nil && !errors.Is(err, broker.ErrPublishBusy) {
			s.cfg.StoreFailed()
		}
		return m, false, &apiError{http.StatusServiceUnavailable, CodeUnavailable, "the message could not be stored; try again"}
	}
	return stored, dup, nil
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return r.Header.Get("Content-Type")
	}
	return mt
}

// readForm reads an urlencoded or multipart form body.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, *apiError) {
	limit := s.cfg.MaxMessageBytes*4 + 4096 // percent-encoding triples a byte
	switch mt := mediaType(r); mt {
	case "application/x-www-form-urlencoded":
		body, aerr := s.readBody(w, r, limit)
		if aerr != nil {
			return nil, aerr
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &apiError{http.StatusBadRequest, CodeBadRequest, "the form is not valid: " + err.Error()}
		}
		return form, nil
	case "multipart/form-data":
		s.setBodyDeadline(w)
		r.Body = http.MaxBytesReader(w, r.Body, int64(limit))
		if err := r.ParseMultipartForm(int64(limit)); err != nil { //nolint:gosec // the body is under http.MaxBytesReader just above
			return nil, bodyError(w, err)
		}
		if r.MultipartForm != nil && len(r.MultipartForm.File) > 0 {
			_ = r.MultipartForm.RemoveAll()
			return nil, &apiError{http.StatusBadRequest, CodeBadRequest, "file uploads are not accepted"}
		}
		return url.Values(r.MultipartForm.Value), nil
	default:
		return nil, &apiError{http.StatusUnsupportedMediaType, CodeUnsupportedType,
			fmt.Sprintf("Content-Type must be application/x-www-form-urlencoded or multipart/form-data, not %q", mt)}
	}
}

func (s *Server) setBodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
}

// clearBodyDeadline lifts the read deadline once the body is in: net/http
// then watches the connection for the client going away, and a deadline
// passing there would cancel a request that is still being answered.
func (s *Server) clearBodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// readBody reads at most limit bytes of body within the body timeout
// (ServeHTTP set the read deadline for a request with a body).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *apiError) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, int64(limit)), r.ContentLength, limit)
	if err != nil {
		return nil, bodyError(w, err)
	}
	s.clearBodyDeadline(w)
	return body, nil
}

// readAll reads rd to its end like io.ReadAll, starting with room for the
// announced length when the limit allows it, so a body is read into one
// buffer of its size.
func readAll(rd io.Reader, length int64, limit int) ([]byte, error) {
	if length < 0 || length > int64(limit) {
		return io.ReadAll(rd)
	}
	b := make([]byte, 0, length+1) // +1: reaching the end needs a read with room
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow as io.ReadAll does
		}
	}
}

func bodyError(w http.ResponseWriter, err error) *apiError {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		w.Header().Set("Connection", "close")
		return &apiError{http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			fmt.Sprintf("the request body is over the limit of %d bytes", tooLarge.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return &apiError{http.StatusRequestTimeout, CodeRequestTimeout, "the request body was not received in time"}
	default:
		return &apiError{http.StatusBadRequest, CodeBadRequest, "the request body could not be read: " + err.Error()}
	}
}
