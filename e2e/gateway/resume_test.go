package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

func lastEventID(cursor string) http.Header { return http.Header{"Last-Event-Id": {cursor}} }

// expectTexts reads exactly the texts want, in order, as message events.
func expectTexts(t *testing.T, s *ssetest.Stream, want []string) ssetest.Message {
	t.Helper()
	var last ssetest.Message
	for i, w := range want {
		m, _, err := s.NextMessage(wait)
		if err != nil {
			t.Fatalf("message %d (%q): %v", i, w, err)
		}
		if m.Text != w {
			t.Fatalf("message %d is %q, want %q", i, m.Text, w)
		}
		last = m
	}
	return last
}

func TestResumeOnAnotherGatewayGetsExactlyWhatWasMissed(t *testing.T) {
	node := nodetest.StartNode(t)
	g1 := startGateway(t, "gw-1", node.ClientURL())
	g2 := startGateway(t, "gw-2", node.ClientURL())
	g3 := startGateway(t, "gw-3", node.ClientURL())

	s := ssetest.Open(t, g1.URL()+"/rooms/resume/events", nil)
	postJSON(t, g2.URL(), "resume", "ana", "seen")
	_, ev, err := s.NextMessage(wait)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	var missed []string
	for i := range 20 {
		missed = append(missed, fmt.Sprintf("missed %d", i))
		postJSON(t, g2.URL(), "resume", "bo", missed[i])
		postJSON(t, g2.URL(), "other-room", "bo", "noise") // interleaved in the stream
	}
	// The header, as a browser's EventSource sends it when it reconnects.
	r := ssetest.Open(t, g3.URL()+"/rooms/resume/events", lastEventID(ev.ID))
	expectTexts(t, r, missed)
	postJSON(t, g2.URL(), "resume", "bo", "after")
	expectTexts(t, r, []string{"after"}) // nothing extra came before it

	// The query parameter works too, on the seed route.
	q := ssetest.Open(t, g1.URL()+"/listen?room=resume&last_event_id="+ev.ID, nil)
	expectTexts(t, q, append(missed, "after"))
}

func TestReplayRacingLiveTrafficLosesNothing(t *testing.T) {
	node := nodetest.StartNode(t)
	gws := []*gateway.Gateway{
		startGateway(t, "gw-1", node.ClientURL()),
		startGateway(t, "gw-2", node.ClientURL()),
	}
	const total = 5000
	const listeners = 3
	// Every listener connects before the first message, then keeps
	// reconnecting, alternating gateways, after a random number of messages.
	first := make([]*ssetest.Stream, listeners)
	for i := range first {
		first[i] = ssetest.Open(t, gws[i%2].URL()+"/rooms/race/events", nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, listeners)
	for i := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, cursor, next, reconnects := first[i], "", 0, 0
			for next < total {
				batch := 1 + rand.IntN(400)
				for range batch {
					m, ev, err := s.NextMessage(30 * time.Second)
					if err != nil {
						errs <- fmt.Errorf("listener %d at message %d: %w", i, next, err)
						return
					}
					if want := fmt.Sprintf("m%d", next); m.Text != want {
						errs <- fmt.Errorf("listener %d: got %q, want %q", i, m.Text, want)
						return
					}
					cursor, next = ev.ID, next+1
					if next == total {
						break
					}
				}
				s.Close()
				if next == total {
					break
				}
				reconnects++
				var err error
				if s, err = ssetest.Dial(gws[reconnects%2].URL()+"/rooms/race/events", lastEventID(cursor)); err != nil {
					errs <- fmt.Errorf("listener %d reconnect: %w", i, err)
					return
				}
			}
			s.Close()
			t.Logf("listener %d: %d messages in order over %d reconnects", i, total, reconnects)
		}()
	}
	client := &http.Client{}
	for i := range total {
		body := fmt.Sprintf(`{"user":"p","text":"m%d"}`, i)
		resp, err := client.Post(gws[i%2].URL()+"/rooms/race/messages", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d: %d", i, resp.StatusCode)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestResetWhenCursorIsOlderThanHistory(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-1", node.ClientURL(), func(o *gateway.Options) {
		o.History.MaxMsgsPerRoom = 5
	})
	old := postJSON(t, g.URL(), "short", "ana", "old")
	var kept []string
	for i := range 10 {
		text := fmt.Sprintf("new %d", i)
		postJSON(t, g.URL(), "short", "ana", text)
		if i >= 5 {
			kept = append(kept, text)
		}
	}
	s := ssetest.Open(t, g.URL()+"/rooms/short/events", lastEventID(old.Cursor))
	ev, err := s.Next(wait)
	if err != nil || ev.Event != "reset" {
		t.Fatalf("first event %+v, %v; want reset", ev, err)
	}
	var notice struct{ Reason string }
	if json.Unmarshal([]byte(ev.Data), &notice); notice.Reason != "history_truncated" {
		t.Errorf("reset data %s", ev.Data)
	}
	expectTexts(t, s, kept)
}

func TestReplayIsCapped(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-1", node.ClientURL(), func(o *gateway.Options) { o.MaxReplay = 3 })
	from := postJSON(t, g.URL(), "capped", "ana", "start")
	var texts []string
	for i := range 10 {
		texts = append(texts, fmt.Sprintf("m%d", i))
		postJSON(t, g.URL(), "capped", "ana", texts[i])
	}
	s := ssetest.Open(t, g.URL()+"/rooms/capped/events", lastEventID(from.Cursor))
	ev, err := s.Next(wait)
	if err != nil || ev.Event != "reset" {
		t.Fatalf("first event %+v, %v; want reset", ev, err)
	}
	var notice struct {
		Reason string
		Missed *int
	}
	json.Unmarshal([]byte(ev.Data), &notice)
	if notice.Reason != "replay_limit" || notice.Missed == nil || *notice.Missed != 7 {
		t.Errorf("reset data %s, want replay_limit with 7 missed", ev.Data)
	}
	expectTexts(t, s, texts[7:])
	postJSON(t, g.URL(), "capped", "ana", "live")
	expectTexts(t, s, []string{"live"})
}

func TestBadCursorsAreRejected(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	other := postJSON(t, g.URL(), "other", "ana", "x")
	for _, c := range []struct{ name, path, cursor string }{
		{"malformed header", "/rooms/lobby/events", "not-a-cursor"},
		{"another room's cursor", "/rooms/lobby/events", other.Cursor},
		{"malformed query", "/listen?room=lobby&last_event_id=%0d%0a", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			if c.cursor != "" {
				h["Last-Event-ID"] = c.cursor
			}
			r := do(t, http.MethodGet, g.URL()+c.path, "", nil, h)
			if r.status != http.StatusBadRequest || r.errorCode() != "invalid_cursor" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestIdempotentPublish(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	post := func(body, key string) response {
		h := map[string]string{}
		if key != "" {
			h["Idempotency-Key"] = key
		}
		return do(t, http.MethodPost, g.URL()+"/rooms/idem/messages", "application/json", strings.NewReader(body), h)
	}
	first := post(`{"user":"ana","text":"pay once"}`, "key-1")
	again := post(`{"user":"ana","text":"pay once"}`, "key-1")
	if first.status != http.StatusCreated || again.status != http.StatusOK || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %d, retry %d (%q)", first.status, again.status, again.header.Get("Idempotent-Replayed"))
	}
	var a, b ssetest.Message
	json.Unmarshal(first.body, &a)
	json.Unmarshal(again.body, &b)
	if a.ID == "" || a.ID != b.ID || a.Seq != b.Seq {
		t.Errorf("retry answered %+v, first %+v", b, a)
	}
	// The key is per room: the same key elsewhere is a new message.
	if r := do(t, http.MethodPost, g.URL()+"/rooms/idem2/messages", "application/json", strings.NewReader(`{"text":"x"}`), map[string]string{"Idempotency-Key": "key-1"}); r.status != http.StatusCreated {
		t.Errorf("same key in another room: %d", r.status)
	}
	// A client-chosen id in the body works the same way.
	if r := post(`{"id":"msg-42","text":"by id"}`, ""); r.status != http.StatusCreated || !strings.Contains(string(r.body), `"id":"msg-42"`) {
		t.Errorf("publish with id: %d %s", r.status, r.body)
	}
	if r := post(`{"id":"msg-42","text":"by id"}`, ""); r.status != http.StatusOK {
		t.Errorf("repeated id: %d %s", r.status, r.body)
	}
	for _, bad := range []struct{ body, key string }{
		{`{"id":"has space","text":"x"}`, ""},
		{`{"text":"x"}`, strings.Repeat("k", 129)},
		{`{"text":"x"}`, "tab\tkey"},
	} {
		if r := post(bad.body, bad.key); r.status != http.StatusBadRequest || r.errorCode() != "invalid_id" {
			t.Errorf("bad id %q / key %q: %d %s", bad.body, bad.key, r.status, r.body)
		}
	}
	r := do(t, http.MethodGet, g.URL()+"/rooms/idem/messages", "", nil, nil)
	var page struct{ Messages []ssetest.Message }
	json.Unmarshal(r.body, &page)
	if len(page.Messages) != 2 {
		t.Fatalf("history holds %d messages, want 2 (one per key or id): %s", len(page.Messages), r.body)
	}
}

// TestStalledClientKeepsMemoryBounded publishes far more than a stalled
// client's connection and queue hold; the gateway cuts the client off and
// its heap does not grow with what was published. NATS runs as a separate
// chat-broker process, so the heap measured is the gateway's alone.
func TestStalledClientKeepsMemoryBounded(t *testing.T) {
	port := clustertest.FreePorts(t, 1)[0]
	b := proctest.Start(t, "broker", clustertest.Binary(t, clustertest.BrokerPkg), "--node-name", "mem",
		"--client-listen", fmt.Sprintf("127.0.0.1:%d", port), "--cluster-listen", "off", "--monitor-listen", "off",
		"--data-dir", t.TempDir(), "--no-auth") // a loopback broker of this test alone
	b.WaitLog(t, regexp.MustCompile(`broker started`), wait)
	g := startGateway(t, "gw-mem", fmt.Sprintf("nats://127.0.0.1:%d", port), func(o *gateway.Options) {
		o.ClientQueue = 64
		o.MaxMessageBytes = 16 << 10
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	stalled := ssetest.Open(t, g.URL()+"/rooms/mem/events", nil, ssetest.RecvBuffer(4096))
	stalled.Pause()
	before := heap()
	text := strings.Repeat("y", 16<<10)
	const n = 2000 // 32 MB of messages
	for i := 0; i < n; i++ {
		postJSON(t, g.URL(), "mem", "p", text)
	}
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if g.Clients() != 0 {
			return fmt.Errorf("stalled client still connected")
		}
		return nil
	})
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("heap in use: %d KB before, %d KB after %d MB published", before>>10, after>>10, n*len(text)>>20)
	if growth > 8<<20 {
		t.Fatalf("heap grew by %d MB while a stalled client was cut off", growth>>20)
	}
}

func TestRecreatedHistoryResetsOldCursors(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-1", node.ClientURL())
	old := postJSON(t, g.URL(), "epoch", "ana", "before")
	live := ssetest.Open(t, g.URL()+"/rooms/epoch/events", nil)

	nc := nodetest.Connect(t, node.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), broker.StreamName); err != nil {
		t.Fatal(err)
	}
	// The next publish fails and makes the gateway create the stream anew.
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		r := do(t, http.MethodPost, g.URL()+"/rooms/epoch/messages", "application/json", strings.NewReader(`{"text":"after"}`), nil)
		if r.status != http.StatusCreated {
			return fmt.Errorf("publish after the stream was deleted: %d %s", r.status, r.body)
		}
		return nil
	})
	// Live listeners of the old stream are sent away to resume.
	if err := live.Drain(wait); err != ssetest.ErrClosed {
		t.Fatalf("listener of the old stream: %v", err)
	}
	s := ssetest.Open(t, g.URL()+"/rooms/epoch/events", lastEventID(old.Cursor))
	ev, err := s.Next(wait)
	if err != nil || ev.Event != "reset" || !strings.Contains(ev.Data, "history_recreated") {
		t.Fatalf("first event %+v, %v; want a history_recreated reset", ev, err)
	}
	expectTexts(t, s, []string{"after"})
	postJSON(t, g.URL(), "epoch", "ana", "live")
	expectTexts(t, s, []string{"live"})
}

// A cursor of the right stream and room but past the room's last message
// was never given out: the listener is told (reset), gets what is
// retained, and then every live message; it is never left silent.
func TestCursorPastTheEndIsReset(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	var last ssetest.Message
	for _, text := range []string{"one", "two"} {
		last = postJSON(t, g.URL(), "ahead", "ana", text)
	}
	parts := strings.Split(last.Cursor, "-")
	parts[1] = strconv.FormatUint(last.Seq+1000, 36)
	ahead := strings.Join(parts, "-")
	s := ssetest.Open(t, g.URL()+"/rooms/ahead/events", lastEventID(ahead))
	ev, err := s.Next(wait)
	if err != nil || ev.Event != "reset" || !strings.Contains(ev.Data, "unknown_position") {
		t.Fatalf("first event %+v, %v; want an unknown_position reset", ev, err)
	}
	expectTexts(t, s, []string{"one", "two"})
	postJSON(t, g.URL(), "ahead", "ana", "live")
	expectTexts(t, s, []string{"live"})
}
