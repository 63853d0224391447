package clustertest_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/brokertest"
	"github.com/chatscalable/chatscalable/gateway/internal/clustertest"
	"github.com/chatscalable/chatscalable/gateway/internal/ssetest"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/nats-io/nats.go/jetstream"
)

// bucketReplicas returns the replication factor of a key-value bucket.
func bucketReplicas(t *testing.T, natsURL, bucket string) int {
	t.Helper()
	js := jetStreamAt(t, natsURL)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	return st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas
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

	// The leader bucket must outlive any one node, or a crash of the node
	// holding it leaves presence without a leader (and without events).
	if n := bucketReplicas(t, gws[0].NATSURL, presence.LeaderBucket); n != 3 {
		t.Fatalf("presence leader bucket has %d replicas on a 3-node mesh, want 3", n)
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
// once and counts agree; when the leading replica is killed, the other
// carries on.
func TestTwoPresenceReplicas(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 3)
	p1 := clustertest.StartService(t, clustertest.PresencePkg, "presence-1", bs.URLs)
	p2 := clustertest.StartService(t, clustertest.PresencePkg, "presence-2", bs.URLs)
	a := clustertest.StartGateway(t, "gw-a", "--nats-url", bs.URLs)
	b := clustertest.StartGateway(t, "gw-b", "--nats-url", bs.URLs)
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

	leading := regexp.MustCompile(`msg="leading presence"`)
	leader, other := p1, p2
	brokertest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		switch {
		case leading.MatchString(p1.Log()):
		case leading.MatchString(p2.Log()):
			leader, other = p2, p1
		default:
			return errors.New("no presence replica leads yet")
		}
		return nil
	})
	leader.Kill()
	other.WaitLog(t, leading, 15*time.Second)
	ssetest.Open(t, b.URL+"/rooms/lobby/events?user=cy", nil)
	expectPresence(t, "watcher", watch, join("cy", "lobby"))
	clustertest.WaitMembers(t, a.URL, "lobby", map[string]int{"ana": 1, "bo": 1, "cy": 1, "watcher": 1}, wait)
	if strings.Count(leader.Log()+other.Log(), "leading presence") < 2 {
		t.Errorf("leadership did not move")
	}
}
