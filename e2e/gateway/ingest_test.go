package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// post publishes body to room from any goroutine: the answer's status,
// Idempotent-Replayed header and message.
func post(base, room, body, key string) (int, string, ssetest.Message, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/rooms/"+room+"/messages", strings.NewReader(body))
	if err != nil {
		return 0, "", ssetest.Message{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", ssetest.Message{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", ssetest.Message{}, err
	}
	var m ssetest.Message
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(b, &m); err != nil {
			return resp.StatusCode, "", m, fmt.Errorf("answer %s: %w", b, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), m, nil
}

// history returns a room's stored messages (up to 500), oldest first.
func history(t *testing.T, base, room string) []ssetest.Message {
	t.Helper()
	r := do(t, http.MethodGet, base+"/rooms/"+room+"/messages?limit=500", "", nil, nil)
	var page struct{ Messages []ssetest.Message }
	if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("history of %s: %d %s", room, r.status, r.body)
	}
	return page.Messages
}

// Concurrent publishes through the gateway are each stored once, at the
// sequence each was answered with.
func TestConcurrentPublishesStoredOnce(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	const clients, each = 20, 20
	answered := map[string]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				status, _, m, err := post(g.URL(), "busy", fmt.Sprintf(`{"user":"c%d","text":"%d"}`, c, i), "")
				if err != nil || status != http.StatusCreated || m.Seq == 0 {
					t.Errorf("publish c%d %d: %d %+v %v", c, i, status, m, err)
					return
				}
				mu.Lock()
				answered[m.ID] = m.Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stored := history(t, g.URL(), "busy")
	if len(stored) != clients*each {
		t.Fatalf("history holds %d messages, want %d", len(stored), clients*each)
	}
	for _, m := range stored {
		if seq, ok := answered[m.ID]; !ok || seq != m.Seq {
			t.Errorf("message %s stored at %d, answered with %d (known %v)", m.ID, m.Seq, seq, ok)
		}
	}
}

// Retries of one Idempotency-Key sent at once are stored once: one answer
// is 201, the others 200 with Idempotent-Replayed and the same message.
func TestConcurrentIdempotentRetries(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	const keys, tries = 10, 8
	type answer struct {
		status   int
		replayed string
		m        ssetest.Message
	}
	answers := make([][]answer, keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range keys {
		for try := range tries {
			wg.Go(func() {
				status, replayed, m, err := post(g.URL(), "idem", fmt.Sprintf(`{"text":"key %d try %d"}`, k, try), fmt.Sprint("key-", k))
				if err != nil {
					t.Errorf("key %d try %d: %v", k, try, err)
					return
				}
				mu.Lock()
				answers[k] = append(answers[k], answer{status, replayed, m})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for k, as := range answers {
		var created []ssetest.Message
		for _, a := range as {
			switch {
			case a.status == http.StatusCreated && a.replayed == "":
				created = append(created, a.m)
			case a.status != http.StatusOK || a.replayed != "true":
				t.Errorf("key %d: answer %d, Idempotent-Replayed %q", k, a.status, a.replayed)
			}
		}
		if len(created) != 1 {
			t.Errorf("key %d: %d answers 201, want 1", k, len(created))
			continue
		}
		for _, a := range as {
			if a.m.ID != created[0].ID || a.m.Seq != created[0].Seq || a.m.Text != created[0].Text {
				t.Errorf("key %d: answered %+v, the stored message is %+v", k, a.m, created[0])
			}
		}
	}
	if n := len(history(t, g.URL(), "idem")); n != keys {
		t.Errorf("history holds %d messages, want %d", n, keys)
	}
}

// A publish whose ack never comes (the stream is gone and a subscriber
// that never answers takes the subject) is answered 503 within the publish
// timeout; it is answered 201 only if it was in fact stored (the gateway
// may recreate the stream meanwhile, and the retry then stores it).
func TestPublishWithoutAckIsNeverCreated(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-silent", node.ClientURL())
	nc := nodetest.Connect(t, node.ClientURL())
	h, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.JetStream().DeleteStream(ctx, broker.StreamName); err != nil {
		t.Fatalf("delete the stream: %v", err)
	}
	nodetest.SubscribeSync(t, nc, broker.RoomSubject("void"))
	start := time.Now()
	status, _, m, err := post(g.URL(), "void", `{"text":"lost?"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the publish took %v to be answered; the publish timeout is 5s", d)
	}
	switch status {
	case http.StatusServiceUnavailable:
	case http.StatusCreated:
		nodetest.CheckFor(t, wait, 50*time.Millisecond, g.Ready)
		stored := history(t, g.URL(), "void")
		if len(stored) != 1 || stored[0].ID != m.ID || stored[0].Seq != m.Seq {
			t.Errorf("answered 201 with %+v; history holds %+v", m, stored)
		}
	default:
		t.Errorf("publish without an ack: %d", status)
	}
}
