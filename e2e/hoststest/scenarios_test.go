package hoststest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
)

// soak (HOSTS_SOAK=1, make soak) runs the same scenarios with faster
// publishers and faults held for many more messages.
var soak = os.Getenv("HOSTS_SOAK") == "1"

func TestMain(m *testing.M) {
	code := m.Run()
	if s := Summary(); s != "" {
		fmt.Printf("\nmulti-host scenarios (soak %v):\n\n%s\n", soak, s)
	}
	clustertest.RemoveBinaries()
	os.Exit(code)
}

// load is the publishers' pace: every gateway publishes one message every
// 20 ms (5 ms in the soak), each after the previous one is answered.
func load() Load {
	if soak {
		return Load{Interval: 5 * time.Millisecond, Max: 200000, Within: 30 * time.Minute}
	}
	return Load{Interval: 20 * time.Millisecond, Max: 5000, Within: 5 * time.Minute}
}

// msgs is how many acknowledged messages a phase of a scenario lasts for
// on each gateway that can publish (twenty times as many in the soak).
func msgs(n int) int {
	if soak {
		return 20 * n
	}
	return n
}

// cycles is how often a flapping fault repeats (five times as often in
// the soak).
func cycles(n int) int {
	if soak {
		return 5 * n
	}
	return n
}

// phase bounds the wait for a phase's messages.
var phase = map[bool]time.Duration{false: time.Minute, true: 10 * time.Minute}[soak]

// settle bounds the wait, after healing, for history and listeners.
const settle = 30 * time.Second

// readiness samples g's /readyz every 100 ms from now until the returned
// function is called, which reports how long after the start /readyz first
// failed, and whether it did.
func readiness(g *Node) func() (time.Duration, bool) {
	start := time.Now()
	stop, done := make(chan struct{}), make(chan struct{})
	var first time.Duration
	failed := false
	go func() {
		defer close(done)
		for !failed {
			if g.Ready() != nil {
				first, failed = time.Since(start), true
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond): // the sampling interval
			}
		}
	}()
	return func() (time.Duration, bool) {
		close(stop)
		<-done
		return first, failed
	}
}

// requireNotReady waits until g's /readyz fails: a gateway whose publishes
// are refused because the stream cannot store must not call itself ready
// (it once answered 200 through a whole partition, its stream check
// answered by a leader that no longer heard its replicas).
func requireNotReady(t *testing.T, g *Node) {
	t.Helper()
	nodetest.CheckFor(t, phase, 100*time.Millisecond, func() error {
		if g.Ready() == nil {
			return fmt.Errorf("%s refuses publishes but its /readyz answers 200", g.Name)
		}
		return nil
	})
}

// logReadiness logs what readiness saw of g during a fault.
func logReadiness(t *testing.T, g *Node, seen func() (time.Duration, bool)) {
	t.Helper()
	if d, failed := seen(); failed {
		t.Logf("%s: /readyz failed %s into the fault", g.Name, d.Round(10*time.Millisecond))
	} else {
		t.Logf("%s: /readyz answered 200 throughout the fault", g.Name)
	}
}

func without(all []*Node, out ...*Node) []*Node {
	var rest []*Node
	for _, n := range all {
		keep := true
		for _, o := range out {
			keep = keep && n != o
		}
		if keep {
			rest = append(rest, n)
		}
	}
	return rest
}

// One node of three is cut off: its gateway refuses publishes and keeps
// its listeners; the two others go on; after healing, the minority's
// listeners catch up with everything.
func TestMinorityPartition(t *testing.T) {
	t.Parallel()
	c := StartMesh(t, 3, Options{})
	leader := c.StreamLeader(t)
	minority := without(c.Gateways, leader)[1] // not the leader: that is the next scenario
	majority := without(c.Gateways, minority)
	ch := StartChecker(t, "minority", c.Gateways, load())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)

	reconnects := ch.Reconnects(minority)
	c.Net.Isolate(minority.Host)
	ready := readiness(minority)
	t.Logf("%s: isolated %s (the stream leader is %s)", ch.Elapsed(), minority.Name, leader.Name)
	ch.WaitRefused(t, 2, phase, minority)
	requireNotReady(t, minority)
	ch.WaitAcked(t, msgs(50), phase, majority...)
	logReadiness(t, minority, ready)
	if n := ch.Reconnects(minority) - reconnects; n != 0 {
		t.Errorf("the listener on the cut-off %s reconnected %d times; it should have kept its stream", minority.Name, n)
	}
	c.Net.Heal()
	t.Logf("%s: healed", ch.Elapsed())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)
	t.Logf("%s: the stream leader is %s", ch.Elapsed(), c.StreamLeader(t).Name)
	ch.Verify(t, "minority partition (mesh)", majority[0], settle)
}

// The node leading the history stream is cut off: the two others elect a
// new leader and go on.
func TestLeaderIsolated(t *testing.T) {
	t.Parallel()
	c := StartMesh(t, 3, Options{})
	ch := StartChecker(t, "leader", c.Gateways, load())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)

	leader := c.StreamLeader(t) // asked just before the cut: it may have moved
	rest := without(c.Gateways, leader)
	c.Net.Isolate(leader.Host)
	ready := readiness(leader)
	t.Logf("%s: isolated %s, the stream leader", ch.Elapsed(), leader.Name)
	ch.WaitAcked(t, msgs(50), phase, rest...)
	ch.WaitRefused(t, 2, phase, leader)
	requireNotReady(t, leader)
	logReadiness(t, leader, ready)
	c.Net.Heal()
	t.Logf("%s: healed", ch.Elapsed())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)
	t.Logf("the stream leader is now %s", c.StreamLeader(t).Name)
	ch.Verify(t, "stream leader isolated (mesh)", rest[0], settle)
}

// Two brokers and one are split apart, with a gateway on each side: the
// side of two goes on, the other refuses; nothing acknowledged is lost.
func TestSymmetricSplitWithBrokers(t *testing.T) {
	t.Parallel()
	c := StartBrokers(t, 3, 2, Options{GatewayBrokers: func(i int) []int {
		if i == 0 {
			return []int{0, 1} // gw-1 on the side of two
		}
		return []int{2}
	}})
	b, g := c.Brokers, c.Gateways
	ch := StartChecker(t, "split", g, load())
	ch.WaitAcked(t, msgs(20), phase, g...)

	c.Net.Split(Hosts(b[0], b[1], g[0]), Hosts(b[2], g[1]))
	ready := readiness(g[1])
	t.Logf("%s: split {broker-1, broker-2, gw-1} from {broker-3, gw-2}", ch.Elapsed())
	ch.WaitAcked(t, msgs(50), phase, g[0])
	ch.WaitRefused(t, 2, phase, g[1])
	requireNotReady(t, g[1])
	logReadiness(t, g[1], ready)
	c.Net.Heal()
	t.Logf("%s: healed", ch.Elapsed())
	ch.WaitAcked(t, msgs(20), phase, g...)
	ch.Verify(t, "2+1 brokers split, a gateway on each side", g[0], settle)
}

// Links go down and up again while publishing runs: each node in turn is
// cut off for a moment, then the link between two nodes flaps while both
// still reach the third.
func TestFlappingLinks(t *testing.T) {
	t.Parallel()
	c := StartMesh(t, 3, Options{})
	ch := StartChecker(t, "flap", c.Gateways, load())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)

	stop := make(chan struct{}) // never closed: the schedule is bounded
	hosts := c.Net.Hosts
	for i := range cycles(3) {
		h := hosts[i%len(hosts)]
		c.Net.Flap([]*Host{h}, hosts, time.Second, time.Second, 1, stop)
	}
	c.Net.Flap(hosts[:1], hosts[1:2], time.Second, time.Second, cycles(3), stop)
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)
	ch.Verify(t, "flapping links (mesh)", c.Gateways[0], settle)
}

// 40 ms ± 10 ms one way between every two nodes, as between regions:
// nothing is refused, and the publish → delivery latency is reported;
// then the latency is lifted and measured again.
func TestWANLatency(t *testing.T) {
	t.Parallel()
	c := StartMesh(t, 3, Options{Latency: true})
	c.SetLatency(40*time.Millisecond, 10*time.Millisecond)
	ch := StartChecker(t, "wan", c.Gateways, load())
	ch.WaitAcked(t, msgs(30), phase, c.Gateways...) // each publish takes about 150 ms
	wan := ch.Verify(t, "WAN 40±10 ms between all nodes (mesh)", c.Gateways[0], settle)
	if wan.Refused+wan.Failed > 0 {
		t.Errorf("%d publishes refused and %d unanswered at a steady 40 ms latency", wan.Refused, wan.Failed)
	}

	c.SetLatency(0, 0)
	ch = StartChecker(t, "lan", c.Gateways, load())
	ch.WaitAcked(t, msgs(30), phase, c.Gateways...)
	lan := ch.Verify(t, "latency lifted (mesh, same run)", c.Gateways[0], settle)
	t.Logf("publish → delivery p99: %s with 40±10 ms between nodes, %s without (p50 %s and %s)",
		wan.P99.Round(time.Millisecond), lan.P99.Round(time.Millisecond), wan.P50.Round(time.Millisecond), lan.P50.Round(time.Millisecond))
}

// A gateway loses every broker but not its clients: its listeners keep
// their streams and get the messages after healing; its publishes are
// refused with 503 in bounded time rather than hanging; the other gateway
// goes on.
func TestGatewayCutFromBrokers(t *testing.T) {
	t.Parallel()
	c := StartBrokers(t, 3, 2, Options{})
	cut, other := c.Gateways[0], c.Gateways[1]
	ch := StartChecker(t, "cut", c.Gateways, load())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)

	reconnects := ch.Reconnects(cut)
	c.Net.Split(Hosts(cut), Hosts(c.Brokers...))
	ready := readiness(cut)
	t.Logf("%s: cut %s from every broker", ch.Elapsed(), cut.Name)
	ch.WaitRefused(t, 2, phase, cut)
	ch.WaitAcked(t, msgs(50), phase, other)
	// Without a connection it must say so: a gateway learns of a silent
	// one from its pings (every 3 s, 3 unanswered).
	nodetest.CheckFor(t, phase, 100*time.Millisecond, func() error {
		if cut.Ready() == nil {
			return fmt.Errorf("%s still ready without any broker", cut.Name)
		}
		return nil
	})
	logReadiness(t, cut, ready)
	if n := ch.Reconnects(cut) - reconnects; n != 0 {
		t.Errorf("the listener on %s reconnected %d times; it should have kept its stream", cut.Name, n)
	}
	c.Net.Heal()
	t.Logf("%s: healed", ch.Elapsed())
	ch.WaitAcked(t, msgs(20), phase, c.Gateways...)
	r := ch.Verify(t, "gateway cut from its brokers, not its clients", other, settle)
	if r.SlowestPublish > 10*time.Second {
		t.Errorf("a publish took %s: it hung instead of being refused", r.SlowestPublish)
	}
}
