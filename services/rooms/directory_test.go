package rooms_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func TestListCountsAndOrdersByActivity(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	if got := list(t, e.nc); len(got) != 0 {
		t.Fatalf("empty history: list = %+v", got)
	}

	before := time.Now()
	e.publish(t, "alpha", "a1")
	e.publish(t, "beta", "b1")
	e.publish(t, "beta", "b2")
	e.publish(t, "gamma", "g1")
	e.publish(t, "gamma", "g2")
	e.publish(t, "gamma", "g3")
	e.publish(t, "alpha", "a2") // alpha is now the most recently active
	after := time.Now()

	got := list(t, e.nc)
	if want := []string{"alpha", "gamma", "beta"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("order = %v, want %v", names(got), want)
	}
	want := map[string]uint64{"alpha": 2, "beta": 2, "gamma": 3}
	for _, r := range got {
		if r.Messages != want[r.Room] {
			t.Errorf("%s: messages = %d, want %d", r.Room, r.Messages, want[r.Room])
		}
		if r.LastActivity == nil {
			t.Errorf("%s: no last activity", r.Room)
			continue
		}
		if r.LastActivity.Before(before.Add(-time.Second)) || r.LastActivity.After(after.Add(time.Second)) {
			t.Errorf("%s: last activity %v not within [%v, %v]", r.Room, r.LastActivity, before, after)
		}
		if r.Topic != "" || r.Members != nil {
			t.Errorf("%s: topic %q, members %v; want none", r.Room, r.Topic, r.Members)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].LastActivity.After(*got[i-1].LastActivity) {
			t.Errorf("%s is newer than %s but listed after it", got[i].Room, got[i-1].Room)
		}
	}

	// A message published with plain NATS (not acknowledged) is stored
	// asynchronously: wait for it to be counted.
	if err := e.nc.Publish(broker.RoomSubject("beta"), []byte("plain text")); err != nil {
		t.Fatal(err)
	}
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		got := list(t, e.nc)
		if len(got) == 0 || got[0].Room != "beta" || got[0].Messages != 3 {
			return fmt.Errorf("list = %+v; want beta first with 3 messages", got)
		}
		return nil
	})
}

func TestMembersWithoutPresence(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{PresenceTimeout: 100 * time.Millisecond})
	e.publish(t, "lobby", "hi")
	setTopic(t, e.nc, "quiet", "shh")

	check := func() {
		t.Helper()
		for _, r := range list(t, e.nc) {
			if r.Members != nil {
				t.Errorf("list: %s has members %d without presence", r.Room, *r.Members)
			}
		}
		if r := get(t, e.nc, "lobby"); r.Members != nil || r.Messages != 1 {
			t.Errorf("get lobby = %+v", r)
		}
		// The JSON leaves members out.
		msg := request(t, e.nc, broker.RoomsGetSubject, broker.RoomRequest{Room: "lobby"})
		if strings.Contains(string(msg.Data), "members") {
			t.Errorf("reply %s mentions members", msg.Data)
		}
	}
	// Nobody subscribed on the counts subject (no responders).
	check()

	// A presence service that never answers: the wait is bounded.
	silent := nodetest.Connect(t, e.node.ClientURL())
	nodetest.SubscribeSync(t, silent, broker.PresenceCountsSubject)
	start := time.Now()
	check()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("requests took %s with a silent presence service", d)
	}

	// A presence service answering with an error (the silent one still
	// listens but never answers first).
	broken := nodetest.Connect(t, e.node.ClientURL())
	fake, err := micro.AddService(broken, micro.Config{Name: "fake-presence", Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{Subject: broker.PresenceCountsSubject, Handler: micro.HandlerFunc(func(r micro.Request) {
			_ = r.Error("500", "boom", nil)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Stop() })
	if err := broken.Flush(); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestMembersFromPresence(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.publish(t, "lobby", "hi")
	e.publish(t, "empty", "hi")
	setTopic(t, e.nc, "quiet", "shh")

	presence := nodetest.Connect(t, e.node.ClientURL())
	requests := make(chan struct{}, 100)
	sub, err := presence.Subscribe(broker.PresenceCountsSubject, func(m *nats.Msg) {
		requests <- struct{}{}
		_ = m.Respond([]byte(`{"rooms":{"lobby":2}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := presence.Flush(); err != nil {
		t.Fatal(err)
	}

	got := list(t, e.nc)
	if len(requests) != 1 {
		t.Errorf("list made %d presence requests, want 1", len(requests))
	}
	want := map[string]int{"lobby": 2, "empty": 0, "quiet": 0}
	if len(got) != len(want) {
		t.Fatalf("list = %v", names(got))
	}
	for _, r := range got {
		if r.Members == nil || *r.Members != want[r.Room] {
			t.Errorf("%s: members = %v, want %d", r.Room, r.Members, want[r.Room])
		}
	}
	if r := get(t, e.nc, "lobby"); r.Members == nil || *r.Members != 2 {
		t.Errorf("get lobby: members = %v, want 2", r.Members)
	}
	if r := setTopic(t, e.nc, "lobby", "welcome"); r.Members == nil || *r.Members != 2 || r.Topic != "welcome" {
		t.Errorf("topic lobby reply = %+v", r)
	}
}

// TestHistoryRooms exercises broker.History.Rooms directly, which list is
// built on.
func TestHistoryRooms(t *testing.T) {
	e := newEnv(t, true)
	ctx := ctxT(t)
	got, err := e.hist.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("empty stream: rooms = %+v", got)
	}

	before := time.Now()
	e.publish(t, "a", "1")
	lastB := e.publish(t, "b", "1")
	e.publish(t, "c", "1")
	e.publish(t, "a", "2")
	lastA := e.publish(t, "a", "3")
	lastC := e.publish(t, "c", "2")
	after := time.Now()

	got, err = e.hist.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ n, last uint64 }{"a": {3, lastA}, "b": {1, lastB}, "c": {2, lastC}}
	if len(got) != len(want) {
		t.Fatalf("rooms = %+v", got)
	}
	for room, w := range want {
		st := got[room]
		if st.Messages != w.n || st.LastSeq != w.last {
			t.Errorf("%s: %+v, want %d messages, last seq %d", room, st, w.n, w.last)
		}
		if st.LastTime.Before(before.Add(-time.Second)) || st.LastTime.After(after.Add(time.Second)) {
			t.Errorf("%s: last time %v not within [%v, %v]", room, st.LastTime, before, after)
		}
	}
	if !got["c"].LastTime.After(got["a"].LastTime) || !got["a"].LastTime.After(got["b"].LastTime) {
		t.Errorf("last times out of order: %+v", got)
	}

	// Without the stream, Rooms fails with ErrStreamNotFound.
	if err := e.hist.JetStream().DeleteStream(ctx, broker.StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hist.Rooms(ctx); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Rooms without the stream: err = %v", err)
	}
}

// TestListReusesAnUnchangedDirectory: while no message or topic changes,
// listing again does not scan the rooms (no direct gets of their newest
// messages); any change is seen by the next list.
func TestListReusesAnUnchangedDirectory(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.publish(t, "alpha", "a1")
	e.publish(t, "beta", "b1")
	scans := nodetest.SubscribeSync(t, nodetest.Connect(t, e.node.ClientURL()), "$JS.API.DIRECT.GET."+broker.StreamName)
	count := func() int {
		t.Helper()
		n := 0
		for {
			if _, err := scans.NextMsg(200 * time.Millisecond); err != nil {
				return n
			}
			n++
		}
	}
	if got := names(list(t, e.nc)); !reflect.DeepEqual(got, []string{"beta", "alpha"}) {
		t.Fatalf("list = %v", got)
	}
	if n := count(); n == 0 {
		t.Fatal("the first list scanned nothing")
	}
	for range 5 {
		if got := names(list(t, e.nc)); !reflect.DeepEqual(got, []string{"beta", "alpha"}) {
			t.Fatalf("list = %v", got)
		}
	}
	if n := count(); n != 0 {
		t.Errorf("%d scans for lists of an unchanged directory", n)
	}
	e.publish(t, "alpha", "a2")
	if got := names(list(t, e.nc)); !reflect.DeepEqual(got, []string{"alpha", "beta"}) {
		t.Errorf("after a message, list = %v", got)
	}
	setTopic(t, e.nc, "gamma", "new")
	if got := names(list(t, e.nc)); !reflect.DeepEqual(got, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("after a topic, list = %v", got)
	}
}
