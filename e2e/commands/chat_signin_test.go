package commands_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

const signinPkg = "github.com/chatscalable/chatscalable/gateway/cmd/chat-signin"

var signinLine = regexp.MustCompile(`msg="chat-signin started" http=(\S+)`)

// TestSignInServiceGivesTokensTheGatewayAccepts runs the built chat-signin
// and a chat-gateway with --auth jwt on the same secret, as processes: a
// client signs in over HTTP with the form, gets a token from the token
// endpoint with its session cookie, and publishes and listens with it as
// the name it chose; the session cookie itself is no token. chat-signin
// answers its healthcheck and stops cleanly on SIGTERM.
func TestSignInServiceGivesTokensTheGatewayAccepts(t *testing.T) {
	gwBin := proctest.Build(t, gatewayPkg)
	signinBin := proctest.Build(t, signinPkg)
	dir := t.TempDir()
	secret, sessionKey := filepath.Join(dir, "jwt.secret"), filepath.Join(dir, "session.key")
	for f, v := range map[string]string{secret: "a-test-secret-of-at-least-32-bytes!!\n", sessionKey: "another-key-for-sessions-32-bytes-long\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := proctest.Start(t, "chat-gateway", gwBin,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "off", "--data-dir", t.TempDir(), "--node-name", "gw-signin",
		"--auth", "jwt", "--auth-jwt-secret-file", secret, "--auth-cookie", "chat_token")
	// Flags from the environment, as in the containers.
	signin := proctest.StartEnv(t, "chat-signin", []string{
		"CHAT_SIGNIN_SECRET_FILE=" + secret, "CHAT_SIGNIN_SESSION_KEY_FILE=" + sessionKey,
		"CHAT_SIGNIN_PUBLISH=lobby", "CHAT_SIGNIN_SUBSCRIBE=*",
	}, signinBin, "--http-addr", "127.0.0.1:0")
	gwBase := "http://" + gw.WaitLog(t, httpLine, 20*time.Second)[1]
	signinBase := "http://" + signin.WaitLog(t, signinLine, 20*time.Second)[1]

	// A browser-like client: it keeps cookies and shows redirects.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	getToken := func() (int, string) {
		t.Helper()
		resp, err := client.Get(signinBase + "/auth/token")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("token answer %d is not JSON: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, body.Token
	}
	if status, _ := getToken(); status != http.StatusUnauthorized {
		t.Fatalf("token before signing in: %d, want 401", status)
	}
	resp, err := client.PostForm(signinBase+"/auth/signin", url.Values{"name": {"Zoë"}, "next": {"/?room=lobby"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?room=lobby" {
		t.Fatalf("sign in: %d Location %q, want 303 to /?room=lobby", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, token := getToken()
	if status != http.StatusOK || token == "" {
		t.Fatalf("token after signing in: %d %q", status, token)
	}

	// Listening with the token (in the cookie the gateway reads, as the
	// page's EventSource does), then publishing with it as a bearer.
	stream := ssetest.Open(t, gwBase+"/rooms/lobby/events", http.Header{"Cookie": {"chat_token=" + token}})
	post := func(tok, room, body string) int { t.Helper(); return postJSON(t, gwBase, room, tok, body) }
	if status := post(token, "lobby", `{"text":"signed in by name"}`); status != http.StatusCreated {
		t.Fatalf("publish with the token: %d, want 201", status)
	}
	m, _, err := stream.NextMessage(10 * time.Second)
	if err != nil || m.Text != "signed in by name" || m.User != "Zoë" {
		t.Fatalf("listener got %+v, %v; want the message from Zoë", m, err)
	}
	// The grants are chat-signin's: publishing to lobby only.
	if status := post(token, "dev", `{"text":"not granted"}`); status != http.StatusForbidden {
		t.Errorf("publish to dev with a token granting lobby: %d, want 403", status)
	}
	// Nobody posts as someone else, and nothing passes without a token.
	if status := post(token, "lobby", `{"user":"ana","text":"as ana"}`); status == http.StatusCreated {
		t.Error("the token of Zoë published as ana")
	}
	if status := post("", "lobby", `{"text":"anonymous"}`); status != http.StatusUnauthorized {
		t.Errorf("publish without a token: %d, want 401", status)
	}
	// The session cookie is not a token the gateway accepts.
	var session string
	for _, c := range jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(signinBase, "http://"), Path: "/auth/"}) {
		if c.Name == "chat_session" {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no chat_session cookie in the client's jar")
	}
	if status := post(session, "lobby", `{"text":"with the session"}`); status != http.StatusUnauthorized {
		t.Errorf("publish with the session cookie as a token: %d, want 401", status)
	}
	// The token says who, for the page.
	parts := strings.Split(token, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !strings.Contains(string(claims), `"sub":"Zoë"`) || !strings.Contains(string(claims), `"publish":["lobby"]`) {
		t.Errorf("token claims %s", claims)
	}

	// Signed out: no more tokens.
	req, _ := http.NewRequest(http.MethodPost, signinBase+"/auth/signout", nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign out: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if status, _ := getToken(); status != http.StatusUnauthorized {
		t.Errorf("token after signing out: %d, want 401", status)
	}

	// The container's healthcheck, and a clean stop.
	if out, err := exec.Command(signinBin, "healthcheck", "--healthcheck-url", signinBase+"/healthz").CombinedOutput(); err != nil {
		t.Errorf("chat-signin healthcheck: %v %s", err, out)
	}
	if err := signin.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, err := signin.Wait(5 * time.Second); !exited || err != nil {
		t.Fatalf("chat-signin after SIGTERM: exited %v, %v", exited, err)
	}
	if out, err := exec.Command(signinBin, "healthcheck", "--healthcheck-url", signinBase+"/healthz").CombinedOutput(); err == nil {
		t.Errorf("healthcheck of a stopped chat-signin passed: %s", out)
	}
}

// Without its keys chat-signin says what is missing and exits 2.
func TestSignInServiceExplainsBadConfiguration(t *testing.T) {
	bin := proctest.Build(t, signinPkg)
	cmd := exec.Command(bin, "--session-key-file", filepath.Join(t.TempDir(), "missing"), "--secret-file", filepath.Join(t.TempDir(), "missing"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "chat-signin: token key") {
		t.Errorf("missing key files: %v, %q; want exit 2 naming the token key", err, stderr.String())
	}
	cmd = exec.Command(bin)
	stderr.Reset()
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "--session-key-file is required") {
		t.Errorf("no flags: %v, %q", err, stderr.String())
	}
}
