package api

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
)

// Error codes of refused identities and limits.
const (
	CodeUnauthorized   = "unauthorized"     // 401: no valid token
	CodeForbidden      = "forbidden"        // 403: the token does not grant it
	CodeRateLimited    = "rate_limited"     // 429: publishing too fast
	CodeTooManyStreams = "too_many_streams" // 429: the user holds its most streams
)

// clientIP is the address a request came from (not a proxy's header: a
// gateway behind a proxy sees the proxy's address).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allowPublish takes one publish of the address's rate and, for an
// authenticated user, of the user's; on refusal it writes 429 with
// Retry-After and returns false.
func (s *Server) allowPublish(w http.ResponseWriter, r *http.Request, id *auth.Identity) bool {
	ok, wait, which := true, time.Duration(0), "publish_ip"
	if s.cfg.PublishPerIP != nil { // no key is built per publish without a limit
		ok, wait = s.cfg.PublishPerIP.Allow("ip:" + clientIP(r))
	}
	if ok && id != nil && s.cfg.PublishPerUser != nil {
		ok, wait = s.cfg.PublishPerUser.Allow("user:" + id.User)
		which = "publish_user"
	}
	if ok {
		return true
	}
	s.cfg.Metrics.RateLimited.WithLabelValues(which).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeError(w, http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("publishing too fast; try again in %s", wait.Round(time.Millisecond)))
	return false
}

// private reports whether room matches a --private-rooms pattern or an
// admin made it private through the directory, and whether that is known:
// until the gateway has loaded the rooms made private, it is not.
func (s *Server) private(room string) (private, known bool) {
	for _, p := range s.cfg.PrivateRooms {
		if ok, err := path.Match(p, room); err == nil && ok {
			return true, true
		}
	}
	if s.cfg.AdminPrivate == nil {
		return false, true
	}
	return s.cfg.AdminPrivate(room)
}

// visible reports whether a caller with identity id (nil: auth off) sees
// room in the directory: with auth on, a room it may read; with auth off,
// a room known not to be private.
func (s *Server) visible(room string, id *auth.Identity) bool {
	if id != nil {
		return id.CanSubscribe(room)
	}
	private, known := s.private(room)
	return known && !private
}

// closed answers a request for a room while the gateway cannot tell
// whether it is private: 503, as for a gateway that is not ready.
func (s *Server) closed(w http.ResponseWriter) (string, *auth.Identity, bool) {
	writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the gateway has not loaded the private rooms yet; try again shortly")
	return "", nil, false
}

// hide answers a request for a private room the caller may not read as if
// the room did not exist.
func (s *Server) hide(w http.ResponseWriter, room string) (string, *auth.Identity, bool) {
	s.cfg.Metrics.AuthRefused.WithLabelValues("private").Inc()
	writeError(w, http.StatusNotFound, CodeNotFound, "no such room: "+room)
	return "", nil, false
}

// what a request asks to do with a room, for authorize.
type access int

const (
	accessPublish access = iota
	accessSubscribe
	accessAdmin
	accessAny // any authenticated user (the rooms directory)
)

// authorize checks the request's identity for an access to room. With
// auth off it returns the user the request names (nil identity). With auth
// on, the user is the token's subject: a request naming another user is
// refused, never taken at its word. On refusal the error response is
// written and ok is false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, a access, room, named string) (user string, id *auth.Identity, ok bool) {
	named = strings.TrimSpace(named)
	if s.cfg.Auth == nil {
		if a != accessAny {
			switch private, known := s.private(room); {
			case !known:
				return s.closed(w)
			case private:
				return s.hide(w, room)
			}
		}
		return named, nil, true
	}
	id, err := s.cfg.Auth.Authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chat"`)
		reason := "invalid_token"
		if errors.Is(err, auth.ErrNoToken) {
			reason = "no_token"
		}
		s.cfg.Metrics.AuthRefused.WithLabelValues(reason).Inc()
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, err.Error())
		return "", nil, false
	}
	forbid := func(reason, msg string) (string, *auth.Identity, bool) {
		s.cfg.Metrics.AuthRefused.WithLabelValues(reason).Inc()
		writeError(w, http.StatusForbidden, CodeForbidden, msg)
		return "", nil, false
	}
	if !s.origins.checkCookieOrigin(r, id) {
		return forbid("cookie_origin", "a "+r.Method+" authorized by the token cookie must come from this gateway's pages or an allowed origin")
	}
	if err := broker.ValidateUser(id.User); err != nil {
		return forbid("bad_subject", "the token's sub cannot be a user name: "+err.Error())
	}
	if named != "" && named != id.User {
		return forbid("impersonation", "user must be the token's subject, "+id.User)
	}
	if a != accessAny && !id.CanSubscribe(room) {
		switch private, known := s.private(room); {
		case !known:
			return s.closed(w)
		case private:
			return s.hide(w, room)
		}
	}
	switch a {
	case accessPublish:
		if !id.CanPublish(room) {
			return forbid("no_grant", "your token does not grant publishing to "+room)
		}
	case accessSubscribe:
		if !id.CanSubscribe(room) {
			return forbid("no_grant", "your token does not grant reading "+room)
		}
	case accessAdmin:
		if !id.IsAdmin() {
			return forbid("no_grant", "setting a room's topic needs an admin token")
		}
	}
	return id.User, id, true
}
