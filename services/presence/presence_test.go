package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A replica that starts asks the gateways for their state instead of
// waiting for their next heartbeat. The gateway here only ever answers
// that question, so the replica can learn its listener from nothing else.
func TestNewReplicaAsksGatewaysForTheirState(t *testing.T) {
	node := nodetest.StartNode(t)
	gw := nodetest.Connect(t, node.ClientURL())
	state, _ := json.Marshal(broker.PresenceReport{
		Type: broker.ReportState, Gateway: "gw-quiet",
		Conns: []broker.PresenceConn{{ID: "c1", Room: "lobby", User: "ana"}},
	})
	if _, err := gw.Subscribe(broker.PresenceSyncSubject, func(*nats.Msg) {
		_ = gw.Publish(broker.PresenceReportPrefix+"gw-quiet", state)
	}); err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}

	nc := nodetest.Connect(t, node.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := presence.Start(ctx, nc, presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })

	req, _ := json.Marshal(broker.MembersRequest{Room: "lobby"})
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		msg, err := nc.Request(broker.PresenceMembersSubject, req, time.Second)
		if err != nil {
			return err
		}
		var reply broker.MembersReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil {
			return err
		}
		if len(reply.Members) != 1 || reply.Members[0].User != "ana" {
			return fmt.Errorf("members %+v, want ana", reply.Members)
		}
		return nil
	})
}

// startReplica starts a presence replica on a connection of its own.
func startReplica(t *testing.T, url string, o presence.Options) *presence.Service {
	t.Helper()
	nc := nodetest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := presence.Start(ctx, nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

// gateway publishes presence reports as a gateway named name.
// gateway plays a gateway's side of presence: it reports joins and
// leaves, and with answerSync it answers a replica's sync request with
// the state of its connections, as a real gateway does. A report and the
// state it changes are published under one lock, so the order on the
// connection is the order of the changes.
type gateway struct {
	t    *testing.T
	nc   *nats.Conn
	name string
	mu   *sync.Mutex
	// conns, once answerSync made it, is the gateway's connections by id.
	conns map[string]broker.PresenceConn
}

func newGateway(t *testing.T, nc *nats.Conn, name string) *gateway {
	return &gateway{t: t, nc: nc, name: name, mu: &sync.Mutex{}}
}

// answerSync makes g answer sync requests with its connections, starting
// with initial (report names the state report).
func (g *gateway) answerSync(report string, initial ...broker.PresenceConn) {
	g.t.Helper()
	g.mu.Lock()
	g.conns = map[string]broker.PresenceConn{}
	for _, c := range initial {
		g.conns[c.ID] = c
	}
	g.mu.Unlock()
	if _, err := g.nc.Subscribe(broker.PresenceSyncSubject, func(*nats.Msg) {
		g.mu.Lock()
		defer g.mu.Unlock()
		var conns []broker.PresenceConn
		for _, c := range g.conns {
			conns = append(conns, c)
		}
		g.publish(broker.PresenceReport{Type: broker.ReportState, Report: report, Conns: conns})
	}); err != nil {
		g.t.Fatal(err)
	}
	if err := g.nc.Flush(); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) report(r broker.PresenceReport) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns != nil && r.Conn != nil {
		switch r.Type {
		case broker.ReportJoin:
			g.conns[r.Conn.ID] = *r.Conn
		case broker.ReportLeave:
			delete(g.conns, r.Conn.ID)
		}
	}
	g.publish(r)
}

// publish sends r; the caller holds g.mu.
func (g *gateway) publish(r broker.PresenceReport) {
	r.Gateway = g.name
	data, _ := json.Marshal(r)
	if err := g.nc.Publish(broker.PresenceReportPrefix+g.name, data); err != nil {
		g.t.Error(err)
	}
}

func (g *gateway) join(id, room, user string) {
	g.t.Helper()
	g.report(broker.PresenceReport{Type: broker.ReportJoin, Conn: &broker.PresenceConn{ID: id, Room: room, User: user}})
}

func (g *gateway) leave(id string) {
	g.t.Helper()
	g.report(broker.PresenceReport{Type: broker.ReportLeave, Conn: &broker.PresenceConn{ID: id}})
}

// expectEvents reads the next presence events of sub and fails unless they
// are want, in order.
func expectEvents(t *testing.T, sub *nats.Subscription, want ...broker.PresenceEvent) {
	t.Helper()
	for i, w := range want {
		msg, err := sub.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("event %d of %v: %v", i, want, err)
		}
		var got broker.PresenceEvent
		if err := json.Unmarshal(msg.Data, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("event %d is %+v, want %+v (all: %v)", i, got, w, want)
		}
	}
}

// storedEvents is how many presence changes the presence stream holds.
func storedEvents(t *testing.T, nc *nats.Conn) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, broker.PresenceStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func pev(typ, user string) broker.PresenceEvent {
	return broker.PresenceEvent{Type: typ, User: user, Room: "lobby"}
}

// TestEveryReplicaAnnouncesOnce: three replicas all publish every change,
// and each reaches the room's listeners once, also while replicas stop.
func TestEveryReplicaAnnouncesOnce(t *testing.T) {
	node := nodetest.StartNode(t)
	var replicas []*presence.Service
	for range 3 {
		replicas = append(replicas, startReplica(t, node.ClientURL(), presence.Options{WarmUp: 200 * time.Millisecond}))
	}
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for i, p := range replicas {
			if !p.Warm() {
				return fmt.Errorf("replica %d is not warm", i)
			}
		}
		return nil
	})
	nc := nodetest.Connect(t, node.ClientURL())
	events := nodetest.SubscribeSync(t, nc, broker.PresenceEventSubject("lobby"))
	gw := newGateway(t, nodetest.Connect(t, node.ClientURL()), "gw-1")
	gw.report(broker.PresenceReport{Type: broker.ReportState, Report: "s1"})
	gw.join("c1", "lobby", "ana")
	gw.join("c2", "lobby", "ana")
	gw.leave("c1")
	gw.leave("c2")
	gw.join("c3", "lobby", "bo")
	expectEvents(t, events, pev("join", "ana"), pev("leave", "ana"), pev("join", "bo"))

	// Replicas stop while users come and go: the others announce.
	stopped := make(chan error, 1)
	go func() { stopped <- replicas[0].Stop() }()
	gw.join("c4", "lobby", "cy")
	gw.leave("c3")
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].Stop(); err != nil {
		t.Fatal(err)
	}
	gw.join("c5", "lobby", "dee")
	expectEvents(t, events, pev("join", "cy"), pev("leave", "bo"), pev("join", "dee"))
	if n := storedEvents(t, nc); n != 6 {
		t.Errorf("the presence stream holds %d changes, want 6", n)
	}
	if msg, err := events.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("an extra event: %s", msg.Data)
	}
}

// TestChangesDuringWarmUpAreAnnouncedOnce: replicas that all start at
// once (a cluster's first start) announce the changes of their warm-up
// when it ends, once, but not the members they learn from a gateway's
// state, who were there before.
func TestChangesDuringWarmUpAreAnnouncedOnce(t *testing.T) {
	node := nodetest.StartNode(t)
	gw := newGateway(t, nodetest.Connect(t, node.ClientURL()), "gw-old")
	// Each replica asks for the state when it starts: a state answered to
	// the second after the joins below must hold them, as a real
	// gateway's does (a fixed one, without them, read as their leave).
	gw.answerSync("s1", broker.PresenceConn{ID: "c0", Room: "lobby", User: "old"})
	nc := nodetest.Connect(t, node.ClientURL())
	events := nodetest.SubscribeSync(t, nc, broker.PresenceEventSubject("lobby"))
	const warmUp = 2 * time.Second
	a := startReplica(t, node.ClientURL(), presence.Options{WarmUp: warmUp})
	b := startReplica(t, node.ClientURL(), presence.Options{WarmUp: warmUp})
	started := time.Now()
	req, _ := json.Marshal(broker.MembersRequest{Room: "lobby"})
	nodetest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		msg, err := nc.Request(broker.PresenceMembersSubject, req, time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(msg.Data), `"old"`) {
			return fmt.Errorf("members %s", msg.Data)
		}
		return nil
	})
	// Both replicas heard gw-old's state; new users come and go.
	gw.join("c1", "lobby", "ana")
	gw.join("c2", "lobby", "bo")
	gw.leave("c2")
	if a.Warm() || b.Warm() {
		t.Fatalf("a replica warmed up within %s; the test needs the changes to fall in the warm-up", time.Since(started))
	}
	expectEvents(t, events, pev("join", "ana"), pev("join", "bo"), pev("leave", "bo"))
	gw.join("c3", "lobby", "cy")
	expectEvents(t, events, pev("join", "cy"))
	if n := storedEvents(t, nc); n != 4 {
		t.Errorf("the presence stream holds %d changes, want 4", n)
	}
}
