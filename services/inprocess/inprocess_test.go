package inprocess_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/services/inprocess"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// instance returns the id of the instance of a micro service that answers
// an INFO request, or "" if none does.
func instance(t *testing.T, nc *nats.Conn, service string) string {
	t.Helper()
	msg, err := nc.Request("$SRV.INFO."+service, nil, 2*time.Second)
	if err != nil {
		return ""
	}
	var info struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatalf("info of %s: %v", service, err)
	}
	return info.ID
}

// A service that cannot start leaves the other running, and the next call
// starts only the one that failed: a presence replica is never restarted
// (and warmed up again) because the rooms service's bucket was slow.
func TestOneServiceFailingLeavesTheOtherRunning(t *testing.T) {
	n := nodetest.StartNode(t)
	nc := nodetest.Connect(t, n.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A stream in the way of the rooms service's bucket, with a storage
	// type the bucket cannot be changed to: the rooms service fails.
	blocker := "KV_" + rooms.TopicsBucket
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: blocker, Subjects: []string{"$KV." + rooms.TopicsBucket + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}

	start := inprocess.Starter(inprocess.Options{Version: "test"})
	stop1, err := start(ctx, nc, 1)
	if err == nil {
		t.Fatal("the rooms service started in spite of the stream in its way")
	}
	if stop1 == nil {
		t.Fatalf("no stop for the presence service, which started: %v", err)
	}
	t.Cleanup(func() { _ = stop1() })
	presenceID := instance(t, nc, "chat-presence")
	if presenceID == "" {
		t.Fatalf("the presence service does not answer after the rooms service failed (%v)", err)
	}
	if id := instance(t, nc, "chat-rooms"); id != "" {
		t.Fatalf("a rooms service answers: %s", id)
	}

	if err := js.DeleteStream(ctx, blocker); err != nil {
		t.Fatal(err)
	}
	stop2, err := start(ctx, nc, 1)
	if err != nil || stop2 == nil {
		t.Fatalf("second start: %v", err)
	}
	t.Cleanup(func() { _ = stop2() })
	if id := instance(t, nc, "chat-rooms"); id == "" {
		t.Fatal("the rooms service does not answer after the second start")
	}
	if id := instance(t, nc, "chat-presence"); id != presenceID {
		t.Fatalf("presence instance %q after the second start, want the first one, %q, still running alone", id, presenceID)
	}
	// Everything runs: a third call starts nothing.
	if stop3, err := start(ctx, nc, 1); stop3 != nil || err != nil {
		t.Fatalf("third start = %v, %v; want nothing to do", stop3 != nil, err)
	}
}
