package browsertest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

const tokenCookie = "chat_token"

// signer mints HS256 tokens with a secret a gateway reads from its file.
type signer struct {
	secret []byte
	file   string
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	s := &signer{secret: []byte(hex.EncodeToString(b)), file: filepath.Join(t.TempDir(), "jwt.secret")}
	if err := os.WriteFile(s.file, s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// token signs a token for sub, valid for ttl, whose chat claim grants
// rooms: {"publish": […], "subscribe": […]}.
func (s *signer) token(sub string, grants map[string][]string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "chat": grants}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
}

// tokenService stands in for the application's sign-in service: a GET
// answers {"token": …} for ana, valid for ttl, or, with fail, 500. It
// answers the gateway's pages with CORS (credentials included), as a
// service on another origin must.
type tokenService struct {
	t      *testing.T
	signer *signer
	ttl    time.Duration
	fail   bool
	// session, when set, is the session cookie a request must carry (the
	// browser's credentials); a visit to /login sets it.
	session string
	url     string                 // where it runs
	origin  atomic.Pointer[string] // the page's, set once it runs

	mu    sync.Mutex
	asked []time.Time // when each request came
}

func (s *tokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o := s.origin.Load(); o != nil && r.Header.Get("Origin") == *o {
		w.Header().Set("Access-Control-Allow-Origin", *o)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Add("Vary", "Origin")
	}
	if r.URL.Path == "/login" {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: s.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		fmt.Fprintln(w, "signed in")
		return
	}
	s.mu.Lock()
	s.asked = append(s.asked, time.Now())
	s.mu.Unlock()
	if c, err := r.Cookie("session"); s.session != "" && (err != nil || c.Value != s.session) {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	if s.fail {
		http.Error(w, "sign-in is down", http.StatusInternalServerError)
		return
	}
	tok, err := s.signer.token("ana", map[string][]string{"publish": {"lobby"}, "subscribe": {"*"}}, s.ttl)
	if err != nil {
		s.t.Errorf("sign a token: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"token": tok})
}

// requests returns when each token request came.
func (s *tokenService) requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.asked...)
}

// startSignIn starts the token service on a loopback port of its own, a
// gateway requiring tokens (the page keeps its token in the cookie
// tokenCookie for its event stream), and a front server that passes
// everything to the gateway, as a reverse proxy would; it returns the
// front's URL, where the page is opened.
//
// With crossOrigin false the front also serves the token service at
// /auth/token, so the page gets its tokens from its own origin. With
// crossOrigin true the page gets them from the token service's origin,
// with CORS; the gateway's page allows connections to its own origin only
// (Content-Security-Policy: default-src 'self'), so the front adds the
// token service's origin to connect-src, as the gateway would have to for
// such a token URL.
func startSignIn(t *testing.T, svc *tokenService, crossOrigin bool) (page string, gw *node) {
	t.Helper()
	ts := httptest.NewServer(svc)
	t.Cleanup(ts.Close)
	svc.url = ts.URL
	tokenURL := "/auth/token"
	if crossOrigin {
		tokenURL = ts.URL + "/token"
	}
	gw = startNodes(t, 1, func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{SecretFile: svc.signer.file, Cookie: tokenCookie}
		o.AuthTokenURL = tokenURL
	})[0]
	target, err := url.Parse(gw.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	if crossOrigin {
		proxy.ModifyResponse = func(r *http.Response) error {
			if csp := r.Header.Get("Content-Security-Policy"); csp != "" {
				r.Header.Set("Content-Security-Policy", csp+"; connect-src 'self' "+ts.URL)
			}
			return nil
		}
	} else {
		mux.Handle(tokenURL, svc)
	}
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	svc.origin.Store(&front.URL)
	return front.URL, gw
}

// publishAs publishes text to room over the HTTP API with a token.
func publishAs(t *testing.T, base, room, tok, text string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"text": text})
	req, err := http.NewRequest(http.MethodPost, base+"/rooms/"+room+"/messages", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish %q: %d", text, resp.StatusCode)
	}
}

// metric returns the sum of a counter's or gauge's series (0 if it has
// none yet) on the gateway's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		series, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("metric %s: %v", series, err)
		}
		sum += f
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// openSignedIn opens the page at url and waits until it is connected and
// shows who the token says the user is, without asking a name.
func openSignedIn(t *testing.T, tab context.Context, url, user string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.Navigate(url))
	waitState(t, tab, "connected")
	browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](
		`(u) => document.getElementById("nick-current").textContent === u`, chromedp.WithPollingArgs(user)))
	got := browsertest.Within(t, tab, wait, chromedp.Evaluate[map[string]any](`({
		dialog: document.getElementById("nick-dialog").open,
		change: !document.getElementById("nick-change").hidden,
		problem: document.getElementById("auth-status").textContent,
	})`))
	if got["dialog"] != false || got["change"] != false {
		t.Errorf("the page offers to choose a name though the token says who the user is: %v", got)
	}
	if got["problem"] != "" {
		t.Errorf("the page shows a sign-in problem: %v", got["problem"])
	}
}

// A token that expires while the page listens: the stream gets
// auth-expiring, the page fetches a fresh token, the gateway ends the
// stream at expiry, and the browser resumes it with the fresh token from
// its Last-Event-ID. Every message published meanwhile shows, once and
// in order.
func TestPageRefreshesItsTokenAndMissesNothing(t *testing.T) {
	const (
		// A token lives 10 s and its stream is warned at half of that: the
		// fresh token then outlives the gateway's 2 s reconnect delay.
		ttl   = 10 * time.Second
		count = 20
		every = 700 * time.Millisecond // 20 messages over 14 s: at least one expiry among them
	)
	svc := &tokenService{t: t, signer: newSigner(t), ttl: ttl}
	page, gw := startSignIn(t, svc, false)
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "refresh")
	openSignedIn(t, tab, page, "ana")
	send(t, tab, "hello, ana here")
	waitText(t, tab, "hello, ana here")

	bo, err := svc.signer.token("bo", map[string][]string{"publish": {"lobby"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hello, ana here"}
	for i := range count {
		text := fmt.Sprintf("message %02d", i)
		want = append(want, text)
		publishAs(t, gw.URL(), "lobby", bo, text)
		time.Sleep(every) // the pace of the scenario, not a wait for the page
	}
	waitText(t, tab, want[len(want)-1])
	if got := texts(t, tab); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the page shows %q\nwant %q", got, want)
	}
	served := len(svc.requests())
	resumed := metric(t, gw.URL(), "chat_replays_total")
	refused := metric(t, gw.URL(), "chat_auth_refused_total")
	t.Logf("%d tokens served, %v streams resumed, %v requests refused", served, resumed, refused)
	if served < 2 {
		t.Errorf("the token service served %d tokens: the page never refreshed its token", served)
	}
	if resumed < 1 {
		t.Error("no stream resumed from a cursor: the stream never ended at its token's expiry")
	}
	// The fresh token came before the old one expired: the browser's own
	// reconnect carried it, and no request went with an expired token.
	if refused != 0 {
		t.Errorf("%v requests refused: the page did not renew its token in time", refused)
	}
	waitState(t, tab, "connected")
	if msg := browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.getElementById("auth-status").textContent`)); msg != "" {
		t.Errorf("the page shows a sign-in problem: %q", msg)
	}
}

// A sign-in service that fails: the page says the user is not signed in
// and why, does not connect, and asks again less and less often.
func TestPageSaysWhenItCannotSignIn(t *testing.T) {
	svc := &tokenService{t: t, signer: newSigner(t), ttl: time.Hour, fail: true}
	page, _ := startSignIn(t, svc, false)
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "no-sign-in")
	browsertest.Within(t, tab, wait, chromedp.Navigate(page))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](
		`document.getElementById("auth-status").textContent.startsWith("You are not signed in")`))
	msg := browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.getElementById("auth-status").textContent`))
	if !strings.Contains(msg, "HTTP 500") {
		t.Errorf("the message does not say what failed: %q", msg)
	}
	// Three attempts, a second and then two apart at least (a loaded
	// machine may make them later, never sooner).
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if n := len(svc.requests()); n < 3 {
			return fmt.Errorf("%d token requests", n)
		}
		return nil
	})
	at := svc.requests()
	first, second := at[1].Sub(at[0]), at[2].Sub(at[1])
	t.Logf("token requests %s and %s apart", first.Round(time.Millisecond), second.Round(time.Millisecond))
	if first < 950*time.Millisecond || second < 1950*time.Millisecond {
		t.Errorf("token requests %s and %s apart: want a back-off of 1 s, then 2 s", first, second)
	}
	state := browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.getElementById("status").dataset.state`))
	if state == "connected" {
		t.Error("the page is connected without a token")
	}
}

// A sign-in service on another origin: the page asks it with the
// browser's credentials (its own session cookie) and CORS, then sends with
// the token, and shows the gateway's refusal of what the token does not
// grant.
func TestPageSignsInAtAnotherOrigin(t *testing.T) {
	svc := &tokenService{t: t, signer: newSigner(t), ttl: time.Hour, session: "ana-session"}
	page, _ := startSignIn(t, svc, true)
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "cross-origin")
	browsertest.Within(t, tab, wait, chromedp.Navigate(svc.url+"/login"))
	openSignedIn(t, tab, page, "ana")
	send(t, tab, "signed in elsewhere")
	waitText(t, tab, "signed in elsewhere")

	// ana may read every room but publish only to lobby.
	browsertest.Within(t, tab, wait, chromedp.Navigate(page+"/?room=dev"))
	waitState(t, tab, "connected")
	send(t, tab, "not granted")
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](
		`document.getElementById("error").textContent === "Your token does not grant publishing to dev."`))
}
