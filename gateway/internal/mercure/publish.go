package mercure

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// publish is POST /.well-known/mercure: a form with topic (repeatable, the
// first canonical), data, private (present means private, whatever its
// value), id, type and retry. It answers 200 with the update's id as
// text/plain once the update is stored, and refuses as Mercure does, with
// plain-text bodies: 401 without a token whose mercure.publish claim
// covers every topic, 400 for a missing topic, a bad retry or a control
// character in id or type, 403 for a topic in the reserved namespace.
func (h *Hub) publish(w http.ResponseWriter, r *http.Request) {
	claims, err := h.authorize(r, true)
	if err != nil || claims == nil || claims.Mercure.Publish == nil {
		h.refuse(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxUpdateBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "the update is larger than "+strconv.FormatInt(h.cfg.MaxUpdateBytes, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}
	form := r.PostForm
	topics := form["topic"]
	if len(topics) == 0 {
		http.Error(w, `Missing "topic" parameter`, http.StatusBadRequest)
		return
	}
	var retry uint64
	if v := form.Get("retry"); v != "" {
		if retry, err = strconv.ParseUint(v, 10, 64); err != nil {
			http.Error(w, `Invalid "retry" parameter`, http.StatusBadRequest)
			return
		}
	}
	if !matchAll(topics, claims.Mercure.Publish) {
		h.refuse(w, r, errors.New("the token's mercure.publish claim does not cover every topic"))
		return
	}
	for _, t := range topics {
		if strings.Contains(t, reserved) {
			http.Error(w, strconv.Quote(t)+`: topic value references the reserved "`+reserved+`" namespace`, http.StatusForbidden)
			return
		}
	}
	u := broker.MercureUpdate{
		Topics:  topics,
		Data:    form.Get("data"),
		ID:      form.Get("id"),
		Type:    form.Get("type"),
		Retry:   retry,
		Private: len(form["private"]) != 0,
		Time:    time.Now().Truncate(time.Millisecond),
	}
	if err := u.Validate(); err != nil {
		http.Error(w, strings.TrimPrefix(err.Error(), broker.ErrInvalidUpdate.Error()+": "), http.StatusBadRequest)
		return
	}
	if err := h.cfg.Ready(); err != nil {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	u.Seq, err = h.cfg.Store.Publish(ctx, u)
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		http.Error(w, "the update is larger than the bus carries", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		h.cfg.Log.Warn("mercure publish", "err", err)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, broker.MercureID(u, h.cfg.Epoch()))
}

// refuse answers 401 as Mercure does, logging why at debug level.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, why error) {
	h.cfg.Log.Debug("mercure request refused", "method", r.Method, "err", why)
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}
