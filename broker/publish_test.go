package broker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

func newMessage(room, text string) broker.Message {
	return broker.Message{ID: broker.NewID(), Room: room, User: "tester", Text: text, TS: time.Now().UTC().Truncate(time.Millisecond)}
}

// TestPublishConcurrentStoredOnce: many concurrent publishes are each
// stored once, at the sequence each was answered with.
func TestPublishConcurrentStoredOnce(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{MaxMsgsPerRoom: 10000})
	ctx := testContext(t)
	const writers, each = 50, 40
	answered := make(map[string]uint64, writers*each) // id -> sequence
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m, dup, err := e.h.Publish(ctx, newMessage("busy", fmt.Sprintf("w%d-%d", w, i)), "")
				if err != nil || dup || m.Seq == 0 {
					t.Errorf("Publish w%d-%d = seq %d, duplicate %v, %v; want stored", w, i, m.Seq, dup, err)
					return
				}
				mu.Lock()
				answered[m.ID] = m.Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stored, more, err := e.h.After(ctx, "busy", 0, writers*each+1)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	if len(stored) != writers*each || more != 0 {
		t.Fatalf("history holds %d messages (%d more), want %d", len(stored), more, writers*each)
	}
	for _, m := range stored {
		if seq, ok := answered[m.ID]; !ok || seq != m.Seq {
			t.Errorf("message %s stored at %d; its publish was answered with %d (known %v)", m.ID, m.Seq, seq, ok)
		}
		delete(answered, m.ID)
	}
	if len(answered) != 0 {
		t.Errorf("%d answered messages are not in history", len(answered))
	}
}

// TestPublishConcurrentRetries: publishes of one de-duplication id sent at
// once are stored once; exactly one is answered as stored and the others
// as duplicates of it, with its sequence and content.
func TestPublishConcurrentRetries(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	ctx := testContext(t)
	const ids, tries = 20, 10
	type answer struct {
		m   broker.Message
		dup bool
	}
	answers := make([][]answer, ids)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range ids {
		for try := range tries {
			wg.Go(func() {
				m, dup, err := e.h.Publish(ctx, newMessage("retries", fmt.Sprintf("id %d try %d", id, try)), fmt.Sprintf("key-%d", id))
				if err != nil {
					t.Errorf("Publish id %d try %d: %v", id, try, err)
					return
				}
				mu.Lock()
				answers[id] = append(answers[id], answer{m, dup})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	stored, _, err := e.h.After(ctx, "retries", 0, 1000)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	if len(stored) != ids {
		t.Fatalf("history holds %d messages, want %d", len(stored), ids)
	}
	for id, as := range answers {
		var first []broker.Message
		for _, a := range as {
			if !a.dup {
				first = append(first, a.m)
			}
		}
		if len(first) != 1 {
			t.Errorf("id %d: %d publishes answered as stored, want 1", id, len(first))
			continue
		}
		for _, a := range as {
			if a.m.Seq != first[0].Seq || a.m.Text != first[0].Text {
				t.Errorf("id %d: answered %d %q, the stored one is %d %q", id, a.m.Seq, a.m.Text, first[0].Seq, first[0].Text)
			}
		}
	}
}

// silence makes publishes to room get no ack at all: the stream is
// deleted and a subscriber that never answers takes the room's subject,
// so the server has a responder and sends no "no responders" status.
func silence(t *testing.T, e historyEnv, room string) {
	t.Helper()
	ctx := testContext(t)
	if err := e.h.JetStream().DeleteStream(ctx, broker.StreamName); err != nil {
		t.Fatalf("delete the stream: %v", err)
	}
	sub, err := e.nc.SubscribeSync(broker.RoomSubject(room))
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// TestPublishWithoutAckFails: a publish whose ack never comes fails when
// its context ends (after retries), and one on a closed connection fails
// at once; neither reports success.
func TestPublishWithoutAckFails(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	silence(t, e, "void")
	ctx, cancel := context.WithTimeout(testContext(t), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	m, _, err := e.h.Publish(ctx, newMessage("void", "lost"), "")
	if err == nil {
		t.Fatalf("Publish without an ack succeeded: %+v", m)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Publish without an ack took %v; its context ended after 2.5s", d)
	}
	if pending := e.h.JetStream().PublishAsyncPending(); pending > 1 {
		t.Errorf("%d publishes pending after the caller gave up, want at most its last attempt", pending)
	}

	e.nc.Close()
	start = time.Now()
	if _, _, err := e.h.Publish(testContext(t), newMessage("void", "closed"), ""); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Publish on a closed connection: %v, want %v", err, nats.ErrConnectionClosed)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish on a closed connection took %v", d)
	}
}

// TestPublishWindow: beyond the publish window, callers wait for a place
// and give up with ErrPublishBusy when their context ends; no more than
// the window's publishes are sent meanwhile.
func TestPublishWindow(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	h, err := broker.NewHistory(e.nc, broker.WithPublishWindow(2))
	if err != nil {
		t.Fatalf("NewHistory: %v", err)
	}
	silence(t, e, "full")
	ctx, cancel := context.WithCancel(testContext(t))
	var wg sync.WaitGroup
	for i := range 2 { // the window's publishes, waiting for acks that never come
		wg.Go(func() {
			if _, _, err := h.Publish(ctx, newMessage("full", fmt.Sprint("held ", i)), ""); err == nil {
				t.Error("a publish without an ack succeeded")
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitPending(t, h.JetStream(), 2)
	goroutines := runtime.NumGoroutine()
	const excess = 100
	errs := make(chan error, excess)
	start := time.Now()
	for range excess {
		go func() {
			octx, ocancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer ocancel()
			_, _, err := h.Publish(octx, newMessage("full", "excess"), "")
			errs <- err
		}()
	}
	for range excess {
		if err := <-errs; !errors.Is(err, broker.ErrPublishBusy) {
			t.Errorf("a publish beyond the window: %v, want %v", err, broker.ErrPublishBusy)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the publishes beyond the window took %v to give up; their contexts ended after 300ms", d)
	}
	if pending := h.JetStream().PublishAsyncPending(); pending > 2 {
		t.Errorf("%d publishes in flight, the window is 2", pending)
	}
	// Each excess publisher has sent its error but may not have ended
	// yet (it still runs its deferred cancel): wait for them, so that
	// only goroutines left behind by the window fail the test.
	nodetest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > goroutines+10 {
			return fmt.Errorf("%d goroutines after the excess publishes gave up, %d before", n, goroutines)
		}
		return nil
	})
}

// waitPending waits until js has n asynchronous publishes in flight.
func waitPending(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	nodetest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := js.PublishAsyncPending(); got != n {
			return fmt.Errorf("%d publishes in flight, want %d", got, n)
		}
		return nil
	})
}
