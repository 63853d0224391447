package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"go.uber.org/goleak"
)

func TestListenerLeavesNoGoroutineBehind(t *testing.T) {
	g := startGateway(t, "gw-leak", "")
	// Warm up the publish path, so its lasting goroutines (JetStream
	// reply subscription) exist before the baseline is taken.
	postJSON(t, g.URL(), "warm", "ana", "warm up")
	http.DefaultClient.CloseIdleConnections()
	baseline := goleak.IgnoreCurrent()

	for i := range 3 {
		s, err := ssetest.Dial(g.URL()+"/rooms/leaky/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		postJSON(t, g.URL(), "leaky", "ana", fmt.Sprintf("m%d", i))
		if _, _, err := s.NextMessage(wait); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	// The gateway notices each closed stream and leaves its room, which
	// unsubscribes; nats.go's goroutine of the subscription then ends on
	// its own. Under load that takes longer than goleak's own retries
	// (about half a second), so wait for it with a deadline.
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if n := g.Clients(); n != 0 {
			return fmt.Errorf("%d listeners still joined", n)
		}
		return goleak.Find(baseline)
	})
}

func TestSlowClientIsCutOffWithoutHurtingOthers(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-slow", node.ClientURL(), func(o *gateway.Options) { o.ClientQueue = 64 })
	// The slow client never reads and has a tiny receive buffer: the
	// connection fills up, its queue overflows and the hub ends it.
	slow := ssetest.Open(t, g.URL()+"/rooms/busy/events", nil, ssetest.RecvBuffer(4096))
	slow.Pause()
	fast := ssetest.Open(t, g.URL()+"/rooms/busy/events", nil)

	big := strings.Repeat("x", 4000)
	const limit = 5000 // 20 MB: far more than the socket buffers hold
	received := make(chan int, limit)
	go func() {
		defer close(received)
		for {
			m, _, err := fast.NextMessage(wait)
			if err != nil {
				return
			}
			var i int
			fmt.Sscanf(m.Text, "%d", &i)
			received <- i
		}
	}()
	sent, start := 0, time.Now()
	for ; sent < limit && g.Clients() == 2; sent++ {
		postJSON(t, g.URL(), "busy", "p", fmt.Sprintf("%d %s", sent, big))
	}
	if g.Clients() != 1 {
		t.Fatalf("after %d messages of 4 KB the slow client is still connected", sent)
	}
	for i := range sent {
		select {
		case got, ok := <-received:
			if !ok || got != i {
				t.Fatalf("fast client: message %d is %d (open %v)", i, got, ok)
			}
		case <-time.After(wait):
			t.Fatalf("fast client: message %d did not arrive", i)
		}
	}
	slow.Resume()
	if err := slow.Drain(wait); !errors.Is(err, ssetest.ErrClosed) {
		t.Fatalf("slow client: %v, want the stream ended by the gateway", err)
	}
	t.Logf("slow client cut off after %d messages in %s", sent, time.Since(start))
}

func TestShutdownEndsStreamsWithRetryHint(t *testing.T) {
	g, err := gateway.Start(context.Background(), gateway.Options{
		HTTPAddr: "127.0.0.1:0", NodeName: "gw-stop", DataDir: t.TempDir(), NATSListen: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := ssetest.Open(t, g.URL()+"/listen", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	ev, err := s.Next(wait)
	if err != nil || ev.Retry == "" {
		t.Fatalf("got %+v, %v; want a retry hint before the stream ends", ev, err)
	}
	if _, err := s.Next(wait); !errors.Is(err, ssetest.ErrClosed) {
		t.Fatalf("stream still open after shutdown: %v", err)
	}
}

func TestWithoutNATSPublishGets503(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-lost", node.ClientURL())
	postJSON(t, g.URL(), "lobby", "ana", "while connected")

	node.Shutdown()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if r := do(t, http.MethodGet, g.URL()+"/readyz", "", nil, nil); r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", r.status)
		}
		return nil
	})
	start := time.Now()
	r := do(t, http.MethodPost, g.URL()+"/rooms/lobby/messages", "application/json", strings.NewReader(`{"text":"lost?"}`), nil)
	if r.status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" {
		t.Fatalf("publish without NATS: %d %s", r.status, r.body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publish without NATS took %s to fail", d)
	}
	if r := do(t, http.MethodGet, g.URL()+"/listen", "", nil, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("listen without NATS: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.URL()+"/healthz", "", nil, nil); r.status != http.StatusOK {
		t.Errorf("healthz without NATS: %d", r.status)
	}
}
