package gateway_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// metricValue reads one sample (name with its labels, as exposed) from
// the gateway's /metrics.
func metricValue(t *testing.T, base, sample string) float64 {
	t.Helper()
	r := do(t, http.MethodGet, base+"/metrics", "", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(string(r.body))
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetricsMoveWhenMessagesFlow(t *testing.T) {
	g := startGateway(t, "gw-m", "")
	if v := metricValue(t, g.URL(), "chat_nats_connected"); v != 1 {
		t.Errorf("chat_nats_connected = %v", v)
	}

	s := ssetest.Open(t, g.URL()+"/rooms/metered/events", nil)
	var last ssetest.Message
	for i := range 3 {
		last = postJSON(t, g.URL(), "metered", "ana", fmt.Sprintf("m%d", i))
		expectMessage(t, s, "ana", fmt.Sprintf("m%d", i))
	}
	do(t, http.MethodPost, g.URL()+"/rooms/metered/messages", "application/json", strings.NewReader(`{"text":""}`), nil)
	want := map[string]float64{
		`chat_sse_connections`:                             1,
		`chat_rooms_active`:                                1,
		`chat_messages_published_total{result="stored"}`:   3,
		`chat_messages_published_total{result="rejected"}`: 1,
		`chat_messages_delivered_total`:                    3,
		`chat_publish_seconds_count`:                       3,
		`chat_delivery_latency_seconds_count`:              3,
		`chat_http_requests_total{code="201",method="POST",route="/rooms/{room}/messages"}`: 3,
		`chat_http_requests_total{code="400",method="POST",route="/rooms/{room}/messages"}`: 1,
	}
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		for sample, v := range want {
			if got := metricValue(t, g.URL(), sample); got != v {
				return fmt.Errorf("%s = %v, want %v", sample, got, v)
			}
		}
		return nil
	})

	// Every series is exposed (labelled ones once they have a sample).
	body := string(do(t, http.MethodGet, g.URL()+"/metrics", "", nil, nil).body)
	for _, name := range []string{
		"chat_sse_connections", "chat_rooms_active", "chat_messages_published_total",
		"chat_messages_delivered_total", "chat_publish_seconds", "chat_delivery_latency_seconds",
		"chat_replays_total", "chat_replayed_messages_total", "chat_slow_client_disconnects_total",
		"chat_feed_backfills_total", "chat_sse_coalesced_total", "chat_nats_connected", "chat_nats_reconnects_total",
		"chat_http_requests_total", "chat_http_request_seconds", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// A listener resuming from a cursor counts as a replay. The first
	// listener receiving m3 shows the gateway's live feed has it, so the
	// resuming one takes m3 from history, not from the live feed.
	postJSON(t, g.URL(), "metered", "ana", "m3")
	expectMessage(t, s, "ana", "m3")
	r := ssetest.Open(t, g.URL()+"/rooms/metered/events", lastEventID(last.Cursor))
	expectMessage(t, r, "ana", "m3")
	if v := metricValue(t, g.URL(), "chat_replays_total"); v != 1 {
		t.Errorf("chat_replays_total = %v, want 1", v)
	}
	if v := metricValue(t, g.URL(), "chat_replayed_messages_total"); v != 1 {
		t.Errorf("chat_replayed_messages_total = %v, want 1", v)
	}
	s.Close()
	r.Close()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if v := metricValue(t, g.URL(), "chat_sse_connections"); v != 0 {
			return fmt.Errorf("chat_sse_connections = %v after the listeners left", v)
		}
		return nil
	})
}
