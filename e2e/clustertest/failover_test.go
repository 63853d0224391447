package clustertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// publisher publishes numbered messages on a gateway every interval until
// stopped, recording which were accepted (201).
type publisher struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	accepted []string
	failed   atomic.Int64
}

func startPublisher(g *clustertest.Gateway, room string, interval time.Duration, max int) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range max {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			text := fmt.Sprintf("m%05d", i)
			if status, err := publish(g.URL, room, "pub", text); err == nil && status == http.StatusCreated {
				p.mu.Lock()
				p.accepted = append(p.accepted, text)
				p.mu.Unlock()
			} else {
				p.failed.Add(1)
			}
		}
	}()
	return p
}

func (p *publisher) Stop() []string {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted...)
}

// snapshot returns the texts accepted so far.
func (p *publisher) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted...)
}

// lastAccepted returns the newest accepted text, or "".
func (p *publisher) lastAccepted() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.accepted) == 0 {
		return ""
	}
	return p.accepted[len(p.accepted)-1]
}

// receivesAfter waits until s delivers a message whose text sorts after
// mark (publisher texts are numbered) and returns how long that took.
func receivesAfter(t *testing.T, who string, s *ssetest.Stream, mark string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		m, _, err := s.NextMessage(timeout - time.Since(start))
		if err != nil {
			t.Fatalf("%s: no message after %s within %s: %v", who, mark, timeout, err)
		}
		if m.Text > mark {
			return time.Since(start)
		}
	}
}

// checkHistoryHolds checks that every accepted text is in the room's
// history: an acknowledged publish is never lost.
func checkHistoryHolds(t *testing.T, g *clustertest.Gateway, room string, accepted []string) {
	t.Helper()
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		have, err := historyTexts(g.URL, room)
		if err != nil {
			return err
		}
		for _, a := range accepted {
			if !have[a] {
				return fmt.Errorf("accepted message %s is not in history (%d messages)", a, len(have))
			}
		}
		return nil
	})
}

// historyTexts returns the texts of every message in a room's history,
// reading it page by page from the newest back.
func historyTexts(base, room string) (map[string]bool, error) {
	have := map[string]bool{}
	before := ""
	for {
		url := base + "/rooms/" + room + "/messages?limit=500"
		if before != "" {
			url += "&before=" + before
		}
		resp, err := http.Get(url)
		if err != nil {
			return nil, err
		}
		var page struct{ Messages []ssetest.Message }
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			have[m.Text] = true
		}
		if len(page.Messages) < 500 {
			return have, nil
		}
		before = page.Messages[0].Cursor // pages run oldest to newest
	}
}

// The demanding failure is the loss of the node leading the history
// stream: no message can be stored until the others elect a new leader.
func TestMeshSurvivesTheLossOfTheStreamLeader(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	leader := streamLeader(t, nodetest.Connect(t, gws[0].NATSURL), broker.StreamName)
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
		t.Fatalf("stream leader %q is not a mesh node", leader)
	}
	// Listeners follow the room as browsers do: should a gateway end a
	// stream it cannot keep whole, they resume from their cursor.
	f1 := ssetest.Follow(rest[0].URL + "/rooms/fail/events")
	defer f1.Stop()
	f2 := ssetest.Follow(rest[1].URL + "/rooms/fail/events")
	defer f2.Stop()
	p := startPublisher(rest[0], "fail", 20*time.Millisecond, 3000)
	defer p.Stop()
	followsPast(t, rest[0].Name, f1, "", wait)

	victim.Proc.Kill() // kill -9
	mark := p.lastAccepted()
	t.Logf("killed %s, the stream leader; %s delivers again after %s", victim.Name, rest[0].Name,
		followsPast(t, rest[0].Name, f1, mark, 10*time.Second))
	t.Logf("%s delivers again after %s", rest[1].Name, followsPast(t, rest[1].Name, f2, mark, 10*time.Second))

	victim.Restart(t)
	victim.WaitReady(t, 60*time.Second)
	l3 := ssetest.Open(t, victim.URL+"/rooms/fail/events", nil)
	receivesAfter(t, "restarted "+victim.Name, l3, p.lastAccepted(), wait)
	accepted := p.Stop()
	t.Logf("%d publishes accepted, %d refused with an error during the failover; listeners reconnected %d and %d times",
		len(accepted), p.failed.Load(), f1.Reconnects(), f2.Reconnects())
	checkHistoryHolds(t, victim, "fail", accepted)
	for _, f := range []*ssetest.Follower{f1, f2} {
		followedWhole(t, f, accepted)
	}
}

// followsPast waits until f has received a message published after mark
// and returns how long that took.
func followsPast(t *testing.T, who string, f *ssetest.Follower, mark string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		msgs := f.Messages()
		if len(msgs) > 0 && msgs[len(msgs)-1].Text > mark {
			return nil
		}
		return fmt.Errorf("%s: no message after %q yet", who, mark)
	})
	return time.Since(start)
}

// followedWhole checks that f received every accepted message from its
// first one on, in order, with no duplicate. (A publish refused with an
// error may still have been stored, so f may hold texts that are not in
// accepted; what was published before f first connected it never asked
// for.)
func followedWhole(t *testing.T, f *ssetest.Follower, accepted []string) {
	t.Helper()
	last := accepted[len(accepted)-1]
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if msgs := f.Messages(); len(msgs) == 0 || msgs[len(msgs)-1].Text < last {
			return fmt.Errorf("listener has not reached %s", last)
		}
		return nil
	})
	msgs := f.Messages()
	got := map[string]bool{}
	prev := ""
	for _, m := range msgs {
		if m.Text <= prev {
			t.Fatalf("listener got %s after %s: out of order or duplicated", m.Text, prev)
		}
		prev = m.Text
		got[m.Text] = true
	}
	for _, a := range accepted {
		if a >= msgs[0].Text && !got[a] {
			t.Fatalf("listener never received accepted message %s", a)
		}
	}
}

func TestGatewaysSurviveTheLossOfABroker(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 3)
	// Create the history stream as a gateway would, to learn its leader
	// before choosing where the gateways attach.
	nc := bs.Connect(t, node.RoleGateway)
	h, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatal(err)
	}
	nodetest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := h.Ensure(ctx, broker.HistoryConfig{ClusterSize: 3})
		return err
	})
	nc.Close()
	leader := streamLeader(t, bs.Connect(t, node.RoleAdmin), broker.StreamName)
	victim := bs.Nodes[0]
	for _, n := range bs.Nodes {
		if n.Name == leader {
			victim = n
		}
	}
	// Gateway A is attached to the stream leader, so it loses both its
	// connection and the stream leader, and must fail over to a broker it
	// only knows from the cluster's gossip; B is attached elsewhere.
	var others []string
	for _, n := range bs.Nodes {
		if n != victim {
			others = append(others, n.ClientURL)
		}
	}
	a := clustertest.StartGateway(t, "gw-a", bs.GatewayArgs(victim.ClientURL)...)
	b := clustertest.StartGateway(t, "gw-b", bs.GatewayArgs(others...)...)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	fa := ssetest.Follow(a.URL + "/rooms/fail/events")
	defer fa.Stop()
	fb := ssetest.Follow(b.URL + "/rooms/fail/events")
	defer fb.Stop()
	p := startPublisher(b, "fail", 20*time.Millisecond, 3000)
	defer p.Stop()
	followsPast(t, "gw-a", fa, "", wait)

	if s := natsServerOf(t, a); s != victim.Name {
		t.Fatalf("gw-a is on %s, want %s", s, victim.Name)
	}
	victim.Proc.Kill() // kill -9
	mark := p.lastAccepted()
	t.Logf("killed %s, the stream leader and gw-a's server", victim.Name)
	t.Logf("gw-b delivers again after %s", followsPast(t, "gw-b", fb, mark, 10*time.Second))
	t.Logf("gw-a delivers again after %s", followsPast(t, "gw-a", fa, mark, 10*time.Second))
	nodetest.CheckFor(t, 5*time.Second, 50*time.Millisecond, a.Ready)
	if s := natsServerOf(t, a); s == victim.Name {
		t.Fatalf("gw-a still reports the killed broker %s", s)
	}

	// The killed broker rejoins; a gateway attached only to it receives.
	victim.Start(t)
	c := clustertest.StartGateway(t, "gw-c", bs.GatewayArgs(victim.ClientURL)...)
	c.WaitReady(t, 60*time.Second)
	if s := natsServerOf(t, c); s != victim.Name {
		t.Fatalf("gw-c is on %s, want %s", s, victim.Name)
	}
	lc := ssetest.Open(t, c.URL+"/rooms/fail/events", nil)
	receivesAfter(t, "gw-c on the restarted broker", lc, p.lastAccepted(), wait)
	accepted := p.Stop()
	t.Logf("%d publishes accepted, %d refused with an error during the failover; listeners reconnected %d and %d times",
		len(accepted), p.failed.Load(), fa.Reconnects(), fb.Reconnects())
	checkHistoryHolds(t, c, "fail", accepted)
	for _, f := range []*ssetest.Follower{fa, fb} {
		followedWhole(t, f, accepted)
	}
}

func natsServerOf(t *testing.T, g *clustertest.Gateway) string {
	t.Helper()
	resp, err := http.Get(g.URL + "/node")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var node struct {
		NATSServer string `json:"nats_server"`
	}
	json.NewDecoder(resp.Body).Decode(&node)
	return node.NATSServer
}

// collect reads every message of s in the background until the stream
// ends; ended says why it did, if it has.
func collect(s *ssetest.Stream) (received func() []ssetest.Message, ended func() error) {
	var mu sync.Mutex
	var got []ssetest.Message
	var end error
	go func() {
		for {
			m, _, err := s.NextMessage(time.Hour)
			if err != nil {
				mu.Lock()
				end = err
				mu.Unlock()
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	}()
	received = func() []ssetest.Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]ssetest.Message(nil), got...)
	}
	ended = func() error {
		mu.Lock()
		defer mu.Unlock()
		return end
	}
	return received, ended
}

// TestListenerOnAFailedOverGatewayMissesNothing kills the broker a gateway
// is attached to while messages are published on another gateway: the
// gateway reconnects elsewhere and backfills what its live feed missed, so
// its listener ends with every stored message, once, in order.
func TestListenerOnAFailedOverGatewayMissesNothing(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 3)
	victim := bs.Nodes[2]
	a := clustertest.StartGateway(t, "gw-a", bs.GatewayArgs(victim.ClientURL)...)
	b := clustertest.StartGateway(t, "gw-b", bs.GatewayArgs(bs.Nodes[0].ClientURL, bs.Nodes[1].ClientURL)...)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	received, ended := collect(ssetest.Open(t, a.URL+"/rooms/failover/events", nil))
	p := startPublisher(b, "failover", 5*time.Millisecond, 5000)
	defer p.Stop()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if len(received()) < 20 {
			return fmt.Errorf("%d messages so far", len(received()))
		}
		return nil
	})
	// Freeze the broker first, so messages routed to gw-a through it are
	// certainly lost with it, then kill it.
	if err := victim.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := len(p.snapshot())
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if n := len(p.snapshot()); n < frozen+20 {
			return fmt.Errorf("%d published while the broker is frozen", n-frozen)
		}
		return nil
	})
	victim.Proc.Kill() // kill -9
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if s := natsServerOf(t, a); s == "" || s == victim.Name {
			return fmt.Errorf("gw-a on %q", s)
		}
		return nil
	})
	// Keep publishing a while after the failover, then stop.
	failedOver := len(p.snapshot())
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if len(p.snapshot()) < failedOver+50 {
			return fmt.Errorf("publishing has not gone on long enough")
		}
		return nil
	})
	accepted := p.Stop()
	checkHistoryHolds(t, b, "failover", accepted)

	// The listener ends with exactly the room's history, in order.
	resp, err := http.Get(b.URL + "/rooms/failover/messages?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Messages []ssetest.Message }
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if got := received(); len(got) < len(page.Messages) {
			// Say whether gw-a ended the stream, and what it logged of
			// its feed, so a failure here can be explained.
			var feed []string
			for _, line := range strings.Split(a.Proc.Log(), "\n") {
				if strings.Contains(line, "backfill") || strings.Contains(line, "resync") || strings.Contains(line, "recreated") || strings.Contains(line, "cut off") {
					feed = append(feed, line)
				}
			}
			return fmt.Errorf("listener has %d of %d messages (stream ended: %v); gw-a's feed log:\n%s",
				len(got), len(page.Messages), ended(), strings.Join(feed, "\n"))
		}
		return nil
	})
	got := received()
	if len(got) != len(page.Messages) {
		t.Fatalf("listener got %d messages, history holds %d", len(got), len(page.Messages))
	}
	for i := range got {
		if got[i].Seq != page.Messages[i].Seq || got[i].Text != page.Messages[i].Text {
			t.Fatalf("message %d: listener %s (seq %d), history %s (seq %d)", i, got[i].Text, got[i].Seq, page.Messages[i].Text, page.Messages[i].Seq)
		}
	}
	if !regexp.MustCompile(`msg="backfilled room feed" room=failover .* messages=[1-9]`).MatchString(a.Proc.Log()) {
		t.Errorf("gw-a did not backfill its live feed; the test did not exercise the failover")
	}
	t.Logf("listener on gw-a got all %d messages in order across the failover", len(got))
}
