// Package api is the HTTP API of chat-gateway: publishing, SSE listening,
// history, health and the chat page.
package api

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/connlimit"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
	"github.com/chatscalable/chatscalable/gateway/internal/limits"
	"github.com/chatscalable/chatscalable/gateway/internal/mercure"
	"github.com/chatscalable/chatscalable/gateway/internal/metrics"
	"github.com/chatscalable/chatscalable/web"
	"github.com/gorilla/mux"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Store is what the API needs of the room history.
type Store interface {
	Publish(ctx context.Context, m broker.Message, dedupeID string) (broker.Message, bool, error)
	Before(ctx context.Context, room string, before uint64, limit int) ([]broker.Message, error)
}

// Config holds the API's dependencies and limits.
type Config struct {
	Node    string
	Version string
	// NATSMode is "embedded" or "external", shown by /node.
	NATSMode string
	Started  time.Time
	// Now is the wall clock messages are stamped with ("ts"); nil is
	// time.Now. Nothing orders by it (see gateway.Options.Clock).
	Now func() time.Time

	// Delivery streams rooms to listeners, and encodes messages as the
	// API shows them.
	Delivery *delivery.Delivery
	// Auth, if set, verifies every request's token and what it grants;
	// nil lets anyone do anything as any user (--auth off).
	Auth *auth.Verifier
	// PublishPerUser and PublishPerIP bound the publish rate of a user
	// and of a client address; StreamsPerUser bounds a user's open
	// streams. nil: no limit.
	PublishPerUser, PublishPerIP *limits.Rate
	StreamsPerUser               *limits.Count
	// AllowedOrigins may post with the token cookie besides the gateway's
	// own pages; CORSOrigins may call the JSON API from their pages.
	// Every other site's browser POST or PUT is refused (CSRF).
	AllowedOrigins, CORSOrigins []string
	// Admin: an admin listener serves /metrics and /node's details (see
	// AdminHandler); the public listener then has no /metrics and its
	// /node names the node only.
	Admin bool
	// TokenURL is where the chat page fetches its token (with auth on).
	TokenURL string
	// SignInURL is where the chat page links a browser that is not
	// signed in (with auth on).
	SignInURL string
	// Mercure, if set, is the Mercure hub, served at /.well-known/mercure.
	Mercure http.Handler
	// PrivateRooms are room patterns (path.Match) that only a token with a
	// subscribe grant for the room can see: everyone else gets 404 for
	// them, and the directory omits them.
	PrivateRooms []string
	// AdminPrivate, if set, reports whether an admin made a room private
	// through the directory, and whether the gateway knows (it refuses
	// rooms with 503 while it does not).
	AdminPrivate func(room string) (private, known bool)
	Store        Store
	// Ready returns nil while the gateway can publish and stream.
	Ready func() error
	// Request, if set, sends a request to a chat service over NATS; the
	// directory and presence endpoints need it.
	Request func(ctx context.Context, subject string, data []byte) (*nats.Msg, error)
	// ServiceTimeout bounds waiting for a chat service (default 2s).
	ServiceTimeout time.Duration
	// Metrics receives the API's measurements; nil keeps a private set.
	Metrics *metrics.Metrics
	// StoreFailed, if set, is told when storing or reading history failed:
	// the gateway is not ready until it has checked the history stream
	// again.
	StoreFailed func()
	// NATSServer names the NATS server the gateway is connected to now.
	NATSServer func() string

	MaxMessageBytes int
	// WriteTimeout ends a response whose client has not taken it within
	// this time (an SSE stream renews it for each write).
	WriteTimeout time.Duration
	// BodyTimeout bounds reading a request body.
	BodyTimeout time.Duration
	// PublishTimeout bounds waiting for the history stream to store a message.
	PublishTimeout time.Duration

	Log *slog.Logger
}

// Server serves the API.
type Server struct {
	cfg       Config
	router    *mux.Router
	origins   *origins
	csp       string // the page's Content-Security-Policy
	published publishCounters
	// nodeHeader is the X-Chat-Node header's value.
	nodeHeader []string
}

// publishCounters are the publish results' counters, looked up once
// rather than by label on every publish.
type publishCounters struct {
	stored, duplicate, rejected, failed prometheus.Counter
}

// Defaults and limits of the API.
const (
	DefaultRoom    = "lobby"
	DefaultUser    = "anonymous"
	DefaultLimit   = 50
	MaxLimit       = 500
	jsonBodyFactor = 6 // a JSON string escapes a byte in at most 6 bytes
)

// New returns the API server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = defaults.BodyTimeout
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = defaults.PublishTimeout
	}
	if cfg.Metrics == nil {
		zero := func() float64 { return 0 }
		cfg.Metrics = metrics.New(metrics.Sources{Rooms: zero, NATSConnected: zero, Backfills: zero})
	}
	if cfg.StoreFailed == nil {
		cfg.StoreFailed = func() {}
	}
	if cfg.ServiceTimeout <= 0 {
		cfg.ServiceTimeout = defaults.ServiceTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaults.WriteTimeout
	}
	o, err := newOrigins(cfg.AllowedOrigins, cfg.CORSOrigins, cfg.Auth != nil && cfg.Auth.Cookie() != "" || cfg.Mercure != nil)
	if err != nil {
		return nil, err
	}
	if cfg.Mercure != nil {
		// Mercure publishers on other sites are legitimate (with a token
		// in a header); one authorized by the cookie must come from a
		// --mercure-publish-origins origin, which the hub checks itself.
		o.csrf.AddInsecureBypassPattern("POST " + mercure.Path)
	}
	s := &Server{cfg: cfg, router: mux.NewRouter(), origins: o, csp: pagePolicy(cfg.TokenURL), nodeHeader: []string{cfg.Node}}
	pub := cfg.Metrics.Published
	s.published = publishCounters{pub.WithLabelValues("stored"), pub.WithLabelValues("duplicate"),
		pub.WithLabelValues("rejected"), pub.WithLabelValues("failed")}
	r := s.router
	// Paths are matched as sent: a Mercure subscription's path holds an
	// escaped URL (%2F%2F), which cleaning would turn into a redirect.
	r.SkipClean(true)
	r.HandleFunc("/", s.index).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").HandlerFunc(s.static).Methods(http.MethodGet, http.MethodHead)
	// Browsers, and tools that do not read the page's icon link, ask here.
	r.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		http.ServeFileFS(w, r, web.Static(), "favicon.svg")
	}).Methods(http.MethodGet, http.MethodHead)
	if cfg.Admin {
		r.HandleFunc("/node", s.nodeName).Methods(http.MethodGet)
	} else {
		r.HandleFunc("/node", s.node).Methods(http.MethodGet)
	}
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	if !cfg.Admin {
		r.Handle("/metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	}
	r.HandleFunc("/publish", s.publishForm).Methods(http.MethodPost)
	r.HandleFunc("/listen", s.listen).Methods(http.MethodGet)
	r.HandleFunc(messagesTemplate, s.postMessage).Methods(http.MethodPost)
	r.HandleFunc("/rooms/{room}/messages", s.history).Methods(http.MethodGet)
	r.HandleFunc("/rooms/{room}/events", s.roomEvents).Methods(http.MethodGet)
	r.HandleFunc("/rooms", s.listRooms).Methods(http.MethodGet)
	r.HandleFunc("/rooms/{room}", s.getRoom).Methods(http.MethodGet)
	r.HandleFunc("/rooms/{room}", s.putRoom).Methods(http.MethodPut)
	r.HandleFunc("/rooms/{room}/members", s.members).Methods(http.MethodGet)
	if cfg.Mercure != nil {
		r.PathPrefix(mercure.Path).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := detacher(r); d != nil {
				r = r.WithContext(delivery.WithDetach(r.Context(), d))
			}
			cfg.Mercure.ServeHTTP(w, r)
		})
	}
	r.Use(nameRoute)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such route: "+r.URL.Path)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowed := s.allowedMethods(r)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			r.Method+" is not allowed on "+r.URL.Path+"; it takes "+strings.Join(allowed, ", "))
	})
	return s, nil
}

// ServeHTTP sets the headers every response carries, recovers from panics,
// routes the request, and counts and logs it (one line, never a body).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route := &routeName{name: "unmatched"}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	// done may run long after the request (a stream's end): it keeps
	// these strings, not the request.
	method, path, remote := r.Method, r.URL.Path, r.RemoteAddr
	done := func(ctx context.Context, status int, bytes int64) {
		d := time.Since(start)
		s.cfg.Metrics.HTTPRequests.WithLabelValues(route.name, methodLabel(method), strconv.Itoa(status)).Inc()
		s.cfg.Metrics.HTTPSeconds.WithLabelValues(route.name).Observe(d.Seconds())
		level := slog.LevelInfo
		if route.name == "/metrics" || route.name == "/healthz" || route.name == "/readyz" || strings.HasPrefix(route.name, "/static/") || route.name == "/favicon.ico" {
			level = slog.LevelDebug
		}
		if !s.cfg.Log.Enabled(ctx, level) {
			return // the arguments below cost allocations even when not logged
		}
		s.cfg.Log.Log(ctx, level, "http", "method", method, "route", route.name, "path", path,
			"status", status, "bytes", bytes, "duration", d.Round(time.Microsecond), "remote", remote)
	}
	route.done, route.rec = done, rec
	defer func() {
		if !route.handedOver {
			done(r.Context(), rec.status, rec.bytes)
		}
	}()
	w = rec
	// The header values are shared by every response (net/http copies
	// them when it writes the header; nothing appends to them).
	h := w.Header()
	h["X-Chat-Node"] = s.nodeHeader
	h["X-Content-Type-Options"] = nosniff
	h["Referrer-Policy"] = noReferrer
	// Every response must be taken within the write timeout (an SSE
	// stream renews it for each write), and a body must arrive within
	// the body timeout, even on a route that never reads it: net/http
	// reads it after the handler to reuse the connection.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(start.Add(s.cfg.WriteTimeout))
	if hasBody(r) {
		_ = rc.SetReadDeadline(start.Add(s.cfg.BodyTimeout))
	}
	if why := connlimit.Refusal(r.Context()); why != "" && !probe(r.URL.Path) {
		route.name = "refused"
		h.Set("Retry-After", strconv.Itoa(refusedRetryAfter))
		h.Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, CodeTooManyConns, "this gateway holds as many connections as it may ("+why+"); try again later")
		return
	}
	if s.origins.corsHeaders(w, r) {
		route.name = "preflight"
		return
	}
	if err := s.origins.csrf.Check(r); err != nil {
		route.name = "cross_origin"
		writeError(w, http.StatusForbidden, CodeCrossOrigin, "a "+r.Method+" from another site's page is refused: "+err.Error())
		return
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, CodeInternal, "internal error")
		}
	}()
	if room, ok := messagesRoute(r); ok {
		// The publish route, the busiest, is found without the router.
		route.name = messagesTemplate
		s.postRoomMessage(w, r, room)
		return
	}
	s.router.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
}

// messagesTemplate is the publish route's template, as the router has it.
const messagesTemplate = "/rooms/{room}/messages"

// messagesRoute reports whether r is a POST to /rooms/{room}/messages, as
// the router would match it, and returns the path's room.
func messagesRoute(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost {
		return "", false
	}
	room, ok := strings.CutPrefix(r.URL.Path, "/rooms/")
	if !ok {
		return "", false
	}
	room, ok = strings.CutSuffix(room, "/messages")
	if !ok || room == "" || strings.Contains(room, "/") {
		return "", false
	}
	return room, true
}

// Values of the headers every response carries.
var nosniff, noReferrer = []string{"nosniff"}, []string{"no-referrer"}

// refusedRetryAfter is the Retry-After, in seconds, of a refused connection.
const refusedRetryAfter = 5

// probe reports whether path is a health or metrics probe, which are
// answered even on a connection over the limits.
func probe(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// hasBody reports whether the request says it carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// methodLabel is the method as a metrics label: the methods the API
// knows, else "other", so clients cannot add series at will.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}

// routeKey carries a *routeName through a request's context.
type routeKey struct{}

// routeName is the matched route's path template, for metrics and logs.
// A stream handed over to the stream loop sets handedOver and reports
// itself through done when it ends, so its one log line and its duration
// cover the whole stream.
type routeName struct {
	name       string
	handedOver bool
	done       func(ctx context.Context, status int, bytes int64)
	// rec counts what the handler wrote before it handed the stream over.
	rec *recorder
}

// detacher returns the Detach of a stream served for r: a stream the loop
// writes outlives its handler, so its one log line and its duration are
// written when it ends. nil outside ServeHTTP.
func detacher(r *http.Request) func() func(int64) {
	route, _ := r.Context().Value(routeKey{}).(*routeName)
	if route == nil {
		return nil
	}
	return func() func(int64) {
		route.handedOver = true
		before := route.rec.bytes
		return func(written int64) { route.done(context.Background(), http.StatusOK, before+written) }
	}
}

// nameRoute records the matched route's template.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rn, ok := r.Context().Value(routeKey{}).(*routeName); ok {
			if tpl, err := mux.CurrentRoute(r).GetPathTemplate(); err == nil {
				rn.name = tpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recorder remembers a response's status and size. Unwrap lets
// http.ResponseController reach the connection (flushes, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", s.csp)
	w.Header().Set("Cache-Control", "no-cache")
	if room == "" {
		room = DefaultRoom
	} else if err := broker.ValidateRoom(room); err != nil {
		// Say so, rather than show another room as if it were this one.
		w.WriteHeader(http.StatusBadRequest)
		_ = web.BadRoom().Execute(w, web.BadRoomData{Room: room, Reason: err.Error(), Default: DefaultRoom})
		return
	}
	err := web.Index().Execute(w, s.page(room))
	if err != nil {
		s.cfg.Log.Warn("render page", "err", err)
	}
}

// pagePolicy is the page's Content-Security-Policy: everything from the
// gateway itself, and, when the token URL is on another origin, fetches to
// that origin too.
func pagePolicy(tokenURL string) string {
	const self = "default-src 'self'"
	u, err := url.Parse(tokenURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return self // relative: on the gateway's own origin
	}
	return self + "; connect-src 'self' " + u.Scheme + "://" + u.Host
}

// page is what the chat page is made with: the limits it checks and how
// it gets its token.
func (s *Server) page(room string) web.PageData {
	d := web.PageData{Node: s.cfg.Node, Room: room, Version: s.cfg.Version, MaxMessageBytes: s.cfg.MaxMessageBytes, Auth: "off"}
	if s.cfg.Auth != nil {
		d.Auth, d.AuthCookie, d.TokenURL, d.SignInURL = "jwt", s.cfg.Auth.Cookie(), s.cfg.TokenURL, s.cfg.SignInURL
	}
	return d
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static/")
	if _, err := fs.Stat(web.Static(), name); err != nil || !fs.ValidPath(name) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such file: "+r.URL.Path)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, web.Static(), name) //nolint:gosec // an embedded file system: no path leaves it
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"node":        s.cfg.Node,
		"version":     s.cfg.Version,
		"nats":        s.cfg.NATSMode,
		"nats_server": s.cfg.NATSServer(),
		"go":          runtime.Version(),
		"started":     s.cfg.Started.UTC().Format(time.RFC3339),
	})
}

// nodeName is /node on the public listener when an admin listener holds
// the details: the name only (also in every X-Chat-Node header).
func (s *Server) nodeName(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"node": s.cfg.Node})
}

// AdminHandler serves what operators need and the public need not see:
// /metrics, /node with its details, and the health probes.
func (s *Server) AdminHandler() http.Handler {
	m := http.NewServeMux()
	m.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /node", s.node)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	return m
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.Node})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": s.cfg.Node})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	room := mux.Vars(r)["room"]
	if err := broker.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRoom, err.Error())
		return
	}
	q := r.URL.Query()
	limit := DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := parseLimit(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalidLimit, err.Error())
			return
		}
		limit = n
	}
	var before uint64
	if v := q.Get("before"); v != "" {
		c, err := delivery.ParseCursor(v, room)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalidCursor, "before: "+err.Error())
			return
		}
		if c.Epoch != s.cfg.Delivery.Epoch() {
			// The history was recreated: nothing before that cursor is kept.
			writeJSON(w, http.StatusOK, map[string]any{"messages": []delivery.WireMessage{}})
			return
		}
		before = c.Seq
	}
	if _, _, ok := s.authorize(w, r, accessSubscribe, room, ""); !ok {
		return
	}
	if err := s.cfg.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PublishTimeout)
	defer cancel()
	msgs, err := s.cfg.Store.Before(ctx, room, before, limit)
	if err != nil {
		s.cfg.Log.Warn("read history", "room", room, "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "history is unavailable; try again")
		return
	}
	out := make([]delivery.WireMessage, 0, len(msgs))
	for _, m := range msgs {
		if s.cfg.Delivery.Acceptable(m) {
			out = append(out, s.cfg.Delivery.Wire(m))
		}
	}
	page := map[string]any{"messages": out}
	if len(msgs) == limit {
		// A full page: older messages may remain. "next" is the before=
		// of the page before this one (absent once the start is reached).
		page["next"] = s.cfg.Delivery.Wire(msgs[0]).Cursor
	}
	writeJSON(w, http.StatusOK, page)
}

var errLimit = errors.New("limit must be a whole number from 1 to 500")

func parseLimit(v string) (int, error) {
	n := 0
	if len(v) > 3 {
		return 0, errLimit
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errLimit
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > MaxLimit {
		return 0, errLimit
	}
	return n, nil
}
