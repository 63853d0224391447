// The sign-in service's HTTP handlers.

package main

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/httpjson"
)

// maxFormBytes bounds a POST body: a name, a next path and their keys.
const maxFormBytes = 4 << 10

// maxNext bounds the length of a next path.
const maxNext = 2048

// Error codes of the JSON error body {"error":{"code":…,"message":…}}.
const (
	codeUnauthorized     = "unauthorized"
	codeInvalidName      = "invalid_name"
	codeInvalidNext      = "invalid_next"
	codeBadRequest       = "bad_request"
	codeBodyTooLarge     = "body_too_large"
	codeCrossOrigin      = "cross_origin"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeInternal         = "internal"
)

// service is chat-signin: a form that takes a name, a session cookie that
// remembers it, and tokens for it.
type service struct {
	base     string
	signer   *auth.Signer
	sessions sessions
	cookie   string
	secure   bool
	grants   auth.Grants // what every token grants but admin
	admins   map[string]bool
	ttl      time.Duration
	session  time.Duration
	log      *slog.Logger
	// now is the clock sessions are made and checked with.
	now func() time.Time
}

// newService reads the keys of c and returns the service.
func newService(c config, log *slog.Logger) (*service, error) {
	signer, err := auth.NewSigner(auth.MintOptions{
		SecretFile: c.SecretFile, PrivateKeyFile: c.PrivateKeyFile,
		Issuer: c.Issuer, Audience: c.Audience, KeyID: c.KeyID,
	})
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key, err := envflag.ReadSecret(c.SessionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if len(key) < minSessionKey {
		return nil, fmt.Errorf("the session key in %s has %d bytes; at least %d are needed", c.SessionKeyFile, len(key), minSessionKey)
	}
	if c.SecretFile != "" {
		// A session key that is also the token secret would let one be
		// made from the other's MACs; keep them apart.
		if secret, err := envflag.ReadSecret(c.SecretFile); err == nil && secret == key {
			return nil, errors.New("the session key must not be the token secret")
		}
	}
	s := &service{
		base:     c.BasePath,
		signer:   signer,
		sessions: sessions{key: []byte(key)},
		cookie:   c.Cookie,
		secure:   c.CookieSecure,
		grants:   auth.Grants{Publish: c.Publish, Subscribe: c.Subscribe},
		admins:   map[string]bool{},
		ttl:      c.TTL,
		session:  c.SessionTTL,
		log:      log,
		now:      time.Now,
	}
	for _, u := range c.AdminUsers {
		s.admins[u] = true
	}
	return s, nil
}

// handler serves the endpoints. A browser's POST from another site's page
// is refused (http.CrossOriginProtection), and every answer says not to be
// framed or sniffed.
func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(s.base+"/signin", s.methods(map[string]http.HandlerFunc{http.MethodGet: s.form, http.MethodPost: s.signIn}))
	mux.HandleFunc(s.base+"/token", s.methods(map[string]http.HandlerFunc{http.MethodGet: s.token}))
	mux.HandleFunc(s.base+"/signout", s.methods(map[string]http.HandlerFunc{http.MethodPost: s.signOut}))
	mux.HandleFunc("/healthz", s.methods(map[string]http.HandlerFunc{http.MethodGet: healthz}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such endpoint: "+r.URL.Path)
	})
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, codeCrossOrigin, "a request from another site's page is refused")
	}))
	protected := csrf.Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		protected.ServeHTTP(w, r)
	})
}

// methods routes by method; HEAD goes where GET does; others get 405.
func (s *service) methods(by map[string]http.HandlerFunc) http.HandlerFunc {
	allow := make([]string, 0, len(by))
	for m := range by {
		allow = append(allow, m)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		h, ok := by[m]
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		h(w, r)
	}
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// validateName checks a name as the gateways check a user: one line of at
// most 64 characters, no control characters; and not empty or padded.
func validateName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("a name is needed")
	}
	if strings.TrimFunc(name, unicode.IsSpace) != name {
		return errors.New("a name must not start or end with a space")
	}
	if err := broker.ValidateUser(name); err != nil {
		return err
	}
	return nil
}

// safeNext returns whether next is a path on this site to go to after
// signing in: "/…", never "//host" or "/\host" (which browsers read as
// another site), no scheme, host or control characters.
func safeNext(next string) bool {
	if next == "" || len(next) > maxNext || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return false
	}
	for _, r := range next {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	u, err := url.Parse(next)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == ""
}

// current returns who the request's session cookie says signed in.
func (s *service) current(r *http.Request) (string, error) {
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return "", errNoSession
	}
	return s.sessions.parse(c.Value, s.now())
}

func (s *service) setSession(w http.ResponseWriter, name string) {
	expires := s.now().Add(s.session)
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure when --cookie-secure: a plain-HTTP demo must work too
		Name: s.cookie, Value: s.sessions.make(name, expires), Path: s.cookiePath(),
		Expires: expires, MaxAge: int(s.session / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (s *service) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // as setSession's
		Name: s.cookie, Value: "", Path: s.cookiePath(), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// cookiePath keeps the session cookie to this service's endpoints.
func (s *service) cookiePath() string {
	if s.base == "" {
		return "/"
	}
	return s.base
}

// token answers a signed-in browser {"token":"…"}; anyone else 401.
func (s *service) token(w http.ResponseWriter, r *http.Request) {
	name, err := s.current(r)
	if err != nil {
		if !errors.Is(err, errNoSession) {
			s.clearSession(w)
		}
		writeError(w, http.StatusUnauthorized, codeUnauthorized, err.Error())
		return
	}
	g := s.grants
	g.Admin = s.admins[name]
	tok, err := s.signer.Mint(name, g, s.ttl)
	if err != nil {
		s.log.Error("sign a token", "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "the token could not be signed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// signIn takes the form: a name and, optionally, where to go next.
func (s *service) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("the form is larger than %d bytes", maxFormBytes))
			return
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, "the form could not be read")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	next := r.PostForm.Get("next")
	if next != "" && !safeNext(next) {
		writeError(w, http.StatusBadRequest, codeInvalidNext, "next must be a path on this site, like /?room=lobby")
		return
	}
	if err := validateName(name); err != nil {
		if wantsHTML(r) {
			s.renderForm(w, http.StatusBadRequest, formPage{Name: name, Next: next, Error: "That name cannot be used: " + err.Error() + "."})
			return
		}
		writeError(w, http.StatusBadRequest, codeInvalidName, err.Error())
		return
	}
	s.setSession(w, name)
	s.log.Info("signed in", "user", name)
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // next is "/" or passed safeNext: a path of this site
}

// signOut ends the session. Tokens already given stay valid until they
// expire (--ttl).
func (s *service) signOut(w http.ResponseWriter, r *http.Request) {
	s.clearSession(w)
	if !wantsHTML(r) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, s.base+"/signin", http.StatusSeeOther)
}

// wantsHTML: the request comes from a browser's form or navigation.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// form shows the sign-in form; a next path that is not safe is dropped.
func (s *service) form(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !safeNext(next) {
		next = ""
	}
	p := formPage{Next: next}
	if name, err := s.current(r); err == nil {
		p.Current, p.Name = name, name
	}
	s.renderForm(w, http.StatusOK, p)
}

// formPage is what the form is made with.
type formPage struct {
	Action, SignOut string
	Name, Next      string
	Current, Error  string
}

const pageStyle = `body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:2rem 1rem;color:#1d2330;background:#f4f5f8}` +
	`main{max-width:26rem;margin:0 auto;background:#fff;padding:1.5rem 2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}` +
	`h1{font-size:1.4rem;margin-top:0}label{display:block;font-weight:600;margin:1rem 0 .25rem}` +
	`input{font:inherit;width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #99a;border-radius:.25rem}` +
	`button{font:inherit;margin-top:1rem;padding:.5rem 1.25rem;border:0;border-radius:.25rem;background:#2f5bd3;color:#fff;cursor:pointer}` +
	`button.secondary{background:#e4e6ee;color:#1d2330}.note{color:#555;font-size:.9rem}#error{color:#b00020;font-weight:600}` +
	`@media (prefers-color-scheme:dark){body{background:#14161c;color:#e6e8ef}main{background:#1f232c}.note{color:#aab}` +
	`input{background:#14161c;color:#e6e8ef}button.secondary{background:#333a48;color:#e6e8ef}}`

// pagePolicy allows the page's one style block, by its hash, and nothing
// else: no script, no frames, forms posting only here.
var pagePolicy = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var formTemplate = template.Must(template.New("signin").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Sign in · ChatScalable</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
<h1>Sign in to ChatScalable</h1>
<p class="note">This is a demo sign-in: choose any name. Nobody checks it, so anyone can choose any name.</p>
{{if .Current}}<p id="current">You are signed in as <strong>{{.Current}}</strong>.</p>{{end}}
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<label for="name">Your name</label>
<input type="text" id="name" name="name" value="{{.Name}}" required maxlength="64" autocomplete="nickname" spellcheck="false" autofocus>
{{if .Next}}<input type="hidden" name="next" value="{{.Next}}">{{end}}
<button type="submit" id="signin">Sign in</button>
</form>
{{if .Current}}<form method="post" action="{{.SignOut}}"><button type="submit" id="signout" class="secondary">Sign out</button></form>{{end}}
</main>
</body>
</html>
`))

func (s *service) renderForm(w http.ResponseWriter, status int, p formPage) {
	p.Action, p.SignOut = s.base+"/signin", s.base+"/signout"
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := formTemplate.Execute(w, p); err != nil {
		s.log.Warn("render the form", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	httpjson.Error(w, status, code, message)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
