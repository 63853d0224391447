package commands_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// A client that asks for a large history page and stops reading is
// dropped within the write timeout: the handler ends and the request is
// counted, instead of holding the page in memory for ever.
//
// It runs the built binary, not a gateway inside the race-instrumented
// test: the page must exceed what the kernel buffers on loopback (4 MB of
// send buffer), and reading and encoding 6 MB under the race detector on
// a loaded machine once took longer than the history read's 5 s bound.
func TestHistoryPageToAClientThatStopsReadingIsDropped(t *testing.T) {
	bin := proctest.Build(t, gatewayPkg)
	p := proctest.Start(t, "chat-gateway", bin,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "off", "--data-dir", t.TempDir(), "--node-name", "gw-wt",
		"--write-timeout", "1s", "--max-message-bytes", "60000")
	addr := p.WaitLog(t, httpLine, 20*time.Second)[1]
	base := "http://" + addr
	big := strings.Repeat("x", 59990)
	for i := range 100 { // a 6 MB page
		body := fmt.Sprintf(`{"user":"ana","text":"%d%s"}`, i, big)
		resp, err := http.Post(base+"/rooms/big/messages", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d: %d", i, resp.StatusCode)
		}
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /rooms/big/messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n")
	start := time.Now()
	ended := regexp.MustCompile(`(?m)^chat_http_requests_total\{code="(\d+)",method="GET",route="/rooms/\{room\}/messages"\} 1$`)
	deadline := start.Add(30 * time.Second)
	for {
		_, _, metrics := get(t, base+"/metrics")
		if m := ended.FindStringSubmatch(metrics); m != nil {
			if m[1] != "200" {
				t.Fatalf("the history request ended with status %s, not 200: the page was never written", m[1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the history request to a client that stopped reading has not ended within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("history request to a stalled client ended after %s", time.Since(start).Round(time.Millisecond))
}
