package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/services/inprocess"
)

// fastPresence runs the in-process services with a short presence warm-up.
func fastPresence(o *gateway.Options) {
	o.StartServices = inprocess.Starter(inprocess.Options{PresenceWarmUp: 100 * time.Millisecond})
}

func nextPresence(t *testing.T, s *ssetest.Stream) ssetest.PresenceEvent {
	t.Helper()
	e, err := s.NextPresence(wait)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func waitMembers(t *testing.T, base, room string, want map[string]int) {
	t.Helper()
	clustertest.WaitMembers(t, base, room, want, wait)
}

func TestPresenceInTheQuickstart(t *testing.T) {
	g := startGateway(t, "gw-p", "", fastPresence)
	bo := ssetest.Open(t, g.URL()+"/rooms/lobby/events?user=bo", nil)
	ssetest.WaitForPresence(t, g.URL()+"/rooms/lobby/events", bo, 30*time.Second)
	waitMembers(t, g.URL(), "lobby", map[string]int{"bo": 1})

	tab1 := ssetest.Open(t, g.URL()+"/rooms/lobby/events?user=ana", nil)
	if e := nextPresence(t, bo); e != (ssetest.PresenceEvent{Type: "join", User: "ana", Room: "lobby"}) {
		t.Fatalf("got %+v, want ana joining", e)
	}
	tab2 := ssetest.Open(t, g.URL()+"/listen?room=lobby&user=ana", nil)
	waitMembers(t, g.URL(), "lobby", map[string]int{"ana": 2, "bo": 1})
	tab1.Close()
	waitMembers(t, g.URL(), "lobby", map[string]int{"ana": 1, "bo": 1})
	tab2.Close()
	// The first presence event after ana's join is her leave: her second
	// tab and its closing announced nothing.
	if e := nextPresence(t, bo); e != (ssetest.PresenceEvent{Type: "leave", User: "ana", Room: "lobby"}) {
		t.Fatalf("got %+v, want ana leaving", e)
	}
	waitMembers(t, g.URL(), "lobby", map[string]int{"bo": 1})

	r := do(t, http.MethodGet, g.URL()+"/rooms/lobby/events?user="+strings.Repeat("u", 65), "", nil, nil)
	if r.status != http.StatusBadRequest || r.errorCode() != "invalid_user" {
		t.Errorf("listen with a bad user: %d %s", r.status, r.body)
	}
}

func TestWithoutServicesDirectoryAnswers503AndChatWorks(t *testing.T) {
	node := nodetest.StartNode(t)
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
