package commands_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// TestTokenCommandMintsWhatTheGatewayAccepts: the README's recipe. A
// gateway with --auth jwt and a secret file refuses a publish without a
// token, and stores one with a token that `chat-gateway token` signed
// with the same file, as the token's subject.
// postJSON posts body to room's messages on the gateway at base, with
// token as a bearer unless it is "", and returns the status.
func postJSON(t *testing.T, base, room, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/rooms/"+room+"/messages", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokenCommandMintsWhatTheGatewayAccepts(t *testing.T) {
	bin := proctest.Build(t, gatewayPkg)
	secret := filepath.Join(t.TempDir(), "jwt.secret")
	if err := os.WriteFile(secret, []byte("a-test-secret-of-at-least-32-bytes!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, "chat-gateway", bin,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "off", "--data-dir", t.TempDir(), "--node-name", "gw-jwt",
		"--auth", "jwt", "--auth-jwt-secret-file", secret)
	base := "http://" + p.WaitLog(t, httpLine, 20*time.Second)[1]
	if lines := p.Log(); strings.Contains(lines, "auth is off") {
		t.Fatalf("a gateway with --auth jwt says auth is off:\n%s", lines)
	}

	out, err := exec.Command(bin, "token", "--secret-file", secret, "--sub", "ana", "--publish", "lobby", "--subscribe", "*", "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("chat-gateway token: %v", err)
	}
	token := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^[\w-]+\.[\w-]+\.[\w-]+$`).MatchString(token) {
		t.Fatalf("chat-gateway token printed %q, not a JWT", out)
	}
	post := func(tok string) int { return postJSON(t, base, "lobby", tok, `{"text":"signed"}`) }
	if status := post(""); status != http.StatusUnauthorized {
		t.Fatalf("publish without a token: %d, want 401", status)
	}
	if status := post(token); status != http.StatusCreated {
		t.Fatalf("publish with the minted token: %d, want 201", status)
	}
	if status, _, body := get(t, base+"/rooms/lobby/messages"); status != http.StatusUnauthorized {
		t.Fatalf("history without a token: %d %s", status, body)
	}

	// Without a key, the command explains itself and fails.
	cmd := exec.Command(bin, "token", "--sub", "ana")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "secret file") {
		t.Fatalf("token without a key: %v, %q", err, stderr.String())
	}
}
