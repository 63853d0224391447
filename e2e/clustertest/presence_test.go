package clustertest_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/nats-io/nats.go"
)

// streamReplicas returns the replication factor of a stream, asked on nc.
func streamReplicas(t *testing.T, nc *nats.Conn, stream string) int {
	t.Helper()
	js := jetStreamOn(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return s.CachedInfo().Config.Replicas
}

func expectPresence(t *testing.T, who string, s *ssetest.Stream, want ssetest.PresenceEvent) {
	t.Helper()
	got, err := s.NextPresence(wait)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if got != want {
		t.Fatalf("%s: presence %+v, want %+v", who, got, want)
	}
}

func join(user, room string) ssetest.PresenceEvent {
	return ssetest.PresenceEvent{Type: "join", User: user, Room: room}
}

func leave(user, room string) ssetest.PresenceEvent {
	return ssetest.PresenceEvent{Type: "leave", User: user, Room: room}
}

// TestPresenceAcrossTheMesh: every mesh node runs a replica of the
// presence service; a listener on one node is a member everywhere and is
// announced to listeners on the others, once.
func TestPresenceAcrossTheMesh(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	clustertest.WaitInstances(t, gws[0].NATSURL, "chat-presence", 3, 60*time.Second)
	watch := ssetest.Open(t, gws[2].URL+"/rooms/lobby/events?user=watcher", nil)
	ssetest.WaitForPresence(t, gws[0].URL+"/rooms/lobby/events", watch, 60*time.Second)

	tab1 := ssetest.Open(t, gws[0].URL+"/rooms/lobby/events?user=ana", nil)
	expectPresence(t, "watcher on gw-3", watch, join("ana", "lobby"))
	clustertest.WaitMembers(t, gws[2].URL, "lobby", map[string]int{"ana": 1, "watcher": 1}, wait)
	tab2 := ssetest.Open(t, gws[1].URL+"/rooms/lobby/events?user=ana", nil)
	clustertest.WaitMembers(t, gws[0].URL, "lobby", map[string]int{"ana": 2, "watcher": 1}, wait)
	tab1.Close()
	tab2.Close()
	expectPresence(t, "watcher on gw-3", watch, leave("ana", "lobby"))
	clustertest.WaitMembers(t, gws[1].URL, "lobby", map[string]int{"watcher": 1}, wait)
}

// TestPresenceOfACrashedGateway: the users of a gateway killed without a
// goodbye leave within 15 s, announced once.
func TestPresenceOfACrashedGateway(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	// A gateway starts its presence replica once the cluster lets it make
	// the service's bucket; the survivors' replicas must be up before the
	// kill, or none is left that knew the crashed gateway's listeners.
	clustertest.WaitInstances(t, gws[0].NATSURL, "chat-presence", 3, 60*time.Second)
	watch := ssetest.Open(t, gws[0].URL+"/rooms/lobby/events?user=watcher", nil)
	ssetest.WaitForPresence(t, gws[1].URL+"/rooms/lobby/events", watch, 60*time.Second)
	ssetest.Open(t, gws[2].URL+"/rooms/lobby/events?user=ana", nil)
	ssetest.Open(t, gws[2].URL+"/rooms/lobby/events?user=bo", nil)
	expectPresence(t, "watcher", watch, join("ana", "lobby"))
	expectPresence(t, "watcher", watch, join("bo", "lobby"))

	// The presence stream must outlive any one node, or a crash of the
	// node holding it leaves presence without events.
	if n := streamReplicas(t, nodetest.Connect(t, gws[0].NATSURL), broker.PresenceStream); n != 3 {
		t.Fatalf("presence stream has %d replicas on a 3-node mesh, want 3", n)
	}
	gws[2].Proc.Kill() // kill -9: no goodbye
	killed := time.Now()
	clustertest.WaitMembers(t, gws[0].URL, "lobby", map[string]int{"watcher": 1}, 15*time.Second)
	t.Logf("members gone %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	left := map[string]bool{}
	for range 2 {
		e, err := watch.NextPresence(15*time.Second - time.Since(killed) + time.Second)
		if err != nil || e.Type != "leave" {
			t.Fatalf("presence %+v, %v; want leaves of ana and bo", e, err)
		}
		left[e.User] = true
	}
	if !left["ana"] || !left["bo"] {
		t.Fatalf("leaves announced for %v", left)
	}
	// Nothing is announced twice: the next event is a new join.
	ssetest.Open(t, gws[1].URL+"/rooms/lobby/events?user=cy", nil)
	expectPresence(t, "watcher", watch, join("cy", "lobby"))
}

// TestTwoPresenceReplicas: with two chat-presence processes, events go out
// once and counts agree; when one is killed while users join, the other
// announces them, once.
func TestTwoPresenceReplicas(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 3)
	p1 := bs.StartService(t, clustertest.PresencePkg, "presence-1")
	p2 := bs.StartService(t, clustertest.PresencePkg, "presence-2")
	a := clustertest.StartGateway(t, "gw-a", bs.GatewayArgs()...)
	b := clustertest.StartGateway(t, "gw-b", bs.GatewayArgs()...)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	watch := ssetest.Open(t, a.URL+"/rooms/lobby/events?user=watcher", nil)
	ssetest.WaitForPresence(t, b.URL+"/rooms/lobby/events", watch, 60*time.Second)

	ssetest.Open(t, b.URL+"/rooms/lobby/events?user=ana", nil)
	expectPresence(t, "watcher", watch, join("ana", "lobby"))
	ssetest.Open(t, b.URL+"/rooms/lobby/events?user=bo", nil)
	// The next event is bo's join: ana's was not announced twice.
	expectPresence(t, "watcher", watch, join("bo", "lobby"))
	want := map[string]int{"ana": 1, "bo": 1, "watcher": 1}
	clustertest.WaitMembers(t, a.URL, "lobby", want, wait)
	for range 10 { // requests spread over both replicas; all agree
		got, err := clustertest.Members(b.URL, "lobby")
		if err != nil || len(got) != 3 || got["ana"] != 1 || got["bo"] != 1 {
			t.Fatalf("members %v, %v; want %v", got, err, want)
		}
	}
	// Both replicas warm, so each announces every change by itself.
	warm := regexp.MustCompile(`msg="presence warm"`)
	p1.WaitLog(t, warm, wait)
	p2.WaitLog(t, warm, wait)

	// Kill one replica while users join: no handover, nothing lost.
	cy := ssetest.Open(t, b.URL+"/rooms/lobby/events?user=cy", nil)
	p1.Kill()
	ssetest.Open(t, a.URL+"/rooms/lobby/events?user=dee", nil)
	expectPresence(t, "watcher", watch, join("cy", "lobby"))
	expectPresence(t, "watcher", watch, join("dee", "lobby"))
	cy.Close()
	expectPresence(t, "watcher", watch, leave("cy", "lobby"))
	clustertest.WaitMembers(t, a.URL, "lobby", map[string]int{"ana": 1, "bo": 1, "dee": 1, "watcher": 1}, wait)
}

// TestPresenceRightAfterTheMeshIsReady: a listener that joins a second
// after the mesh is ready, while the presence replicas are still warming
// up, is announced to the room's listeners on every node, once.
func TestPresenceRightAfterTheMeshIsReady(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	ready := time.Now()
	var watchers []*ssetest.Stream
	for _, g := range gws {
		watchers = append(watchers, ssetest.Open(t, g.URL+"/rooms/lobby/events?user=watch-"+g.Name, nil))
	}
	// The scenario, not a synchronisation: the join comes a second after
	// readiness, as in the report that lost it.
	time.Sleep(time.Until(ready.Add(time.Second)))
	ssetest.Open(t, gws[0].URL+"/rooms/lobby/events?user=ana", nil)
	for _, g := range gws {
		clustertest.WaitMembers(t, g.URL, "lobby", map[string]int{"ana": 1, "watch-gw-1": 1, "watch-gw-2": 1, "watch-gw-3": 1}, 30*time.Second)
	}
	// Each watcher gets the joins of ana and of the other watchers once;
	// a last join after all have seen ana's shows that no copy follows.
	seen := make([]map[string]int, len(watchers))
	read := func(until string) {
		t.Helper()
		for i, w := range watchers {
			if seen[i] == nil {
				seen[i] = map[string]int{}
			}
			for seen[i][until] == 0 {
				e, err := w.NextPresence(30 * time.Second)
				if err != nil {
					t.Fatalf("watcher on %s, after %v: %v", gws[i].Name, seen[i], err)
				}
				if e.Type != "join" || e.Room != "lobby" {
					t.Fatalf("watcher on %s: %+v", gws[i].Name, e)
				}
				seen[i][e.User]++
			}
		}
	}
	read("ana")
	ssetest.Open(t, gws[1].URL+"/rooms/lobby/events?user=bo", nil)
	read("bo")
	for i := range watchers {
		if seen[i]["ana"] != 1 {
			t.Errorf("watcher on %s saw ana join %d times", gws[i].Name, seen[i]["ana"])
		}
		for u, n := range seen[i] {
			if n != 1 {
				t.Errorf("watcher on %s saw %s join %d times", gws[i].Name, u, n)
			}
		}
	}
}

// TestPresenceWhileItsStreamLeaderDies: the node leading the presence
// stream (and running a presence replica) is killed as a listener joins on
// another node; the join still reaches the room's listeners, once.
func TestPresenceWhileItsStreamLeaderDies(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	clustertest.WaitInstances(t, gws[0].NATSURL, "chat-presence", 3, 60*time.Second)
	leader := streamLeader(t, nodetest.Connect(t, gws[0].NATSURL), broker.PresenceStream)
	var victim *clustertest.Gateway
	var rest []*clustertest.Gateway
	for _, g := range gws {
		if g.Name == leader {
			victim = g
		} else {
			rest = append(rest, g)
		}
	}
	if victim == nil {
		t.Fatalf("presence stream leader %q is not a mesh node", leader)
	}
	watch := ssetest.Open(t, rest[0].URL+"/rooms/lobby/events?user=watcher", nil)
	ssetest.WaitForPresence(t, rest[1].URL+"/rooms/lobby/events", watch, 60*time.Second)

	victim.Proc.Kill()
	ssetest.Open(t, rest[1].URL+"/rooms/lobby/events?user=ana", nil)
	expectPresence(t, "watcher", watch, join("ana", "lobby"))
	ssetest.Open(t, rest[0].URL+"/rooms/lobby/events?user=bo", nil)
	// The next event is bo's join: ana's was not announced twice.
	expectPresence(t, "watcher", watch, join("bo", "lobby"))
}
