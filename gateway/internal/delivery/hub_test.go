package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
	"github.com/nats-io/nats.go"
)

const wait = 10 * time.Second

// slowHistory is the real history stream, except that reads of one room
// wait until the test opens the gate: a JetStream that answers slowly for
// that room.
type slowHistory struct {
	*broker.History
	room    string
	gate    chan struct{}
	reading chan string // told of every read that waits at the gate

	lastPasses bool          // the slow room's LastSeq answers at once
	lag        atomic.Uint64 // the slow room's LastSeq answers this much less
}

func (s *slowHistory) hold(ctx context.Context, room, what string) error {
	if room != s.room {
		return nil
	}
	select {
	case s.reading <- what:
	default:
	}
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowHistory) After(ctx context.Context, room string, after uint64, limit int) ([]broker.Message, uint64, error) {
	if err := s.hold(ctx, room, "after"); err != nil {
		return nil, 0, err
	}
	return s.History.After(ctx, room, after, limit)
}

func (s *slowHistory) LastSeq(ctx context.Context, room string) (uint64, error) {
	if room == s.room && s.lastPasses {
		last, err := s.History.LastSeq(ctx, room)
		return last - min(last, s.lag.Load()), err
	}
	if err := s.hold(ctx, room, "last"); err != nil {
		return 0, err
	}
	return s.History.LastSeq(ctx, room)
}

type hubRig struct {
	nc      *nats.Conn
	history *broker.History
	slow    *slowHistory
	hub     *delivery.Hub
}

func newHubRig(t *testing.T, slowRoom string) *hubRig {
	t.Helper()
	nc, h := nodetest.StartHistory(t)
	slow := &slowHistory{History: h, room: slowRoom, gate: make(chan struct{}), reading: make(chan string, 16)}
	encode := func(m broker.Message) []byte { return []byte(m.Text) }
	hb := delivery.NewHub(nc, delivery.RoomFeed(slow, encode), delivery.HubOptions{CatchUpTimeout: 3 * time.Second, ActivateTimeout: 2 * wait})
	t.Cleanup(func() {
		select {
		case <-slow.gate:
		default:
			close(slow.gate)
		}
		hb.Close()
	})
	return &hubRig{nc: nc, history: h, slow: slow, hub: hb}
}

func (r *hubRig) join(t *testing.T, room string) *delivery.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := r.hub.Join(ctx, room, delivery.Listener{Queue: 100})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *hubRig) publish(t *testing.T, room, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, _, err := r.history.Publish(ctx, broker.Message{ID: broker.NewID(), Room: room, User: "ana", Text: text, TS: time.Now()}, ""); err != nil {
		t.Fatal(err)
	}
}

// receive waits for the client's next frames and returns them.
func receive(t *testing.T, c *delivery.Client, within time.Duration) string {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	var sent uint64
	buf, _ := c.AppendWaiting(nil, &sent)
	return string(buf)
}

// within runs f and fails the test if it takes longer than d.
func within(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s took longer than %s: it waited for the slow room", what, d)
	}
}

// A room whose history reads hang delays only itself: joins, leaves,
// deliveries and the room count of other rooms go on while it activates
// and while it backfills a hole.
func TestSlowRoomDelaysNoOtherRoom(t *testing.T) {
	r := newHubRig(t, "slow")
	other := r.join(t, "other")
	leaver := r.join(t, "leaver")

	// 1. The slow room's activation waits for its position.
	joined := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		_, _, err := r.hub.Join(ctx, "slow", delivery.Listener{Queue: 100})
		joined <- err
	}()
	if what := <-r.slow.reading; what != "last" {
		t.Fatalf("slow room first read %s, want its last sequence", what)
	}
	within(t, "joining another room", time.Second, func() { r.join(t, "fresh") })
	within(t, "leaving another room", time.Second, func() { r.hub.Leave(leaver) })
	within(t, "counting rooms", time.Second, func() { r.hub.Rooms() })
	r.publish(t, "other", "while the slow room activates")
	if got := receive(t, other, time.Second); got != "while the slow room activates" {
		t.Fatalf("other room got %q", got)
	}
	r.slow.gate <- struct{}{} // let the one read through
	if err := <-joined; err != nil {
		t.Fatalf("joining the slow room: %v", err)
	}

	// 2. A hole in the slow room's feed: its backfill waits for history.
	slowClient := r.join(t, "slow")
	second := r.join(t, "slow")
	hdr := nats.Header{"Nats-Subject": {broker.RoomSubject("slow")}, "Nats-Sequence": {"1000"}, broker.HeaderLastSequence: {"999"}}
	if err := r.nc.PublishMsg(&nats.Msg{Subject: broker.LiveSubject("slow"), Header: hdr, Data: []byte("after a hole")}); err != nil {
		t.Fatal(err)
	}
	if what := <-r.slow.reading; what != "after" {
		t.Fatalf("slow room read %s, want a backfill", what)
	}
	within(t, "leaving the backfilling room", time.Second, func() { r.hub.Leave(second) })
	within(t, "joining another room", time.Second, func() { r.join(t, "fresh2") })
	r.publish(t, "other", "while the slow room backfills")
	if got := receive(t, other, time.Second); got != "while the slow room backfills" {
		t.Fatalf("other room got %q", got)
	}
	close(r.slow.gate)
	// The hole cannot be filled (the sequences were made up): the slow
	// room's client is sent away to resume by cursor.
	select {
	case <-slowClient.Done():
		if !errors.Is(slowClient.Err(), delivery.ErrResync) {
			t.Fatalf("slow room client ended with %v, want ErrResync", slowClient.Err())
		}
	case <-time.After(2 * wait):
		t.Fatal("the slow room's client was not ended after an unfillable hole")
	}
}

// Resync delivers what a room's live feed missed. While the room's history
// cannot be read (a stream between leaders), Resync fails and the room
// keeps its clients, waiting for the next try; the try after the stream
// answers again delivers every missed message, in order. (A room that
// gave up would send its listeners away, and one that does not resume
// by cursor would lose those messages.)
func TestResyncKeepsClientsWhileHistoryIsUnreadable(t *testing.T) {
	r := newHubRig(t, "resync")
	r.slow.lastPasses = true
	for _, text := range []string{"one ", "two ", "three"} {
		r.publish(t, "resync", text)
	}
	// The room's position is learned behind the stream: the three
	// messages are what its live feed missed.
	r.slow.lag.Store(3)
	c := r.join(t, "resync")
	r.slow.lag.Store(0)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := r.hub.Resync(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "room resync") {
		t.Fatalf("Resync while history reads hang = %v, want an error naming the room", err)
	}
	if what := <-r.slow.reading; what != "after" {
		t.Fatalf("Resync read %s, want a backfill", what)
	}
	select {
	case <-c.Done():
		t.Fatalf("the room's client was ended (%v) although Resync will be tried again", c.Err())
	case <-c.Ready():
		t.Fatal("the client got frames although history could not be read")
	default:
	}

	close(r.slow.gate)
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.hub.Resync(ctx); err != nil {
		t.Fatalf("Resync once history answers: %v", err)
	}
	if got := receive(t, c, wait); got != "one two three" {
		t.Fatalf("after Resync the client got %q, want every missed message in order", got)
	}
	select {
	case <-c.Done():
		t.Fatalf("the client was ended: %v", c.Err())
	default:
	}
}

// A client over its byte budget is ended with ErrSlowClient, saying why;
// a client with nothing waiting always takes a frame, however large.
func TestClientByteBudget(t *testing.T) {
	r := newHubRig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	small, _, err := r.hub.Join(ctx, "budget", delivery.Listener{Queue: 100, Budget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, "budget", strings.Repeat("a", 1500)) // larger than the budget, but nothing waits
	if got := receive(t, small, wait); len(got) != 1500 {
		t.Fatalf("got %d bytes, want the whole message", len(got))
	}
	small.SetUnsent(600) // its writer holds 600 bytes the socket has not taken
	r.publish(t, "budget", strings.Repeat("b", 500))
	select {
	case <-small.Done():
		if err := small.Err(); !errors.Is(err, delivery.ErrSlowClient) || !strings.Contains(err.Error(), "budget is 1000") {
			t.Fatalf("client ended with %v, want ErrSlowClient over its budget", err)
		}
	case <-time.After(wait):
		t.Fatal("client over its byte budget was not ended")
	}
}

// A client whose connection holds output it has not taken is slow: it is
// ended once Queue frames wait. One whose connection took everything
// waits for the gateway's own writers, and may have four times as many
// waiting before it is ended.
func TestClientFrameLimitCountsOnlyTheClientsOwnSlowness(t *testing.T) {
	r := newHubRig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	join := func(queue int) *delivery.Client {
		c, _, err := r.hub.Join(ctx, "limits", delivery.Listener{Queue: queue})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	slow, reading, witness := join(2), join(2), join(1000)
	slow.SetUnsent(1) // its socket is full
	var seen strings.Builder
	for i := 1; i <= 9; i++ {
		text := fmt.Sprintf("message %d;", i)
		r.publish(t, "limits", text)
		// The witness joined last: once it has the message, so have the others.
		for !strings.Contains(seen.String(), text) {
			seen.WriteString(receive(t, witness, wait))
		}
		ended := func(c *delivery.Client) bool {
			select {
			case <-c.Done():
				return errors.Is(c.Err(), delivery.ErrSlowClient)
			default:
				return false
			}
		}
		if want := i > 2; ended(slow) != want {
			t.Fatalf("after %d messages the slow client ended: %v (%v), want %v", i, ended(slow), slow.Err(), want)
		}
		if want := i > 8; ended(reading) != want {
			t.Fatalf("after %d messages the reading client ended: %v (%v), want %v", i, ended(reading), reading.Err(), want)
		}
	}
}
