package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/httpjson"
)

// writeFile writes content to a file of the test and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomKey(t *testing.T) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString([]byte(rand.Text() + rand.Text()))
}

// testConfig is a valid configuration with an HS256 secret of the test.
func testConfig(t *testing.T) config {
	t.Helper()
	c, err := parseFlags([]string{
		"--secret-file", writeFile(t, "jwt.secret", randomKey(t)+"\n"),
		"--session-key-file", writeFile(t, "session.key", randomKey(t)),
		"--publish", "lobby,team-*", "--subscribe", "*", "--admin-users", "root",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signinServer runs the service of c on a loopback port.
type signinServer struct {
	*httptest.Server
	svc *service
	c   config
}

func start(t *testing.T, c config) *signinServer {
	t.Helper()
	svc, err := newService(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(svc.handler())
	t.Cleanup(ts.Close)
	return &signinServer{Server: ts, svc: svc, c: c}
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request; form, if not nil, is the urlencoded body.
func (s *signinServer) do(t *testing.T, method, path string, form url.Values, header http.Header) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// signIn signs in as name and returns the session cookie.
func (s *signinServer) signIn(t *testing.T, name string) *http.Cookie {
	t.Helper()
	a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {name}}, nil)
	if a.status != http.StatusSeeOther {
		t.Fatalf("sign in as %q: %d %s", name, a.status, a.body)
	}
	c := sessionCookie(t, a, s.c.Cookie)
	if c == nil {
		t.Fatalf("sign in as %q set no session cookie: %v", name, a.header)
	}
	return c
}

func sessionCookie(t *testing.T, a answer, name string) *http.Cookie {
	t.Helper()
	for _, line := range a.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		if c.Name == name {
			return c
		}
	}
	return nil
}

func withCookie(c *http.Cookie) http.Header {
	return http.Header{"Cookie": {c.Name + "=" + c.Value}}
}

// errorCode returns the code of a JSON error body, failing the test when
// the body is not one.
func errorCode(t *testing.T, a answer) string {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error of type %q, not JSON: %s", ct, a.body)
	}
	var b httpjson.ErrorBody
	if err := json.Unmarshal([]byte(a.body), &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not a JSON error body (%v): %s", err, a.body)
	}
	return b.Error.Code
}

func TestSignInSetsASessionCookie(t *testing.T) {
	s := start(t, testConfig(t))
	a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {" ana "}, "next": {"/?room=team-a"}}, nil)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/?room=team-a" {
		t.Fatalf("sign in: %d Location %q, want 303 to /?room=team-a", a.status, a.header.Get("Location"))
	}
	c := sessionCookie(t, a, "chat_session")
	if c == nil {
		t.Fatal("no session cookie")
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/auth" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, not Secure, Path=/auth", c)
	}
	if want := int((12 * time.Hour).Seconds()); c.MaxAge != want {
		t.Errorf("cookie Max-Age %d, want %d (--session-ttl 12h)", c.MaxAge, want)
	}
	if name, err := s.svc.sessions.parse(c.Value, time.Now()); err != nil || name != "ana" {
		t.Errorf("the session says %q, %v; want ana (trimmed)", name, err)
	}
	// Without next: to the chat page.
	a = s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {"bo"}}, nil)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/" {
		t.Errorf("sign in without next: %d Location %q, want 303 to /", a.status, a.header.Get("Location"))
	}

	// --cookie-secure marks it Secure; --base-path moves everything.
	cfg := testConfig(t)
	cfg.CookieSecure, cfg.BasePath, cfg.Cookie = true, "/id/chat", "sess"
	s = start(t, cfg)
	a = s.do(t, http.MethodPost, "/id/chat/signin", url.Values{"name": {"ana"}}, nil)
	if c := sessionCookie(t, a, "sess"); a.status != http.StatusSeeOther || c == nil || !c.Secure || c.Path != "/id/chat" {
		t.Errorf("with --cookie-secure and --base-path /id/chat: %d, cookie %+v", a.status, c)
	}
	if a := s.do(t, http.MethodGet, "/auth/token", nil, nil); a.status != http.StatusNotFound || errorCode(t, a) != codeNotFound {
		t.Errorf("the default path with --base-path set: %d %s", a.status, a.body)
	}
}

// The token is what a gateway started with the same key accepts, for the
// signed-in name, with the configured grants.
func TestTokenIsAcceptedByTheGateway(t *testing.T) {
	s := start(t, testConfig(t))
	v, err := auth.New(context.Background(), auth.Options{SecretFile: s.c.SecretFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		admin bool
	}{{"ana", false}, {"Ümit Öz", false}, {"root", true}} {
		a := s.do(t, http.MethodGet, "/auth/token", nil, withCookie(s.signIn(t, tc.name)))
		if a.status != http.StatusOK {
			t.Fatalf("token for %s: %d %s", tc.name, a.status, a.body)
		}
		if cc := a.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("token answer Cache-Control %q, want no-store", cc)
		}
		var body struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Token == "" {
			t.Fatalf("token answer %s: %v", a.body, err)
		}
		id, err := v.Verify(body.Token)
		if err != nil {
			t.Fatalf("the gateway's verifier refuses the token for %s: %v", tc.name, err)
		}
		if id.User != tc.name || !slices.Equal(id.Grants.Publish, []string{"lobby", "team-*"}) ||
			!slices.Equal(id.Grants.Subscribe, []string{"*"}) || id.Grants.Admin != tc.admin {
			t.Errorf("token for %s: user %q grants %+v", tc.name, id.User, id.Grants)
		}
		if left := time.Until(id.Expires); left < 14*time.Minute || left > 15*time.Minute {
			t.Errorf("token expires in %s, want 15m (--ttl)", left)
		}
		if !id.CanPublish("team-a") || id.CanPublish("dev") || !id.CanSubscribe("dev") {
			t.Errorf("grants of %s do not work as patterns: %+v", tc.name, id.Grants)
		}
	}
}

// With a private key, issuer, audience and kid, the tokens carry them and
// a gateway verifying with the public key, issuer and audience accepts
// them.
func TestTokenSignedWithAPrivateKey(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.SecretFile = ""
	cfg.PrivateKeyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))
	cfg.Issuer, cfg.Audience, cfg.KeyID = "https://signin.example", "chat", "k1"
	s := start(t, cfg)
	a := s.do(t, http.MethodGet, "/auth/token", nil, withCookie(s.signIn(t, "ana")))
	var body struct{ Token string }
	if err := json.Unmarshal([]byte(a.body), &body); a.status != http.StatusOK || err != nil {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	v, err := auth.New(context.Background(), auth.Options{
		KeyFile: writeFile(t, "pub.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))),
		Issuer:  "https://signin.example", Audience: "chat",
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(body.Token); err != nil || id.User != "ana" {
		t.Fatalf("verify with the public key: %v, %+v", err, id)
	}
	header, _, _ := strings.Cut(body.Token, ".")
	h, _ := base64.RawURLEncoding.DecodeString(header)
	if !strings.Contains(string(h), `"kid":"k1"`) || !strings.Contains(string(h), `"alg":"EdDSA"`) {
		t.Errorf("token header %s, want alg EdDSA and kid k1", h)
	}
}

func TestTokenRefusesAnyoneNotSignedIn(t *testing.T) {
	s := start(t, testConfig(t))
	good := s.signIn(t, "ana").Value
	parts := strings.Split(good, ".")
	other := sessions{key: []byte(randomKey(t))}
	expired := s.svc.sessions.make("ana", time.Now().Add(-time.Second))
	bo64 := base64.RawURLEncoding.EncodeToString([]byte("bo"))
	for _, tc := range []struct {
		name, cookie string
		clears       bool // the answer removes the bad cookie
	}{
		{"no cookie", "", false},
		{"garbage", "not-a-session", true},
		{"empty", "..", true},
		{"another name, same MAC", bo64 + "." + parts[1] + "." + parts[2], true},
		{"later expiry, same MAC", parts[0] + ".99999999999." + parts[2], true},
		{"MAC cut short", parts[0] + "." + parts[1] + "." + parts[2][:10], true},
		{"another key's session", other.make("ana", time.Now().Add(time.Hour)), true},
		{"expired", expired, true},
		{"a token-like value", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbmEifQ.c2ln", true},
		{"huge", strings.Repeat("A", 3000) + "." + parts[1] + "." + parts[2], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.cookie != "" {
				h = http.Header{"Cookie": {"chat_session=" + tc.cookie}}
			}
			a := s.do(t, http.MethodGet, "/auth/token", nil, h)
			if a.status != http.StatusUnauthorized || errorCode(t, a) != codeUnauthorized {
				t.Fatalf("%d %s, want 401 unauthorized", a.status, a.body)
			}
			if c := sessionCookie(t, a, "chat_session"); (c != nil && c.MaxAge < 0) != tc.clears {
				t.Errorf("cookie cleared: %v, want %v", c, tc.clears)
			}
		})
	}
	// The session cookie is no token: a gateway with the token secret
	// refuses it.
	v, err := auth.New(context.Background(), auth.Options{SecretFile: s.c.SecretFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(good); err == nil {
		t.Error("the gateway accepts the session cookie as a token")
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	s := start(t, testConfig(t))
	for _, name := range []string{"", "   ", strings.Repeat("é", 65), "a\x01b", "tab\there", "a\u2028b", "\xff\xfe", "zero\x00"} {
		a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {name}}, nil)
		if a.status != http.StatusBadRequest || errorCode(t, a) != codeInvalidName {
			t.Errorf("name %q: %d %s, want 400 invalid_name", name, a.status, a.body)
		}
		if sessionCookie(t, a, "chat_session") != nil {
			t.Errorf("name %q: a session cookie was set", name)
		}
	}
	// A browser's form gets the form again, saying why, with the same status.
	a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {"a\x01b"}, "next": {"/?room=x"}}, http.Header{"Accept": {"text/html,*/*"}})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="error"`) || !strings.Contains(a.body, `name="next" value="/?room=x"`) {
		t.Errorf("a browser's bad name: %d\n%s", a.status, a.body)
	}
	// 64 characters is the limit, as on the gateways.
	s.signIn(t, strings.Repeat("é", 64))

	// Not a form, and too large a form.
	if a := s.do(t, http.MethodPost, "/auth/signin", nil, nil); a.status != http.StatusBadRequest || errorCode(t, a) != codeInvalidName {
		t.Errorf("no body: %d %s", a.status, a.body)
	}
	a = s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {"ana"}, "pad": {strings.Repeat("x", 5000)}}, nil)
	if a.status != http.StatusRequestEntityTooLarge || errorCode(t, a) != codeBodyTooLarge {
		t.Errorf("a large form: %d %s", a.status, a.body)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL+"/auth/signin", strings.NewReader("name=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed form: %d", resp.StatusCode)
	}
}

// A POST from another site's page (a forged sign-in or sign-out) is
// refused; the service's own form and clients that are not browsers pass.
func TestCrossSitePostsAreRefused(t *testing.T) {
	s := start(t, testConfig(t))
	form := url.Values{"name": {"mallory"}}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Sec-Fetch-Site": {"same-site"}},
		{"Origin": {"https://evil.example"}},
	} {
		for _, path := range []string{"/auth/signin", "/auth/signout"} {
			a := s.do(t, http.MethodPost, path, form, h)
			if a.status != http.StatusForbidden || errorCode(t, a) != codeCrossOrigin {
				t.Errorf("POST %s with %v: %d %s, want 403 cross_origin", path, h, a.status, a.body)
			}
			if sessionCookie(t, a, "chat_session") != nil {
				t.Errorf("POST %s with %v touched the session cookie", path, h)
			}
		}
	}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"same-origin"}},
		{"Origin": {s.URL}},
		nil,
	} {
		if a := s.do(t, http.MethodPost, "/auth/signin", form, h); a.status != http.StatusSeeOther {
			t.Errorf("POST with %v: %d %s, want 303", h, a.status, a.body)
		}
	}
}

// next can only lead to a path of this site: no open redirect.
func TestNextIsAPathOnThisSite(t *testing.T) {
	s := start(t, testConfig(t))
	for _, next := range []string{
		"https://evil.example/", "//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example",
		"javascript:alert(1)", "evil.example", "/\t/evil.example", "/a\nb", "http:/evil.example", "/" + strings.Repeat("a", 2100),
	} {
		a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {"ana"}, "next": {next}}, nil)
		if a.status != http.StatusBadRequest || errorCode(t, a) != codeInvalidNext || a.header.Get("Location") != "" {
			t.Errorf("next %q: %d Location %q %s, want 400 invalid_next", next, a.status, a.header.Get("Location"), a.body)
		}
		if sessionCookie(t, a, "chat_session") != nil {
			t.Errorf("next %q: signed in anyway", next)
		}
		// The form drops it.
		a = s.do(t, http.MethodGet, "/auth/signin?next="+url.QueryEscape(next), nil, nil)
		if a.status != http.StatusOK || strings.Contains(a.body, `name="next"`) {
			t.Errorf("the form keeps next %q: %d", next, a.status)
		}
	}
	for _, next := range []string{"/", "/?room=dev", "/rooms/dev#x", "/%2F%2Fevil.example"} {
		a := s.do(t, http.MethodPost, "/auth/signin", url.Values{"name": {"ana"}, "next": {next}}, nil)
		if a.status != http.StatusSeeOther || a.header.Get("Location") != next {
			t.Errorf("next %q: %d Location %q", next, a.status, a.header.Get("Location"))
		}
	}
}

func TestSignInForm(t *testing.T) {
	s := start(t, testConfig(t))
	a := s.do(t, http.MethodGet, "/auth/signin?next="+url.QueryEscape("/?room=dev&x=\"><script>"), nil, nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Fatalf("form: %d %s", a.status, a.header.Get("Content-Type"))
	}
	for _, want := range []string{`<form method="post" action="/auth/signin">`, `name="name"`, `demo sign-in`,
		`name="next" value="/?room=dev&amp;x=&#34;&gt;&lt;script&gt;"`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("form lacks %q:\n%s", want, a.body)
		}
	}
	if strings.Contains(strings.ToLower(a.body), "<script") {
		t.Errorf("form has a script:\n%s", a.body)
	}
	csp := a.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// The one style block is allowed by its hash.
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(a.body)
	if style == nil {
		t.Fatal("no style block")
	}
	sum := sha256.Sum256([]byte(style[1]))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not allow the page's style", csp)
	}
	if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", a.header)
	}
	// Signed in: the form says as whom and offers to sign out.
	a = s.do(t, http.MethodGet, "/auth/signin", nil, withCookie(s.signIn(t, "<b>ana</b>")))
	if !strings.Contains(a.body, "signed in as <strong>&lt;b&gt;ana&lt;/b&gt;</strong>") || !strings.Contains(a.body, `action="/auth/signout"`) {
		t.Errorf("signed-in form:\n%s", a.body)
	}
}

func TestSignOut(t *testing.T) {
	s := start(t, testConfig(t))
	c := s.signIn(t, "ana")
	a := s.do(t, http.MethodPost, "/auth/signout", nil, withCookie(c))
	if cleared := sessionCookie(t, a, "chat_session"); a.status != http.StatusNoContent || cleared == nil || cleared.MaxAge >= 0 {
		t.Fatalf("sign out: %d, cookie %+v", a.status, cleared)
	}
	a = s.do(t, http.MethodPost, "/auth/signout", nil, http.Header{"Accept": {"text/html"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/auth/signin" {
		t.Errorf("a browser's sign out: %d Location %q", a.status, a.header.Get("Location"))
	}
}

func TestOtherRequests(t *testing.T) {
	s := start(t, testConfig(t))
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/", http.StatusNotFound, codeNotFound},
		{http.MethodGet, "/auth/nope", http.StatusNotFound, codeNotFound},
		{http.MethodDelete, "/auth/signin", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{http.MethodPost, "/auth/token", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{http.MethodGet, "/auth/signout", http.StatusMethodNotAllowed, codeMethodNotAllowed},
	} {
		a := s.do(t, tc.method, tc.path, nil, nil)
		if a.status != tc.status || errorCode(t, a) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, a.status, a.body, tc.status, tc.code)
		}
	}
	if a := s.do(t, http.MethodGet, "/healthz", nil, nil); a.status != http.StatusOK {
		t.Errorf("healthz: %d", a.status)
	}
}

// Whatever a cookie holds, checking it never panics and passes only a
// valid name; a session made of a valid name reads back as that name.
func FuzzParseSession(f *testing.F) {
	s := sessions{key: []byte("0123456789abcdef0123456789abcdef")}
	now := time.Unix(1e9, 0)
	f.Add(s.make("ana", now.Add(time.Hour)))
	f.Add("..")
	f.Add("YW5h.1.x")
	f.Fuzz(func(t *testing.T, v string) {
		if name, err := s.parse(v, now); err == nil && validateName(name) != nil {
			t.Fatalf("accepted the invalid name %q", name)
		}
		if validateName(v) == nil {
			if name, err := s.parse(s.make(v, now.Add(time.Hour)), now); err != nil || name != v {
				t.Fatalf("session of %q reads back as %q, %v", v, name, err)
			}
		}
	})
}

func TestKeysAreChecked(t *testing.T) {
	secret := randomKey(t)
	for _, tc := range []struct {
		name string
		set  func(*config)
		want string
	}{
		{"short session key", func(c *config) { c.SessionKeyFile = writeFile(t, "k", "short") }, "at least 32"},
		{"missing session key", func(c *config) { c.SessionKeyFile = filepath.Join(t.TempDir(), "none") }, "session key"},
		{"short token secret", func(c *config) { c.SecretFile = writeFile(t, "s", "short") }, "HS256 needs at least 32"},
		{"session key is the token secret", func(c *config) {
			c.SecretFile, c.SessionKeyFile = writeFile(t, "s", secret), writeFile(t, "k", secret+"\n")
		}, "must not be the token secret"},
		{"not a private key", func(c *config) { c.SecretFile, c.PrivateKeyFile = "", writeFile(t, "p", "nope") }, "no PEM block"},
	} {
		c := testConfig(t)
		tc.set(&c)
		if _, err := newService(c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
