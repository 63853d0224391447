package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/brokertest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/gateway/internal/ssetest"
)

func fastPresence(o *gateway.Options) { o.PresenceWarmUp = 100 * time.Millisecond }

// nextPresence returns the next presence event on s that is not about a
// probe user, skipping other events.
func nextPresence(t *testing.T, s *ssetest.Stream) broker.PresenceEvent {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ev, err := s.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a presence event: %v", err)
		}
		if ev.Event != "presence" {
			continue
		}
		var e broker.PresenceEvent
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			t.Fatalf("presence data %q: %v", ev.Data, err)
		}
		if !strings.HasPrefix(e.User, "probe") {
			return e
		}
	}
}

// waitForAnnouncements waits until presence events reach watcher (a
// listener of room): a presence replica leads only after a warm-up.
func waitForAnnouncements(t *testing.T, base, room string, watcher *ssetest.Stream) {
	t.Helper()
	brokertest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		p, err := ssetest.Dial(base+"/rooms/"+room+"/events?user=probe", nil)
		if err != nil {
			return err
		}
		p.Close()
		for {
			ev, err := watcher.Next(300 * time.Millisecond)
			if err != nil {
				return fmt.Errorf("no presence event yet")
			}
			if ev.Event == "presence" && strings.Contains(ev.Data, `"user":"probe"`) {
				// Drain the probe's leave too, so it is not mistaken later.
				for ev.Event != "presence" || !strings.Contains(ev.Data, `"leave"`) {
					if ev, err = watcher.Next(wait); err != nil {
						return err
					}
				}
				return nil
			}
		}
	})
}

func membersOf(t *testing.T, base, room string) map[string]int {
	t.Helper()
	r := do(t, http.MethodGet, base+"/rooms/"+room+"/members", "", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("members: %d %s", r.status, r.body)
	}
	var reply broker.MembersReply
	if err := json.Unmarshal(r.body, &reply); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range reply.Members {
		out[m.User] = m.Connections
	}
	return out
}

func waitMembers(t *testing.T, base, room string, want map[string]int) {
	t.Helper()
	brokertest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		got := membersOf(t, base, room)
		delete(got, "probe")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("members %v, want %v", got, want)
		}
		return nil
	})
}

func TestPresenceInTheQuickstart(t *testing.T) {
	g := startGateway(t, "gw-p", "", fastPresence)
	bo := ssetest.Open(t, g.URL()+"/rooms/lobby/events?user=bo", nil)
	waitForAnnouncements(t, g.URL(), "lobby", bo)
	waitMembers(t, g.URL(), "lobby", map[string]int{"bo": 1})

	tab1 := ssetest.Open(t, g.URL()+"/rooms/lobby/events?user=ana", nil)
	if e := nextPresence(t, bo); e != (broker.PresenceEvent{Type: "join", User: "ana", Room: "lobby"}) {
		t.Fatalf("got %+v, want ana joining", e)
	}
	tab2 := ssetest.Open(t, g.URL()+"/listen?room=lobby&user=ana", nil)
	waitMembers(t, g.URL(), "lobby", map[string]int{"ana": 2, "bo": 1})
	tab1.Close()
	waitMembers(t, g.URL(), "lobby", map[string]int{"ana": 1, "bo": 1})
	tab2.Close()
	// The first presence event after ana's join is her leave: her second
	// tab and its closing announced nothing.
	if e := nextPresence(t, bo); e != (broker.PresenceEvent{Type: "leave", User: "ana", Room: "lobby"}) {
		t.Fatalf("got %+v, want ana leaving", e)
	}
	waitMembers(t, g.URL(), "lobby", map[string]int{"bo": 1})

	r := do(t, http.MethodGet, g.URL()+"/rooms/lobby/events?user="+strings.Repeat("u", 65), "", nil, nil)
	if r.status != http.StatusBadRequest || r.errorCode() != "invalid_user" {
		t.Errorf("listen with a bad user: %d %s", r.status, r.body)
	}
}

func TestWithoutServicesDirectoryAnswers503AndChatWorks(t *testing.T) {
	node := brokertest.StartNode(t)
	g := startGateway(t, "gw-alone", node.ClientURL()) // external NATS: services off
	for _, p := range []string{"/rooms", "/rooms/lobby/members", "/rooms/lobby"} {
		start := time.Now()
		r := do(t, http.MethodGet, g.URL()+p, "", nil, nil)
		if r.status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("GET %s took %s", p, d)
		}
	}
	r := do(t, http.MethodPut, g.URL()+"/rooms/lobby", "application/json", strings.NewReader(`{"topic":"x"}`), nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("PUT /rooms/lobby: %d %s", r.status, r.body)
	}
	s := ssetest.Open(t, g.URL()+"/rooms/lobby/events?user=ana", nil)
	postJSON(t, g.URL(), "lobby", "ana", "still chatting")
	expectMessage(t, s, "ana", "still chatting")
}
