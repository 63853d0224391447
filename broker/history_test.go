package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

// historyEnv is a History on a fresh embedded node, with its stream ensured.
type historyEnv struct {
	h     *broker.History
	nc    *nats.Conn
	epoch uint64
}

func newHistoryEnv(t *testing.T, cfg broker.HistoryConfig) historyEnv {
	t.Helper()
	n := nodetest.StartNode(t)
	nc, err := n.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close) // runs before the node's shutdown
	h, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatalf("NewHistory: %v", err)
	}
	epoch, err := h.Ensure(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return historyEnv{h: h, nc: nc, epoch: epoch}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e historyEnv) publish(t *testing.T, room, text string) broker.Message {
	t.Helper()
	m, _, err := e.h.Publish(testContext(t), broker.Message{
		ID:   broker.NewID(),
		Room: room,
		User: "tester",
		Text: text,
		TS:   time.Now().UTC().Truncate(time.Millisecond),
		Node: "node-1",
	}, "")
	if err != nil {
		t.Fatalf("Publish(%s, %q): %v", room, text, err)
	}
	if m.Seq == 0 {
		t.Fatalf("Publish(%s, %q) returned sequence 0", room, text)
	}
	return m
}

// sameMessages fails unless got holds want's messages, in order, as stored.
func sameMessages(t *testing.T, what string, got, want []broker.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages %v, want %d %v", what, len(got), texts(got), len(want), texts(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.TS.Equal(w.TS) {
			t.Errorf("%s: message %d TS = %v, want %v", what, i, g.TS, w.TS)
		}
		g.TS, w.TS = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("%s: message %d =\n  %+v\nwant\n  %+v", what, i, g, w)
		}
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("%s: sequences not increasing: %d then %d", what, got[i-1].Seq, got[i].Seq)
		}
	}
}

func texts(ms []broker.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func TestHistoryEnsureKeepsEpoch(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	if e.epoch == 0 {
		t.Fatal("Ensure returned epoch 0")
	}
	m := e.publish(t, "a", "kept across updates")

	ctx := testContext(t)
	epoch, err := e.h.Ensure(ctx, broker.HistoryConfig{MaxMsgsPerRoom: 10, MaxAge: time.Hour, DuplicateWindow: time.Minute})
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if epoch != e.epoch {
		t.Fatalf("second Ensure epoch = %d, want %d (the stream must be updated, not recreated)", epoch, e.epoch)
	}
	if got, err := e.h.Epoch(ctx); err != nil || got != e.epoch {
		t.Fatalf("Epoch() = %d, %v; want %d", got, err, e.epoch)
	}
	s, err := e.h.JetStream().Stream(ctx, broker.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxMsgsPerSubject != 10 || cfg.MaxAge != time.Hour || cfg.Duplicates != time.Minute {
		t.Errorf("updated limits = per subject %d, age %v, duplicates %v; want 10, 1h, 1m", cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.Duplicates)
	}
	got, err := e.h.Before(ctx, "a", 0, 10)
	if err != nil {
		t.Fatalf("Before: %v", err)
	}
	sameMessages(t, "after update", got, []broker.Message{m})
}

func TestHistoryEpochWithoutStream(t *testing.T) {
	n := nodetest.StartNode(t)
	nc, err := n.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	h, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatalf("NewHistory: %v", err)
	}
	if _, err := h.Epoch(testContext(t)); err == nil {
		t.Fatal("Epoch without a stream: want an error")
	}
}

func TestHistoryAfterAndBefore(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	var a, b []broker.Message
	for i := 1; i <= 3; i++ {
		a = append(a, e.publish(t, "a", fmt.Sprintf("a%d", i)))
		b = append(b, e.publish(t, "b", fmt.Sprintf("b%d", i)))
	}
	ctx := testContext(t)

	after := func(room string, from uint64, limit int) ([]broker.Message, uint64) {
		t.Helper()
		ms, more, err := e.h.After(ctx, room, from, limit)
		if err != nil {
			t.Fatalf("After(%s, %d, %d): %v", room, from, limit, err)
		}
		return ms, more
	}
	before := func(room string, from uint64, limit int) []broker.Message {
		t.Helper()
		ms, err := e.h.Before(ctx, room, from, limit)
		if err != nil {
			t.Fatalf("Before(%s, %d, %d): %v", room, from, limit, err)
		}
		return ms
	}

	got, more := after("a", 0, 10)
	sameMessages(t, "After(a, 0, 10)", got, a)
	if more != 0 {
		t.Errorf("After(a, 0, 10) more = %d, want 0", more)
	}
	got, _ = after("a", a[0].Seq, 10)
	sameMessages(t, "After(a, first, 10)", got, a[1:])
	got, more = after("a", 0, 2)
	sameMessages(t, "After(a, 0, 2)", got, a[:2])
	if more != 1 {
		t.Errorf("After(a, 0, 2) more = %d, want 1", more)
	}
	got, _ = after("a", a[2].Seq, 10)
	sameMessages(t, "After(a, last, 10)", got, nil)
	got, _ = after("b", 0, 10)
	sameMessages(t, "After(b, 0, 10)", got, b)
	got, _ = after("nobody", 0, 10)
	sameMessages(t, "After(nobody, 0, 10)", got, nil)

	sameMessages(t, "Before(a, 0, 2)", before("a", 0, 2), a[1:])
	sameMessages(t, "Before(a, last, 2)", before("a", a[2].Seq, 2), a[:2])
	sameMessages(t, "Before(a, 0, 10)", before("a", 0, 10), a)
	sameMessages(t, "Before(a, first, 10)", before("a", a[0].Seq, 10), nil)
	sameMessages(t, "Before(b, b's last, 10)", before("b", b[2].Seq, 10), b[:2])
	sameMessages(t, "Before(a, 0, 0)", before("a", 0, 0), nil)
	sameMessages(t, "Before(nobody, 0, 10)", before("nobody", 0, 10), nil)
}

func TestHistoryPublishDeduplicates(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	ctx := testContext(t)
	m := broker.Message{ID: broker.NewID(), Room: "a", User: "tester", Text: "once", TS: time.Now().UTC().Truncate(time.Millisecond)}
	first, dup, err := e.h.Publish(ctx, m, "")
	if dup {
		t.Error("first Publish reported a duplicate")
	}
	if err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	retry := m
	retry.ID, retry.Text = broker.NewID(), "once, retried"
	second, dup, err := e.h.Publish(ctx, retry, m.ID)
	if err != nil {
		t.Fatalf("retried Publish: %v", err)
	}
	if !dup || second.ID != m.ID || second.Text != "once" {
		t.Errorf("retried Publish = %+v, duplicate %v; want the first message, duplicate", second, dup)
	}
	if second.Seq != first.Seq {
		t.Errorf("retried Publish seq = %d, want the original %d", second.Seq, first.Seq)
	}
	got, err := e.h.Before(ctx, "a", 0, 10)
	if err != nil {
		t.Fatalf("Before: %v", err)
	}
	sameMessages(t, "Before after a retried publish", got, []broker.Message{first})
}

func TestHistoryStoresPlainPublish(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	start := time.Now()
	if err := e.nc.Publish(broker.RoomSubject("a"), []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msg := nats.NewMsg(broker.RoomSubject("a"))
	msg.Header.Set(broker.HeaderUser, "bob")
	msg.Data = []byte("from bob")
	if err := e.nc.PublishMsg(msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	ctx := testContext(t)
	var got []broker.Message
	nodetest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		if got, err = e.h.Before(ctx, "a", 0, 10); err != nil {
			return err
		}
		if len(got) != 2 {
			return fmt.Errorf("history of a holds %d messages, want 2", len(got))
		}
		return nil
	})
	for i, want := range []struct{ text, user string }{{"hello", "nats"}, {"from bob", "bob"}} {
		m := got[i]
		if m.Text != want.text || m.User != want.user || m.Room != "a" {
			t.Errorf("message %d = %+v; want text %q, user %q, room a", i, m, want.text, want.user)
		}
		if m.ID == "" {
			t.Errorf("message %d has no ID", i)
		}
		if m.Seq == 0 {
			t.Errorf("message %d has sequence 0", i)
		}
		if m.TS.IsZero() || m.TS.Before(start.Add(-time.Second)) || m.TS.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d TS = %v, want the time it was stored (about %v)", i, m.TS, start)
		}
	}
	if got[0].ID == got[1].ID {
		t.Errorf("plain messages share the ID %q", got[0].ID)
	}
}

func TestHistoryBeforeInterleavedRooms(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	// 300 messages: every other one in a (150), the rest alternating b and c (75 each).
	byRoom := map[string][]broker.Message{}
	for i := range 300 {
		room := "a"
		switch i % 4 {
		case 1:
			room = "b"
		case 3:
			room = "c"
		}
		byRoom[room] = append(byRoom[room], e.publish(t, room, fmt.Sprintf("%s-%d", room, len(byRoom[room]))))
	}
	a, b := byRoom["a"], byRoom["b"]
	tests := []struct {
		name   string
		room   string
		before uint64
		limit  int
		want   []broker.Message
	}{
		{"a newest 100", "a", 0, 100, a[50:]},
		{"a 100 before a[120]", "a", a[120].Seq, 100, a[20:120]},
		{"a 100 before a[60]", "a", a[60].Seq, 100, a[:60]},
		{"a newest 1", "a", 0, 1, a[149:]},
		{"a all", "a", 0, 500, a},
		{"b newest 100 (all)", "b", 0, 100, b},
		{"b 100 before b[74]", "b", b[74].Seq, 100, b[:74]},
		{"c newest 10", "c", 0, 10, byRoom["c"][65:]},
		{"before past the end", "a", 10_000, 3, a[147:]},
	}
	ctx := testContext(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.h.Before(ctx, tt.room, tt.before, tt.limit)
			if err != nil {
				t.Fatalf("Before: %v", err)
			}
			sameMessages(t, tt.name, got, tt.want)
		})
	}
}

func TestHistoryPerRoomLimit(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{MaxMsgsPerRoom: 2})
	var a []broker.Message
	for i := range 5 {
		a = append(a, e.publish(t, "a", fmt.Sprintf("a%d", i)))
		e.publish(t, "b", fmt.Sprintf("b%d", i))
	}
	ctx := testContext(t)
	got, err := e.h.Before(ctx, "a", 0, 10)
	if err != nil {
		t.Fatalf("Before: %v", err)
	}
	sameMessages(t, "Before with 2 kept per room", got, a[3:])
	got, _, err = e.h.After(ctx, "a", 0, 10)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	sameMessages(t, "After with 2 kept per room", got, a[3:])
}

func TestLiveRepublish(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	sub := nodetest.SubscribeSync(t, e.nc, broker.LiveSubject("a"))

	a1 := e.publish(t, "a", "a1")
	e.publish(t, "b", "b1")
	a2 := e.publish(t, "a", "a2")
	if err := e.nc.Publish(broker.RoomSubject("a"), []byte("plain")); err != nil {
		t.Fatalf("publish: %v", err)
	}

	want := []struct {
		msg     *broker.Message // nil: the plain message
		lastSeq uint64
	}{
		{&a1, 0},
		{&a2, a1.Seq},
		{nil, a2.Seq},
	}
	for i, w := range want {
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("live message %d: %v", i, err)
		}
		got, err := broker.StoredMessage(msg.Header, msg.Data)
		if err != nil {
			t.Fatalf("StoredMessage of live message %d: %v", i, err)
		}
		if last := broker.LastSequence(msg.Header); last != w.lastSeq {
			t.Errorf("live message %d: LastSequence = %d, want %d", i, last, w.lastSeq)
		}
		if w.msg != nil {
			sameMessages(t, fmt.Sprintf("live message %d", i), []broker.Message{got}, []broker.Message{*w.msg})
			continue
		}
		if got.Seq <= a2.Seq || got.Text != "plain" || got.User != broker.DefaultPlainUser || got.Room != "a" || got.ID == "" || got.TS.IsZero() {
			t.Errorf("live plain message = %+v; want seq > %d, text plain, user nats, room a, an ID and a TS", got, a2.Seq)
		}
	}
}

func TestStoredMessageWithoutPosition(t *testing.T) {
	tests := []struct {
		name string
		hdr  nats.Header
	}{
		{"no headers", nil},
		{"no subject", nats.Header{"Nats-Sequence": {"3"}}},
		{"foreign subject", nats.Header{"Nats-Subject": {"other.a"}, "Nats-Sequence": {"3"}}},
		{"invalid room", nats.Header{"Nats-Subject": {"chat.room.a.b"}, "Nats-Sequence": {"3"}}},
		{"no sequence", nats.Header{"Nats-Subject": {"chat.room.a"}}},
		{"zero sequence", nats.Header{"Nats-Subject": {"chat.room.a"}, "Nats-Sequence": {"0"}}},
		{"bad sequence", nats.Header{"Nats-Subject": {"chat.room.a"}, "Nats-Sequence": {"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := broker.StoredMessage(tt.hdr, []byte("hi")); !errors.Is(err, broker.ErrNotStored) {
				t.Fatalf("StoredMessage = %v, want ErrNotStored", err)
			}
		})
	}
}

func TestStoredMessageFromHeaders(t *testing.T) {
	hdr := nats.Header{
		"Nats-Subject":    {"chat.live.a"},
		"Nats-Sequence":   {"7"},
		"Nats-Time-Stamp": {"2024-05-06T07:08:09.5Z"},
		"Nats-Msg-Id":     {"msg-id"},
		broker.HeaderUser: {"bob"},
	}
	got, err := broker.StoredMessage(hdr, []byte("hi"))
	if err != nil {
		t.Fatalf("StoredMessage: %v", err)
	}
	want := broker.Message{Seq: 7, ID: "msg-id", Room: "a", User: "bob", Text: "hi", TS: time.Date(2024, 5, 6, 7, 8, 9, 5e8, time.UTC)}
	if !got.TS.Equal(want.TS) {
		t.Errorf("TS = %v, want %v", got.TS, want.TS)
	}
	got.TS, want.TS = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("StoredMessage = %+v, want %+v", got, want)
	}

	delete(hdr, "Nats-Msg-Id")
	if got, _ := broker.StoredMessage(hdr, []byte("hi")); got.ID != "seq-7" {
		t.Errorf("ID without a msg id header = %q, want seq-7", got.ID)
	}
	if got := broker.LastSequence(nats.Header{broker.HeaderLastSequence: {"41"}}); got != 41 {
		t.Errorf("LastSequence = %d, want 41", got)
	}
	if got := broker.LastSequence(nats.Header{}); got != 0 {
		t.Errorf("LastSequence without header = %d, want 0", got)
	}
}

// TestStoredMessageIgnoresPublisherPositionHeaders checks that a plain NATS
// publisher cannot forge a message's room or position: the stream appends
// its own Nats-Subject, Nats-Sequence and Nats-Last-Sequence after the
// headers the publisher sent, and only those may be trusted.
func TestStoredMessageIgnoresPublisherPositionHeaders(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	sub := nodetest.SubscribeSync(t, e.nc, broker.LiveSubject("a"))
	a1 := e.publish(t, "a", "a1")
	forged := nats.NewMsg(broker.RoomSubject("a"))
	forged.Header.Set("Nats-Subject", broker.RoomSubject("victim"))
	forged.Header.Set("Nats-Sequence", "999")
	forged.Header.Set("Nats-Time-Stamp", "2000-01-01T00:00:00Z")
	forged.Header.Set(broker.HeaderLastSequence, "77")
	forged.Data = []byte("forged")
	if err := e.nc.PublishMsg(forged); err != nil {
		t.Fatalf("publish: %v", err)
	}

	if _, err := sub.NextMsg(10 * time.Second); err != nil { // a1
		t.Fatalf("live message: %v", err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("live message: %v", err)
	}
	got, err := broker.StoredMessage(msg.Header, msg.Data)
	if err != nil {
		t.Fatalf("StoredMessage: %v", err)
	}
	if got.Room != "a" || got.Seq != a1.Seq+1 || got.TS.Year() == 2000 {
		t.Errorf("live forged message = %+v, want room a, seq %d and the stored time", got, a1.Seq+1)
	}
	if last := broker.LastSequence(msg.Header); last != a1.Seq {
		t.Errorf("LastSequence = %d, want %d", last, a1.Seq)
	}
	ms, _, err := e.h.After(testContext(t), "a", 0, 10)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	if len(ms) != 2 || ms[1].Room != "a" || ms[1].Seq != a1.Seq+1 {
		t.Errorf("After(a) = %+v, want a1 and the forged message at seq %d in room a", ms, a1.Seq+1)
	}
}

// TestHistoryReadsPastPublisherStatusHeader checks that a stored message
// whose publisher set a Status header does not end or fail history reads:
// only the server's own replies (404, end of batch 204) are status replies.
func TestHistoryReadsPastPublisherStatusHeader(t *testing.T) {
	for _, status := range []string{"404", "204", "500"} {
		t.Run(status, func(t *testing.T) {
			e := newHistoryEnv(t, broker.HistoryConfig{})
			a1 := e.publish(t, "a", "a1")
			poison := nats.NewMsg(broker.RoomSubject("a"))
			poison.Header.Set("Status", status)
			poison.Data = []byte("poison")
			if err := e.nc.PublishMsg(poison); err != nil {
				t.Fatalf("publish: %v", err)
			}
			// Publish waits for its ack, and the stream stores in order.
			a3 := e.publish(t, "a", "a3")
			ctx := testContext(t)
			ms, more, err := e.h.After(ctx, "a", 0, 10)
			if err != nil || len(ms) != 3 || more != 0 {
				t.Fatalf("After(a, 0, 10) = %v, more %d, %v; want a1, poison, a3", texts(ms), more, err)
			}
			sameMessages(t, "After around the poison", []broker.Message{ms[0], ms[2]}, []broker.Message{a1, a3})
			bs, err := e.h.Before(ctx, "a", 0, 10)
			if err != nil || len(bs) != 3 {
				t.Fatalf("Before(a, 0, 10) = %v, %v; want a1, poison, a3", texts(bs), err)
			}
		})
	}
}

// TestHistoryRoomsBeyondOneBatch checks Rooms with more rooms than one
// multi-subject get may ask for (1024).
func TestHistoryRoomsBeyondOneBatch(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	const n = 1100
	for i := range n {
		if err := e.nc.Publish(broker.RoomSubject(fmt.Sprintf("r%d", i)), []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		rooms, err := e.h.Rooms(testContext(t))
		if err != nil {
			return err
		}
		if len(rooms) != n {
			return fmt.Errorf("%d rooms", len(rooms))
		}
		for room, st := range rooms {
			if st.Messages != 1 || st.LastSeq == 0 || st.LastTime.IsZero() {
				return fmt.Errorf("room %s: %+v", room, st)
			}
		}
		return nil
	})
}

// Reading a room's history makes no STREAM.INFO request: a page, a
// replay, a position and a single message are direct gets only, so a
// busy gateway does not load the stream's leader with info requests.
func TestHistoryReadsAskForNoStreamInfo(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	ctx := testContext(t)
	var seqs []uint64
	for i := range 5 {
		for _, room := range []string{"a", "b"} {
			m, _, err := e.h.Publish(ctx, broker.Message{ID: broker.NewID(), Room: room, User: "u", Text: fmt.Sprint(room, i), TS: time.Now()}, "")
			if err != nil {
				t.Fatal(err)
			}
			if room == "a" {
				seqs = append(seqs, m.Seq)
			}
		}
	}
	infos, err := e.nc.SubscribeSync("$JS.API.STREAM.INFO.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	page, err := e.h.Before(ctx, "a", 0, 3)
	if err != nil || len(page) != 3 || page[0].Text != "a2" || page[2].Text != "a4" {
		t.Fatalf("newest page: %v, %v", page, err)
	}
	if page, err = e.h.Before(ctx, "a", seqs[2], 10); err != nil || len(page) != 2 || page[1].Text != "a1" {
		t.Fatalf("page before a2: %v, %v", page, err)
	}
	if page, err = e.h.Before(ctx, "empty", 0, 10); err != nil || len(page) != 0 {
		t.Fatalf("page of an empty room: %v, %v", page, err)
	}
	if _, _, err := e.h.After(ctx, "a", seqs[0], 10); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.LastSeq(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Get(ctx, "a", seqs[1]); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := infos.Pending(); n != 0 {
		msg, _ := infos.NextMsg(0)
		t.Fatalf("history reads made %d STREAM.INFO requests (first on %s)", n, msg.Subject)
	}
}
