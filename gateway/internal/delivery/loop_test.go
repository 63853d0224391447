//go:build linux

package delivery_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
)

// loopRig is a real hub on an embedded NATS node, and a loop.
type loopRig struct {
	hub     *delivery.Hub
	history *broker.History
	loop    *delivery.Loop
}

func newLoopRig(t *testing.T, o delivery.LoopOptions) *loopRig {
	t.Helper()
	nc, h := nodetest.StartHistory(t)
	encode := func(m broker.Message) []byte {
		return fmt.Appendf(nil, "id: %d\ndata: %s\n\n", m.Seq, m.Text)
	}
	l, err := delivery.NewLoop(o)
	if err != nil {
		t.Fatal(err)
	}
	r := &loopRig{hub: delivery.NewHub(nc, delivery.RoomFeed(h, encode), delivery.HubOptions{}), history: h, loop: l}
	t.Cleanup(func() {
		r.hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("loop shutdown: %v", err)
		}
	})
	return r
}

func (r *loopRig) publish(t *testing.T, room, text string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, _, err := r.history.Publish(ctx, broker.Message{ID: broker.NewID(), Room: room, User: "ana", Text: text, TS: time.Now()}, "")
	if err != nil {
		t.Fatal(err)
	}
	return m.Seq
}

// attachedStream is one stream's two ends.
type attachedStream struct {
	client net.Conn
	lines  *bufio.Reader
	closed chan error // the reason the loop closed the stream
}

// attach joins room and hands the server side of a loopback TCP
// connection to the loop; sent is the last sequence already "replayed".
func (r *loopRig) attach(t *testing.T, room string, queue int, sent uint64) *attachedStream {
	t.Helper()
	return r.attachWith(t, room, delivery.Listener{Queue: queue}, sent, 0)
}

// attachWith is attach with the listener's limits, and the client's
// socket receive buffer set to rcvbuf bytes (0: the system's default).
func (r *loopRig) attachWith(t *testing.T, room string, l delivery.Listener, sent uint64, rcvbuf int) *attachedStream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		return errors.Join(err, serr)
	}}
	client, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	st := r.loop.NewStream()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l.Notify, l.OnEnd = st.Notify, func(error) { st.Notify() }
	c, _, err := r.hub.Join(ctx, room, l)
	if err != nil {
		t.Fatal(err)
	}
	a := &attachedStream{client: client, lines: bufio.NewReader(client), closed: make(chan error, 1)}
	err = st.Attach(server, c, sent, func(reason error, _ int64) {
		r.hub.Leave(c)
		a.closed <- reason
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// next returns the next non-empty line the client receives.
func (a *attachedStream) next(t *testing.T) string {
	t.Helper()
	_ = a.client.SetReadDeadline(time.Now().Add(wait))
	for {
		line, err := a.lines.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
}

func (a *attachedStream) waitClosed(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case reason := <-a.closed:
		return reason
	case <-time.After(timeout):
		t.Fatalf("the loop did not close the stream within %s", timeout)
		return nil
	}
}

func TestStreamsGetMessagesAfterTheirReplayPosition(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{})
	first := r.publish(t, "lobby", "before")
	a := r.attach(t, "lobby", 16, 0)
	b := r.attach(t, "lobby", 16, first+1) // as if the next one were replayed
	second := r.publish(t, "lobby", "one")
	third := r.publish(t, "lobby", "two")
	for _, want := range []string{fmt.Sprint("id: ", second), "data: one", fmt.Sprint("id: ", third), "data: two"} {
		if got := a.next(t); got != want {
			t.Fatalf("stream a got %q, want %q", got, want)
		}
	}
	for _, want := range []string{fmt.Sprint("id: ", third), "data: two"} {
		if got := b.next(t); got != want {
			t.Fatalf("stream b got %q, want %q (sequence %d was replayed)", got, want, second)
		}
	}
	if n := r.loop.Streams(); n != 2 {
		t.Fatalf("loop holds %d streams, want 2", n)
	}
}

func TestQuietStreamGetsHeartbeats(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{Heartbeat: 100 * time.Millisecond})
	a := r.attach(t, "quiet", 16, 0)
	for range 3 {
		if got := a.next(t); got != ": heartbeat" {
			t.Fatalf("got %q, want a heartbeat comment", got)
		}
	}
}

func TestClientClosingEndsTheStream(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{})
	a := r.attach(t, "bye", 16, 0)
	a.client.Close()
	// The poller notices the close at once; no write is needed for it.
	if reason := a.waitClosed(t, 2*time.Second); !errors.Is(reason, delivery.ErrClientGone) {
		t.Fatalf("stream ended with %v, want ErrClientGone", reason)
	}
	nodetest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if n := r.loop.Streams(); n != 0 {
			return fmt.Errorf("loop still holds %d streams", n)
		}
		return nil
	})
}

func TestStuckClientIsClosedAfterTheWriteTimeout(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{WriteTimeout: 300 * time.Millisecond})
	// A queue large enough that the hub never overflows it: only the
	// write timeout can end this client, which never reads.
	stuck := r.attach(t, "stuck", 100000, 0)
	reader := r.attach(t, "stuck", 100000, 0)
	big := strings.Repeat("x", 60000)
	start := time.Now()
	var reason error
	for i := 0; reason == nil; i++ {
		if time.Since(start) > wait {
			t.Fatal("the stuck stream was not closed")
		}
		r.publish(t, "stuck", big)
		// The other stream keeps reading and receives everything.
		if got := reader.next(t); !strings.HasPrefix(got, "id: ") {
			t.Fatalf("reader got %q, want an id line", got)
		}
		if got := reader.next(t); got != "data: "+big {
			t.Fatalf("reader got %d bytes of data, want the message", len(got))
		}
		select {
		case reason = <-stuck.closed:
		default:
		}
	}
	if !errors.Is(reason, delivery.ErrWriteTimeout) {
		t.Fatalf("stuck stream ended with %v, want ErrWriteTimeout", reason)
	}
}

// A client that reads a trickle (a byte now and then) never catches up:
// the write timeout runs from when the socket first refused bytes, and
// progress does not reset it.
func TestTrickleReaderIsClosedAfterTheWriteTimeout(t *testing.T) {
	const timeout = time.Second
	r := newLoopRig(t, delivery.LoopOptions{WriteTimeout: timeout})
	trickle := r.attachWith(t, "trickle", delivery.Listener{Queue: 100000}, 0, 4096)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		one := make([]byte, 1)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := trickle.client.Read(one); err != nil {
				return
			}
		}
	}()
	big := strings.Repeat("x", 60000)
	for range 80 { // about 5 MB: more than the socket buffers of both ends hold
		r.publish(t, "trickle", big)
	}
	// Progress used to reset the timeout, so a trickle kept the stream
	// for ever; the bound on how soon is generous for a loaded machine.
	start := time.Now()
	reason := trickle.waitClosed(t, wait)
	if !errors.Is(reason, delivery.ErrWriteTimeout) {
		t.Fatalf("trickle stream ended with %v, want ErrWriteTimeout", reason)
	}
	t.Logf("trickle stream closed %s after the last message (write timeout %s)", time.Since(start).Round(time.Millisecond), timeout)
}

// A client over its byte budget is ended at once, not when the write
// timeout passes, even while the loop still holds output for it.
func TestStreamOverItsByteBudgetIsEndedAtOnce(t *testing.T) {
	const budget = 256 << 10
	r := newLoopRig(t, delivery.LoopOptions{WriteTimeout: time.Minute})
	stalled := r.attachWith(t, "budget", delivery.Listener{Queue: 100000, Budget: budget}, 0, 4096)
	big := strings.Repeat("x", 60000)
	sent := 0
	for ; sent < 400; sent++ { // 24 MB at most
		select {
		case reason := <-stalled.closed:
			if !errors.Is(reason, delivery.ErrSlowClient) {
				t.Fatalf("stalled stream ended with %v, want delivery.ErrSlowClient", reason)
			}
			t.Logf("stalled stream ended after %d messages of 60 KB: %v", sent, reason)
			return
		default:
		}
		r.publish(t, "budget", big)
	}
	if reason := stalled.waitClosed(t, wait); !errors.Is(reason, delivery.ErrSlowClient) {
		t.Fatalf("stalled stream ended with %v after %d messages, want delivery.ErrSlowClient", reason, sent)
	}
}

func TestShutdownSaysGoodbye(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{Goodbye: []byte("retry: 250\n\n")})
	a := r.attach(t, "stop", 16, 0)
	r.hub.Close() // as the gateway does first when it stops
	if got := a.next(t); got != "retry: 250" {
		t.Fatalf("got %q, want the goodbye", got)
	}
	if reason := a.waitClosed(t, wait); !errors.Is(reason, delivery.ErrClosed) {
		t.Fatalf("stream ended with %v, want delivery.ErrClosed", reason)
	}
}

// While the loop is behind, a stream written a moment ago waits out the
// coalescing window, and what arrived meanwhile goes out together; every
// message still arrives, in order. (Any wait in the queue counts as
// behind here.)
func TestLoopBehindCoalescesWrites(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{Coalesce: 300 * time.Millisecond, BehindAfter: time.Nanosecond})
	streams := make([]*attachedStream, 100)
	for i := range streams {
		streams[i] = r.attach(t, "busy", 16, 0)
	}
	expect := func(texts ...string) {
		t.Helper()
		for _, s := range streams {
			for _, want := range texts {
				s.next(t) // id
				if got := s.next(t); got != "data: "+want {
					t.Fatalf("got %q, want %q", got, "data: "+want)
				}
			}
		}
	}
	r.publish(t, "busy", "one")
	expect("one")
	// Every stream was just written; a message to all 100 at once keeps
	// them waiting for a worker, so most of them wait for the rest of the
	// window.
	r.publish(t, "busy", "two")
	r.publish(t, "busy", "three")
	expect("two", "three")
	if r.loop.Coalesced() == 0 {
		t.Fatal("no stream was held back to coalesce its writes")
	}
}

// A loop whose streams never wait long for a worker writes every message
// at once, however many streams it wakes and however recently they were
// written.
func TestLoopKeepingUpWritesAtOnce(t *testing.T) {
	r := newLoopRig(t, delivery.LoopOptions{Coalesce: time.Hour, BehindAfter: time.Hour})
	streams := make([]*attachedStream, 100)
	for i := range streams {
		streams[i] = r.attach(t, "keeping-up", 16, 0)
	}
	for _, text := range []string{"one", "two", "three"} {
		r.publish(t, "keeping-up", text)
		for _, s := range streams {
			s.next(t) // id
			if got := s.next(t); got != "data: "+text {
				t.Fatalf("got %q, want %q", got, "data: "+text)
			}
		}
	}
	if n := r.loop.Coalesced(); n != 0 {
		t.Fatalf("%d streams were held back, want none: the loop kept up", n)
	}
}
