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
	stored, ok := s.publish(w, r, room, form.Get("user"), form.Get("message"))
	if !ok {
		return
	}
	if wantJSON {
		writeJSON(w, http.StatusCreated, s.wire(stored))
		return
	}
	target := "/"
	if room != DefaultRoom {
		target = "/?room=" + url.QueryEscape(room)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// postMessage publishes {"user":…,"text":…} to the room in the path.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	room := mux.Vars(r)["room"]
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
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, CodeInvalidUTF8, "the body is not valid UTF-8")
		return
	}
	var in struct {
		User *string `json:"user"`
		Text *string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidJSON, "the body is not a JSON object of the form {\"user\":\"…\",\"text\":\"…\"}: "+err.Error())
		return
	}
	if dec.More() || bytes.TrimSpace(body)[0] != '{' {
		writeError(w, http.StatusBadRequest, CodeInvalidJSON, "the body must be one JSON object")
		return
	}
	if in.Text == nil {
		writeError(w, http.StatusBadRequest, CodeEmptyMessage, "text is required")
		return
	}
	user := ""
	if in.User != nil {
		user = *in.User
	}
	if stored, ok := s.publish(w, r, room, user, *in.Text); ok {
		writeJSON(w, http.StatusCreated, s.wire(stored))
	}
}

// publish validates and stores a message; on failure it has written the
// error response and returns false.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, room, user, text string) (broker.Message, bool) {
	m, aerr := s.newMessage(room, user, text)
	if aerr == nil {
		m, aerr = s.store(r.Context(), m)
	}
	if aerr != nil {
		aerr.write(w)
		return m, false
	}
	return m, true
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
		TS:   time.Now().UTC(),
		Node: s.cfg.Node,
	}, nil
}

// store publishes m through JetStream and returns it once stored. Without
// a usable NATS connection it fails fast with 503, never a false success.
func (s *Server) store(ctx context.Context, m broker.Message) (broker.Message, *apiError) {
	if err := s.cfg.Ready(); err != nil {
		return m, &apiError{http.StatusServiceUnavailable, CodeUnavailable, err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	stored, err := s.cfg.Store.Publish(ctx, m)
	if err != nil {
		s.cfg.Log.Warn("publish", "room", m.Room, "err", err)
		return m, &apiError{http.StatusServiceUnavailable, CodeUnavailable, "the message could not be stored; try again"}
	}
	return stored, nil
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
		if err := r.ParseMultipartForm(int64(limit)); err != nil {
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

// readBody reads at most limit bytes of body within the body timeout.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *apiError) {
	s.setBodyDeadline(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		return nil, bodyError(w, err)
	}
	return body, nil
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
