package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// waitClosedByServer reads (and discards) until the server closes the
// connection, and fails if that takes longer than within.
func waitClosedByServer(t *testing.T, conn net.Conn, within time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the gateway did not close the connection within %s: %v", within, err)
	}
}

// A request that announces a body and never sends it, on a route that
// does not read bodies, is let go within the body timeout: it holds no
// goroutine and no socket beyond it.
func TestAnnouncedBodyThatNeverComesIsDropped(t *testing.T) {
	g := startGateway(t, "gw-body", "", func(o *gateway.Options) { o.BodyTimeout = 500 * time.Millisecond })
	conn, err := net.Dial("tcp", g.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "GET /node HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	waitClosedByServer(t, conn, 5*time.Second-time.Since(start))
	t.Logf("answered and closed %s after the request", time.Since(start).Round(time.Millisecond))
}

// A listen request never has a body; one that says it has is refused.
func TestListenWithABodyIsRefused(t *testing.T) {
	g := startGateway(t, "gw-listen-body", "")
	r := do(t, http.MethodGet, g.URL()+"/rooms/lobby/events", "text/plain", strings.NewReader("hello"), nil)
	if r.status != http.StatusBadRequest || r.errorCode() != "bad_request" {
		t.Fatalf("listen with a body: %d %s", r.status, r.body)
	}
}

// Methods a client makes up do not become metric series.
func TestMadeUpMethodsAddNoMetricSeries(t *testing.T) {
	g := startGateway(t, "gw-methods", "")
	client := &http.Client{}
	for i := range 1000 {
		req, err := http.NewRequest(fmt.Sprintf("BOGUS%d", i), g.URL()+"/node", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("BOGUS%d: %d", i, resp.StatusCode)
		}
	}
	body := string(do(t, http.MethodGet, g.URL()+"/metrics", "", nil, nil).body)
	if strings.Contains(body, "BOGUS") {
		t.Fatal("a made-up method is a metric label")
	}
	if v := metricValue(t, g.URL(), `chat_http_requests_total{code="405",method="other",route="unmatched"}`); v != 1000 {
		t.Fatalf("made-up methods counted as %v, want 1000 under method=\"other\"", v)
	}
	series := regexp.MustCompile(`(?m)^chat_http_requests_total\{`).FindAllString(body, -1)
	if len(series) > 10 {
		t.Fatalf("%d request series after one route was asked with 1000 methods", len(series))
	}
}

// Beyond --max-conns a listener is refused with 503, Retry-After and a
// JSON error, counted; health probes are still answered, and a place
// that frees up is taken again.
func TestConnectionsBeyondTheLimitAreRefused(t *testing.T) {
	g := startGateway(t, "gw-full", "", func(o *gateway.Options) { o.MaxConns = 3 })
	var open []*ssetest.Stream
	for range 3 {
		open = append(open, ssetest.Open(t, g.URL()+"/rooms/full/events", nil))
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(g.URL() + "/rooms/full/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"code":"too_many_connections"`) {
		t.Fatalf("a 4th listener got %d (Retry-After %q): %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, err = client.Get(g.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz on a full gateway: %d", resp.StatusCode)
	}
	open[0].Close()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		resp, err := client.Get(g.URL() + "/node")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/node: %d", resp.StatusCode)
		}
		return nil
	})
	resp, err = client.Get(g.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^chat_http_connections_refused_total\{reason="max_conns"\} [1-9]`).Match(metrics) {
		t.Fatalf("refusals are not counted:\n%s", metrics)
	}
}
