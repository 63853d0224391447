package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// rawStream is an SSE request on a bare TCP connection: no goroutine on
// the client side, and every byte of the response visible.
type rawStream struct {
	conn net.Conn
	r    *bufio.Reader
}

func openRaw(t *testing.T, base, path string) *rawStream {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: chat\r\nAccept: text/event-stream\r\n\r\n", path)
	s := &rawStream{conn: conn, r: bufio.NewReader(conn)}
	return s
}

// line returns the next line of the response, without its line end.
func (s *rawStream) line(t *testing.T) string {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(wait))
	l, err := s.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines until one starts with prefix and returns it.
func (s *rawStream) until(t *testing.T, prefix string) string {
	t.Helper()
	for {
		if l := s.line(t); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// Both SSE writers keep the same contract: headers, heartbeats, live
// messages, resuming, and noticing a client that went away.
func TestBothSSEWritersServeTheSameStream(t *testing.T) {
	for _, writer := range []gateway.SSEWriter{gateway.SSEWriterLoop, gateway.SSEWriterHandler} {
		t.Run(string(writer), func(t *testing.T) {
			g := startGateway(t, "gw-"+string(writer), "", func(o *gateway.Options) {
				o.SSEWriter = writer
				o.Heartbeat = 200 * time.Millisecond
			})
			raw := openRaw(t, g.URL(), "/rooms/w/events")
			if status := raw.line(t); !strings.HasPrefix(status, "HTTP/1.1 200") {
				t.Fatalf("status line %q", status)
			}
			header := http.Header{}
			for l := raw.line(t); l != ""; l = raw.line(t) {
				k, v, _ := strings.Cut(l, ": ")
				header.Add(k, v)
			}
			for k, want := range map[string]string{
				"Content-Type":           "text/event-stream",
				"Cache-Control":          "no-cache",
				"X-Accel-Buffering":      "no",
				"X-Chat-Node":            "gw-" + string(writer),
				"X-Content-Type-Options": "nosniff",
			} {
				if got := header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			raw.until(t, "retry: ")
			raw.until(t, ": heartbeat")

			s := ssetest.Open(t, g.URL()+"/rooms/w/events", nil)
			first := postJSON(t, g.URL(), "w", "ana", "first")
			expectMessage(t, s, "ana", "first")
			if l := raw.until(t, "id: "); l != "id: "+first.Cursor {
				t.Fatalf("raw stream got %q, want the first message's cursor", l)
			}
			resumed := ssetest.Open(t, g.URL()+"/rooms/w/events", http.Header{"Last-Event-ID": {first.Cursor}})
			postJSON(t, g.URL(), "w", "ana", "second")
			expectMessage(t, resumed, "ana", "second")
			expectMessage(t, s, "ana", "second")

			raw.conn.Close()
			s.Close()
			resumed.Close()
			nodetest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if n := g.Clients(); n != 0 {
					return fmt.Errorf("%d listeners still registered after their clients left", n)
				}
				return nil
			})
		})
	}
}

// With the stream loop, an idle listener holds no goroutine of its own;
// with a handler per stream it holds two (handler and net/http's reader).
func TestStreamLoopHoldsNoGoroutinePerListener(t *testing.T) {
	const n = 200
	for _, tt := range []struct {
		writer   gateway.SSEWriter
		min, max int
	}{{gateway.SSEWriterLoop, 0, n / 10}, {gateway.SSEWriterHandler, 2 * n, 3 * n}} {
		t.Run(string(tt.writer), func(t *testing.T) {
			g := startGateway(t, "gw-"+string(tt.writer), "", func(o *gateway.Options) { o.SSEWriter = tt.writer })
			before := runtime.NumGoroutine()
			for range n {
				openRaw(t, g.URL(), "/rooms/many/events").until(t, "retry: ")
			}
			nodetest.CheckFor(t, wait, 10*time.Millisecond, func() error {
				if c := g.Clients(); c != n {
					return fmt.Errorf("%d listeners, want %d", c, n)
				}
				return nil
			})
			added := runtime.NumGoroutine() - before
			t.Logf("%d listeners added %d goroutines", n, added)
			if added < tt.min || added > tt.max {
				t.Fatalf("%d listeners added %d goroutines, want %d to %d", n, added, tt.min, tt.max)
			}
		})
	}
}
