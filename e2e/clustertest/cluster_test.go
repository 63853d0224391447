package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
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
	a := clustertest.StartGateway(t, "gw-a", "--nats-url", bs.URLs)
	b := clustertest.StartGateway(t, "gw-b", "--nats-url", bs.URLs)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	checkOneChat(t, "brokers", []*clustertest.Gateway{a, b})
}

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

// jetStreamAt returns a JetStream client connected to natsURL for the
// rest of the test.
func jetStreamAt(t *testing.T, natsURL string) jetstream.JetStream {
	t.Helper()
	nc := nodetest.Connect(t, natsURL)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamLeader returns the name of the server leading a stream.
func streamLeader(t *testing.T, natsURL, stream string) string {
	t.Helper()
	js := jetStreamAt(t, natsURL)
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

// The demanding failure is the loss of the node leading the history
// stream: no message can be stored until the others elect a new leader.
func TestMeshSurvivesTheLossOfTheStreamLeader(t *testing.T) {
	t.Parallel()
	gws := clustertest.StartMesh(t, 3)
	leader := streamLeader(t, gws[0].NATSURL, broker.StreamName)
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
	nc := nodetest.Connect(t, bs.URLs)
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
	leader := streamLeader(t, bs.URLs, broker.StreamName)
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
	a := clustertest.StartGateway(t, "gw-a", "--nats-url", victim.ClientURL)
	b := clustertest.StartGateway(t, "gw-b", "--nats-url", strings.Join(others, ","))
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
	c := clustertest.StartGateway(t, "gw-c", "--nats-url", victim.ClientURL)
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

func TestGatewayStartedBeforeTheBrokersBecomesReady(t *testing.T) {
	t.Parallel()
	bs := clustertest.PlanBrokers(t, 3)
	g := clustertest.StartGateway(t, "gw-early", "--nats-url", bs.URLs)
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

// natsCLI returns the natscli binary: $CHAT_NATS_CLI, tools/bin/nats of
// the workspace (installed by `make tools`), or nats on the PATH.
func natsCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHAT_NATS_CLI"); p != "" {
		return p
	}
	if p := filepath.Join(proctest.Root(t), "tools", "bin", "nats"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	t.Fatal("natscli is not installed: run `make tools` (or `make test`, which installs it) or set CHAT_NATS_CLI")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestNATSCLIInterop(t *testing.T) {
	t.Parallel()
	cli := natsCLI(t)
	gws := clustertest.StartMesh(t, 3)
	listeners := make([]*ssetest.Stream, len(gws))
	for i, g := range gws {
		listeners[i] = ssetest.Open(t, g.URL+"/rooms/lobby/events", nil)
	}

	// nats sub on node 2 sees what is published over HTTP on node 1.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, cli, "sub", "chat.room.>", "-s", gws[1].NATSURL, "--raw")
	var subOut lockedBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// The subscription is live once the CLI has registered it with node 2:
	// probe with plain messages on a private subject until one is seen.
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		if out, err := exec.Command(cli, "pub", "chat.room.probe", "probe", "-s", gws[1].NATSURL).CombinedOutput(); err != nil {
			return fmt.Errorf("nats pub: %v: %s", err, out)
		}
		if !strings.Contains(subOut.String(), "probe") {
			return fmt.Errorf("nats sub has not received the probe yet: %q", subOut.String())
		}
		return nil
	})
	mustPublish(t, gws[0].URL, "lobby", "ana", "from http on gw-1")
	// Several probes may arrive before it; wait for the envelope itself.
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if !strings.Contains(subOut.String(), `"text":"from http on gw-1"`) || !strings.Contains(subOut.String(), `"user":"ana"`) {
			return fmt.Errorf("nats sub output lacks the envelope:\n%s", subOut.String())
		}
		return nil
	})
	cancel() // stop nats sub
	_ = sub.Wait()

	// nats pub on node 3 reaches the listeners of every node.
	out, err := exec.Command(cli, "pub", "chat.room.lobby", "hi from cli", "-s", gws[2].NATSURL).CombinedOutput()
	if err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	for i, l := range listeners {
		expectTexts(t, "listener on "+gws[i].Name, l, "from http on gw-1", "hi from cli")
	}

	// The chat services are NATS micro services: listed, described and
	// callable with the CLI. Every mesh node runs a replica of each.
	nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
		out, err := exec.Command(cli, "micro", "ls", "-s", gws[0].NATSURL).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nats micro ls: %v: %s", err, out)
		}
		for _, name := range []string{"chat-presence", "chat-rooms"} {
			if !strings.Contains(string(out), name) {
				return fmt.Errorf("nats micro ls does not list %s:\n%s", name, out)
			}
		}
		return nil
	})
	out, err = exec.Command(cli, "micro", "info", "chat-rooms", "-s", gws[1].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chat.rooms.list") {
		t.Errorf("nats micro info chat-rooms: %v\n%s", err, out)
	}
	out, err = exec.Command(cli, "micro", "info", "chat-presence", "-s", gws[1].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chat.presence.members") {
		t.Errorf("nats micro info chat-presence: %v\n%s", err, out)
	}
	nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
		out, err := exec.Command(cli, "req", "chat.presence.members", `{"room":"lobby"}`, "--raw", "-s", gws[2].NATSURL).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"room":"lobby"`) || !strings.Contains(string(out), `"user":"anonymous"`) {
			return fmt.Errorf("nats req chat.presence.members: %v: %s", err, out)
		}
		return nil
	})
	out, err = exec.Command(cli, "req", "chat.rooms.list", "{}", "--raw", "-s", gws[2].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"room":"lobby"`) {
		t.Errorf("nats req chat.rooms.list: %v\n%s", err, out)
	}
}

// lockedBuffer is a bytes.Buffer safe to write from a command's output
// copier while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBrokerHealthcheckAndLameDuckStop(t *testing.T) {
	t.Parallel()
	bin := clustertest.Binary(t, clustertest.BrokerPkg)
	ports := clustertest.FreePorts(t, 2)
	monitor := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	healthy := func() bool {
		p := proctest.Start(t, "healthcheck", bin, "healthcheck", "--monitor-url", monitor, "--timeout", "2s")
		exited, err := p.Wait(10 * time.Second)
		if !exited {
			t.Fatal("healthcheck did not exit")
		}
		return err == nil
	}
	if healthy() {
		t.Fatal("healthy with no broker running")
	}
	b := proctest.Start(t, "broker", bin, "--node-name", "solo", "--cluster-listen", "off",
		"--client-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--monitor-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--data-dir", t.TempDir(), "--lame-duck", "1s")
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		if !healthy() {
			return fmt.Errorf("not healthy yet")
		}
		return nil
	})
	// A gateway on the single broker: lame-duck mode on SIGTERM stops the
	// broker within its grace period, and the gateway reports not ready.
	g := clustertest.StartGateway(t, "gw-solo", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", ports[0]))
	g.WaitReady(t, wait)
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, err := b.Wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("broker after SIGTERM: exited %v, %v", exited, err)
	}
	if !strings.Contains(b.Log(), "lame duck") && !strings.Contains(b.Log(), "Lame Duck") {
		t.Errorf("broker did not enter lame-duck mode:\n%s", b.Log())
	}
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if g.Ready() == nil {
			return fmt.Errorf("gateway still ready without its broker")
		}
		return nil
	})
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
	a := clustertest.StartGateway(t, "gw-a", "--nats-url", victim.ClientURL)
	b := clustertest.StartGateway(t, "gw-b", "--nats-url", bs.Nodes[0].ClientURL+","+bs.Nodes[1].ClientURL)
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

func TestBrokerRequiresCredentials(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "nats_password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := clustertest.FreePorts(t, 1)[0]
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	b := proctest.Start(t, "broker", clustertest.Binary(t, clustertest.BrokerPkg), "--node-name", "auth",
		"--cluster-listen", "off", "--monitor-listen", "off", "--client-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--auth-user", "chat", "--auth-password-file", secret, "--data-dir", t.TempDir())
	b.WaitLog(t, regexp.MustCompile(`broker started`), wait)

	anon := clustertest.StartGateway(t, "gw-anon", "--nats-url", url)
	good := clustertest.StartGateway(t, "gw-auth", "--nats-url", url, "--nats-user", "chat", "--nats-password-file", secret)
	good.WaitReady(t, wait)
	checkOneChat(t, "auth", []*clustertest.Gateway{good})
	if err := anon.Ready(); err == nil {
		t.Fatal("a gateway without credentials is ready")
	}
	if !strings.Contains(anon.Proc.Log(), "Authorization") && !strings.Contains(anon.Proc.Log(), "authorization") {
		t.Errorf("the gateway without credentials does not say why:\n%s", anon.Proc.Log())
	}
}
