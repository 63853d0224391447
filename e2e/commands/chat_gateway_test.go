// Package commands_test runs the built commands as processes: their flags,
// what they serve, and how they stop on SIGTERM.
package commands_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/nats-io/nats.go"
)

const gatewayPkg = "github.com/chatscalable/chatscalable/gateway/cmd/chat-gateway"

var (
	httpLine = regexp.MustCompile(`msg="gateway started".* http=(\S+)`)
	natsLine = regexp.MustCompile(`msg="nats clients welcome" url=(\S+)`)
)

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestGatewayServesAndStopsCleanly runs the built chat-gateway as a process:
// it serves the page and the API, streams what is published (over HTTP and
// over NATS), and ends within 5 s of SIGTERM with exit status 0.
func TestGatewayServesAndStopsCleanly(t *testing.T) {
	bin := proctest.Build(t, gatewayPkg)
	p := proctest.Start(t, "chat-gateway", bin,
		"--http-addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:0",
		"--data-dir", t.TempDir(),
		"--node-name", "gw-proc")
	natsURL := p.WaitLog(t, natsLine, 20*time.Second)[1]
	base := "http://" + p.WaitLog(t, httpLine, 20*time.Second)[1]

	status, hdr, body := get(t, base+"/")
	if status != 200 || !strings.Contains(body, "gw-proc") || hdr.Get("X-Chat-Node") != "gw-proc" {
		t.Fatalf("GET /: %d, node header %q", status, hdr.Get("X-Chat-Node"))
	}
	status, _, body = get(t, base+"/node")
	var node struct{ Node, Nats string }
	if err := json.Unmarshal([]byte(body), &node); status != 200 || err != nil || node.Node != "gw-proc" || node.Nats != "embedded" {
		t.Fatalf("GET /node: %d %s", status, body)
	}
	if status, _, body := get(t, base+"/readyz"); status != 200 {
		t.Fatalf("GET /readyz: %d %s", status, body)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect to the embedded node at %s: %v", natsURL, err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("chat.room.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	s := ssetest.Open(t, base+"/listen?room=lobby", nil)
	form := url.Values{"message": {"hello, process"}, "user": {"ana"}}
	resp, err := http.Post(base+"/publish", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m, _, err := s.NextMessage(10 * time.Second)
	if err != nil || m.Text != "hello, process" || m.User != "ana" || m.Node != "gw-proc" {
		t.Fatalf("streamed %+v, %v", m, err)
	}
	if msg, err := sub.NextMsg(10 * time.Second); err != nil || !strings.Contains(string(msg.Data), "hello, process") {
		t.Fatalf("nats subscriber: %v", err)
	}
	if err := nc.Publish("chat.room.lobby", []byte("from the nats side")); err != nil {
		t.Fatal(err)
	}
	if m, _, err := s.NextMessage(10 * time.Second); err != nil || m.Text != "from the nats side" || m.User != "nats" {
		t.Fatalf("streamed %+v, %v", m, err)
	}

	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := p.Wait(5 * time.Second)
	if !exited {
		t.Fatalf("still running 5 s after SIGTERM")
	}
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if ev, err := s.Next(5 * time.Second); err != nil || ev.Retry == "" {
		t.Errorf("the stream did not end with a retry hint: %+v, %v", ev, err)
	}
}

func TestGatewayHelpAndBadFlags(t *testing.T) {
	bin := proctest.Build(t, gatewayPkg)
	p := proctest.Start(t, "help", bin, "--help")
	if exited, err := p.Wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("--help: exited %v, %v", exited, err)
	}
	for _, want := range []string{"--http-addr", "CHAT_HTTP_ADDR", "--nats-url", "--max-message-bytes"} {
		if !strings.Contains(strings.ReplaceAll(p.Log(), "  -", "  --"), want) {
			t.Errorf("--help does not mention %s:\n%s", want, p.Log())
		}
	}
	p = proctest.Start(t, "bad", bin, "--max-message-bytes", "0")
	exited, err := p.Wait(10 * time.Second)
	if !exited || err == nil || !strings.Contains(p.Log(), "max-message-bytes") {
		t.Fatalf("bad flag: exited %v, %v, log %s", exited, err, p.Log())
	}
}
