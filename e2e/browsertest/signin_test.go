package browsertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chromedp/chromedp"
)

var signinStarted = regexp.MustCompile(`msg="chat-signin started" http=(\S+)`)

// A browser that has not signed in: the page says so and links to
// chat-signin; the user follows the link, gives a name on its form, and is
// back on the page, in the room it was in, signed in as that name, and
// chats. The built chat-signin runs as a process; a front server on one
// loopback origin sends /auth/ to it and everything else to a gateway with
// auth on, as Caddy does in the compose deployment.
func TestSignInWithChatSignIn(t *testing.T) {
	signer := newSigner(t)
	sessionKey := filepath.Join(t.TempDir(), "session.key")
	if err := os.WriteFile(sessionKey, []byte("a-session-key-of-at-least-32-bytes-for-the-test"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := proctest.Build(t, "github.com/chatscalable/chatscalable/gateway/cmd/chat-signin")
	svc := proctest.Start(t, "chat-signin", bin, "--http-addr", "127.0.0.1:0",
		"--secret-file", signer.file, "--session-key-file", sessionKey, "--publish", "lobby", "--subscribe", "*")
	signinURL, err := url.Parse("http://" + svc.WaitLog(t, signinStarted, wait)[1])
	if err != nil {
		t.Fatal(err)
	}
	gw := startNodes(t, 1, func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{SecretFile: signer.file, Cookie: tokenCookie}
		o.AuthTokenURL, o.AuthSignInURL = "/auth/token", "/auth/signin"
	})[0]
	gwURL, err := url.Parse(gw.URL())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", httputil.NewSingleHostReverseProxy(signinURL))
	mux.Handle("/", httputil.NewSingleHostReverseProxy(gwURL))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)

	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "chat-signin")
	browsertest.Within(t, tab, wait, chromedp.Navigate(front.URL+"/?room=lobby"))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("signin-link") !== null`))
	got := browsertest.Within(t, tab, wait, chromedp.Evaluate[map[string]string](`({
		problem: document.getElementById("auth-status").textContent,
		href: document.getElementById("signin-link").getAttribute("href"),
		state: document.getElementById("status").dataset.state,
	})`))
	if !strings.HasPrefix(got["problem"], "You are not signed in") || !strings.Contains(got["problem"], "HTTP 401") {
		t.Errorf("the page says %q", got["problem"])
	}
	if want := "/auth/signin?next=" + url.QueryEscape("/?room=lobby"); got["href"] != want {
		t.Errorf("the sign-in link goes to %q, want %q", got["href"], want)
	}
	if got["state"] == "connected" {
		t.Error("the page is connected without a token")
	}

	browsertest.Within(t, tab, wait, chromedp.Click(chromedp.CSS("#signin-link")))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS("#name")))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#name"), "Zoë Tester"))
	browsertest.Within(t, tab, wait, chromedp.Click(chromedp.CSS("#signin")))

	// Back where the user was, signed in as the name given.
	// (Asked again while the form's answer navigates the tab: a question
	// asked of the page that is going away fails.)
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(tab, 2*time.Second)
		defer cancel()
		at, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname + location.search : ""`))
		if err != nil || at != "/?room=lobby" {
			return fmt.Errorf("the tab is at %q (%v)", at, err)
		}
		return nil
	})
	waitState(t, tab, "connected")
	browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](
		`(u) => document.getElementById("nick-current").textContent === u`, chromedp.WithPollingArgs("Zoë Tester")))
	if msg := browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.getElementById("auth-status").textContent`)); msg != "" {
		t.Errorf("signed in, the page still says %q", msg)
	}
	send(t, tab, "hello, signed in by name")
	waitText(t, tab, "hello, signed in by name")

	// The gateway stored it as the signed-in user.
	reader, err := signer.token("reader", map[string][]string{"subscribe": {"*"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, gw.URL()+"/rooms/lobby/messages", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Messages []struct{ User, Text string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Messages) != 1 ||
		page.Messages[0].User != "Zoë Tester" || page.Messages[0].Text != "hello, signed in by name" {
		t.Fatalf("history: %+v, %v; want the message from Zoë Tester", page.Messages, err)
	}
}
