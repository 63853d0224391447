package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// TestSkewedClocksDoNotReorder plays three gateways on one bus whose
// clocks disagree by hours (one behind, one right, one ahead) and
// publishes through them in turn: listeners on each, the history and a
// listener resuming across gateways all see the order the messages were
// stored in, and only the "ts" each gateway stamped shows the skew. Order
// comes from the history stream's sequence, never from a clock.
func TestSkewedClocksDoNotReorder(t *testing.T) {
	node := nodetest.StartNode(t)
	skews := []time.Duration{-3 * time.Hour, 0, 90 * time.Minute}
	var gws []*gateway.Gateway
	for i, skew := range skews {
		gws = append(gws, startGateway(t, fmt.Sprintf("gw-skew-%d", i), node.ClientURL(), func(o *gateway.Options) {
			o.Clock = func() time.Time { return time.Now().Add(skew) }
		}))
	}
	var listeners []*ssetest.Stream
	for _, g := range gws {
		listeners = append(listeners, ssetest.Open(t, g.URL()+"/rooms/skew/events", nil))
	}
	const n = 30
	var stored []ssetest.Message
	for i := range n {
		g := gws[i%len(gws)]
		before := time.Now()
		m := postJSON(t, g.URL(), "skew", "ana", fmt.Sprintf("m%d", i))
		// The stamp is the publishing gateway's clock, skew and all.
		if off := m.TS.Sub(before); off < skews[i%len(gws)]-time.Minute || off > skews[i%len(gws)]+time.Minute {
			t.Fatalf("message %d stamped %s, %s from the test's clock; the gateway's skew is %s", i, m.TS, off, skews[i%len(gws)])
		}
		stored = append(stored, m)
	}
	for i := 1; i < n; i++ {
		if stored[i].Seq <= stored[i-1].Seq {
			t.Fatalf("message %d stored at %d, after %d", i, stored[i].Seq, stored[i-1].Seq)
		}
	}
	// Every listener: every message, in the order stored, whatever its
	// stamp says (they go back and forth by hours).
	var cursorAt10 string
	for li, s := range listeners {
		for i := range n {
			m, ev, err := s.NextMessage(wait)
			if err != nil || m.Seq != stored[i].Seq || m.Text != stored[i].Text {
				t.Fatalf("listener on the gateway skewed %s, message %d: got seq %d %q (%v), want seq %d %q", skews[li], i, m.Seq, m.Text, err, stored[i].Seq, stored[i].Text)
			}
			if li == 0 && i == 9 {
				cursorAt10 = ev.ID
			}
		}
	}
	// The history pages in the same order, on the gateway ahead of time.
	r := do(t, http.MethodGet, gws[2].URL()+"/rooms/skew/messages?limit=500", "", nil, nil)
	var page struct{ Messages []ssetest.Message }
	if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil || len(page.Messages) != n {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	for i, m := range page.Messages {
		if m.Seq != stored[i].Seq {
			t.Fatalf("history position %d: seq %d, want %d", i, m.Seq, stored[i].Seq)
		}
	}
	// A cursor from the gateway behind resumes on the gateway ahead: the
	// rest, in order, nothing twice.
	resumed := ssetest.Open(t, gws[2].URL()+"/rooms/skew/events", http.Header{"Last-Event-ID": {cursorAt10}})
	for i := 10; i < n; i++ {
		m, _, err := resumed.NextMessage(wait)
		if err != nil || m.Seq != stored[i].Seq {
			t.Fatalf("resumed on the gateway ahead, message %d: got seq %d (%v), want %d", i, m.Seq, err, stored[i].Seq)
		}
	}
}
