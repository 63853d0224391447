package broker_test

import (
	"testing"

	"github.com/chatscalable/chatscalable/broker"
)

// TestHolds: Holds says which positions hold a message of a room; a "not
// found" from a direct get is confirmed with the stream's leader, whose
// answer for a position past the end, or of another room, is no.
func TestHolds(t *testing.T) {
	e := newHistoryEnv(t, broker.HistoryConfig{})
	ctx := testContext(t)
	a, _, err := e.h.Publish(ctx, newMessage("held-a", "one"), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := e.h.Publish(ctx, newMessage("held-b", "two"), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		room string
		seq  uint64
		want bool
	}{
		{"held-a", a.Seq, true},
		{"held-b", b.Seq, true},
		{"held-a", b.Seq, false},       // another room's message
		{"held-a", b.Seq + 100, false}, // past the end: the leader says no
	} {
		got, err := e.h.Holds(ctx, c.room, c.seq)
		if err != nil || got != c.want {
			t.Errorf("Holds(%s, %d) = %v, %v; want %v", c.room, c.seq, got, err, c.want)
		}
	}
	stream, err := e.h.JetStream().Stream(ctx, broker.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, a.Seq); err != nil {
		t.Fatal(err)
	}
	if got, err := e.h.Holds(ctx, "held-a", a.Seq); err != nil || got {
		t.Errorf("Holds of a deleted message = %v, %v; want false", got, err)
	}
}
