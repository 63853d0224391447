package dockertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

// The deployments run the gateways with --auth jwt and chat-signin under
// /auth/ on the same port. These helpers sign in as a browser does and
// check that nothing passes without a token.

// bearer is the header carrying token.
func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// signIn signs in as name through the entry point at base, as a browser
// does: it fills in chat-signin's form, then gets a token from the token
// endpoint with the session cookie. It returns the token.
func signIn(t *testing.T, base, name string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The form, through the entry point (chat-signin may still be starting).
	nodetest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		resp, err := client.Get(base + "/auth/signin?next=%2F%3Froom%3Dlobby")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `<form method="post" action="/auth/signin">`) {
			return fmt.Errorf("sign-in form: %d %.200s", resp.StatusCode, b)
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/signin", strings.NewReader(url.Values{"name": {name}, "next": {"/?room=lobby"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base) // as the browser sends it for the form
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?room=lobby" {
		t.Fatalf("sign in as %s: %d Location %q", name, resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "chat_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly {
		t.Fatalf("sign in as %s: no HttpOnly session cookie in %v", name, resp.Header.Values("Set-Cookie"))
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/auth/token", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		t.Fatalf("token for %s: %d %v", name, resp.StatusCode, err)
	}
	return body.Token
}

// checkAuthOn checks, through the entry point at base, that the page says
// the gateway requires tokens and where to sign in, and that publishing,
// listening and reading history without a token, or with a bad one, get
// 401, as does the token endpoint without a session.
func checkAuthOn(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string, h http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, page := do(http.MethodGet, "/", "", nil); status != http.StatusOK ||
		!strings.Contains(page, `data-auth="jwt"`) || !strings.Contains(page, `data-token-url="/auth/token"`) || !strings.Contains(page, `data-signin-url="/auth/signin"`) {
		t.Errorf("the page: %d, does not say auth is on with /auth/token and /auth/signin", status)
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/rooms/lobby/messages", `{"text":"no token"}`},
		{http.MethodGet, "/rooms/lobby/events", ""},
		{http.MethodGet, "/rooms/lobby/messages", ""},
	} {
		for _, h := range []http.Header{nil, bearer("not.a.token")} {
			if status, body := do(r.method, r.path, r.body, h); status != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
				t.Errorf("%s %s with %v: %d %s, want 401 unauthorized", r.method, r.path, h, status, body)
			}
		}
	}
	if status, body := do(http.MethodGet, "/auth/token", "", nil); status != http.StatusUnauthorized {
		t.Errorf("token without a session: %d %s, want 401", status, body)
	}
}
