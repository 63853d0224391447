package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

const wait = 15 * time.Second

func publish(base, room, user, text string) (int, error) {
	b, _ := json.Marshal(map[string]string{"user": user, "text": text})
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/rooms/"+room+"/messages", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func mustPublish(t *testing.T, base, room, user, text string) {
	t.Helper()
	status, err := publish(base, room, user, text)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("publish %q on %s: %d %v", text, base, status, err)
	}
}

// expectTexts reads messages from s until it has seen every text in want
// (in any order across publishers), failing after timeout.
func expectTexts(t *testing.T, who string, s *ssetest.Stream, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	deadline := time.Now().Add(wait)
	for len(missing) > 0 {
		m, _, err := s.NextMessage(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: still missing %v: %v", who, keys(missing), err)
		}
		delete(missing, m.Text)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkOneChat publishes one message on each gateway and checks that a
// listener on every gateway receives all of them.
func checkOneChat(t *testing.T, room string, gws []*clustertest.Gateway) {
	t.Helper()
	streams := make([]*ssetest.Stream, len(gws))
	for i, g := range gws {
		streams[i] = ssetest.Open(t, g.URL+"/rooms/"+room+"/events", nil)
	}
	var texts []string
	for _, g := range gws {
		text := "hello from " + g.Name
		mustPublish(t, g.URL, room, g.Name, text)
		texts = append(texts, text)
	}
	for i, s := range streams {
		expectTexts(t, "listener on "+gws[i].Name, s, texts...)
	}
}

func TestPeerMeshIsOneChat(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	checkOneChat(t, "mesh", gws)
	var node struct{ Nats string }
	resp, err := http.Get(gws[0].URL + "/node")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&node)
	resp.Body.Close()
	if node.Nats != "embedded" {
		t.Errorf("/node nats = %q, want embedded", node.Nats)
	}
}

func TestBrokersAndStatelessGatewaysAreOneChat(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 3)
	a := clustertest.StartGateway(t, "gw-a", bs.GatewayArgs()...)
	b := clustertest.StartGateway(t, "gw-b", bs.GatewayArgs()...)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	checkOneChat(t, "brokers", []*clustertest.Gateway{a, b})
}

// jetStreamOn returns a JetStream client on nc.
func jetStreamOn(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamLeader returns the name of the server leading a stream, asked
// on nc.
func streamLeader(t *testing.T, nc *nats.Conn, stream string) string {
	t.Helper()
	js := jetStreamOn(t, nc)
	var leader string
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if c := s.CachedInfo().Cluster; c == nil || c.Leader == "" {
			return fmt.Errorf("no leader of stream %s", stream)
		}
		leader = s.CachedInfo().Cluster.Leader
		return nil
	})
	return leader
}

func TestGatewayStartedBeforeTheBrokersBecomesReady(t *testing.T) {
	t.Parallel()
	bs := clustertest.PlanBrokers(t, 3)
	g := clustertest.StartGateway(t, "gw-early", bs.GatewayArgs()...)
	if err := g.Ready(); err == nil {
		t.Fatal("ready without any broker")
	}
	if status, _ := publish(g.URL, "lobby", "ana", "too early"); status != http.StatusServiceUnavailable {
		t.Fatalf("publish without brokers: %d, want 503", status)
	}
	bs.Start(t)
	g.WaitReady(t, 60*time.Second)
	checkOneChat(t, "early", []*clustertest.Gateway{g})

	// Readiness follows the state: every broker gone, then back.
	for _, b := range bs.Nodes {
		b.Proc.Kill()
	}
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if g.Ready() == nil {
			return fmt.Errorf("still ready with every broker killed")
		}
		return nil
	})
	bs.Start(t)
	g.WaitReady(t, 60*time.Second)
	checkOneChat(t, "early", []*clustertest.Gateway{g})
}
