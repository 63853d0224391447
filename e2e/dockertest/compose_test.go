package dockertest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/dockertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.RemoveImages()
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// publisher publishes numbered messages through base with token, each
// with its own Idempotency-Key and retried until stored, so every message
// is stored exactly once however the cluster misbehaves.
type publisher struct {
	base  string
	room  string
	token string
	mu    sync.Mutex
	n     int
}

// keepPublishing publishes in the background until the returned func is
// called; that func fails the test if a message could not be stored.
func (p *publisher) keepPublishing(t *testing.T) func() {
	quit := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for {
			select {
			case <-quit:
				published <- nil
				return
			default:
			}
			if err := p.try(5); err != nil {
				published <- err
				return
			}
		}
	}()
	return func() {
		t.Helper()
		close(quit)
		if err := <-published; err != nil {
			t.Fatal(err)
		}
	}
}

// count returns how many messages have been stored.
func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *publisher) publish(t *testing.T, count int) {
	t.Helper()
	if err := p.try(count); err != nil {
		t.Fatal(err)
	}
}

// try publishes count messages; safe to call from any goroutine.
func (p *publisher) try(count int) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for range count {
		i := p.count()
		body, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("m%04d", i)})
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodPost, p.base+"/rooms/"+p.room+"/messages", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", p.room, i))
			req.Header.Set("Authorization", "Bearer "+p.token)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
					p.mu.Lock()
					p.n++
					p.mu.Unlock()
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("message %d not stored within 60s (last: %v)", i, err)
			}
			time.Sleep(100 * time.Millisecond) // retry like a client would
		}
	}
	return nil
}

// expectAll waits until every follower has exactly the published messages,
// once each, in order.
func expectAll(t *testing.T, followers []*ssetest.Follower, n int) {
	t.Helper()
	nodetest.CheckFor(t, 90*time.Second, 200*time.Millisecond, func() error {
		for i, f := range followers {
			msgs := f.Messages()
			for j, m := range msgs {
				if want := fmt.Sprintf("m%04d", j); m.Text != want {
					return fmt.Errorf("listener %d: message %d is %s, want %s (duplicate or gap)", i, j, m.Text, want)
				}
			}
			if len(msgs) != n {
				return fmt.Errorf("listener %d has %d of %d messages", i, len(msgs), n)
			}
			if f.Resets() > 0 {
				return fmt.Errorf("listener %d was told it missed messages", i)
			}
		}
		return nil
	})
}

type project struct {
	t    *testing.T
	name string
	env  []string
	file string
	base string
	// token is a token signed in through the entry point (see signIn).
	token string
}

func (p *project) compose(args ...string) string {
	p.t.Helper()
	return dockertest.Run(p.t, p.env, "docker-compose", append([]string{"-f", p.file, "-p", p.name}, args...)...)
}

// containers returns the project's container ids of a service.
func (p *project) containers(service string) []string {
	out := p.compose("ps", "-q", service)
	return strings.Fields(out)
}

func startCompose(t *testing.T) *project {
	dockertest.RequireDocker(t)
	tag := dockertest.Images(t)
	port := freePort(t)
	p := &project{
		t:    t,
		name: fmt.Sprintf("cstest%d", rand.IntN(1<<30)),
		env:  []string{"CHAT_TAG=" + tag, fmt.Sprintf("CHAT_PORT=%d", port), "CHAT_SECRETS=" + dockertest.Secrets(t)},
		file: filepath.Join(dockertest.Root(t), "deployments/compose/compose.yaml"),
		base: fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	t.Cleanup(func() {
		if t.Failed() {
			// What the containers were doing, before they are gone.
			ps, _ := dockertest.Try(p.env, "docker-compose", "-f", p.file, "-p", p.name, "ps")
			logs, _ := dockertest.Try(p.env, "docker-compose", "-f", p.file, "-p", p.name, "logs", "--no-color", "--tail", "40", "lb")
			t.Logf("compose ps:\n%s\nentry point log:\n%s", ps, logs)
		}
		out, err := dockertest.Try(p.env, "docker-compose", "-f", p.file, "-p", p.name, "down", "-v", "--remove-orphans", "-t", "5")
		if err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	p.compose("up", "-d", "--scale", "presence=2")
	// The gateways require a token: sign in as a browser would, before
	// the gateways are waited for, so the first subtest still meets them
	// just ready.
	p.token = signIn(t, p.base, "pub")
	// Up as a user sees it: the entry point answers /readyz with 200.
	client := &http.Client{Timeout: 5 * time.Second}
	nodetest.CheckFor(t, 120*time.Second, 100*time.Millisecond, func() error {
		resp, err := client.Get(p.base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// waitReplicas waits until n different replicas answer /readyz through
// the entry point.
func (p *project) waitReplicas(n int) {
	p.t.Helper()
	nodetest.CheckFor(p.t, 120*time.Second, 250*time.Millisecond, func() error {
		nodes := map[string]bool{}
		for range 4 * n {
			resp, err := http.Get(p.base + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", resp.StatusCode)
			}
			nodes[resp.Header.Get("X-Chat-Node")] = true
		}
		if len(nodes) < n {
			return fmt.Errorf("%d replicas ready", len(nodes))
		}
		return nil
	})
}

// gateways are the compose file's gateway services.
var gateways = []string{"gateway-1", "gateway-2", "gateway-3"}

// followOnSeveralReplicas starts n followers with token through the
// published port, until they are spread over at least two replicas.
func followOnSeveralReplicas(t *testing.T, base, room, token string, n int) []*ssetest.Follower {
	t.Helper()
	var fs []*ssetest.Follower
	t.Cleanup(func() {
		for _, f := range fs {
			f.Stop()
		}
	})
	nodes := map[string]bool{}
	for len(fs) < n || len(nodes) < 2 {
		if len(fs) > 20 {
			t.Fatalf("listeners all landed on %v", nodes)
		}
		f := ssetest.FollowWith(base+"/rooms/"+room+"/events", bearer(token))
		nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if len(f.Nodes()) == 0 {
				return fmt.Errorf("not connected")
			}
			return nil
		})
		for node := range f.Nodes() {
			nodes[node] = true
		}
		fs = append(fs, f)
	}
	return fs
}

func TestComposeDeployment(t *testing.T) {
	p := startCompose(t)

	t.Run("listeners right after start", func(t *testing.T) {
		// The entry point has just answered /readyz: some replicas may
		// still be starting, and none of these may meet one.
		streams := openListeners(t, p.base, "start", p.token, 30)
		receiveOne(t, p.base, "start", p.token, streams)
	})

	t.Run("nothing without a token", func(t *testing.T) {
		checkAuthOn(t, p.base)
	})

	p.waitReplicas(3)
	// Publishing through the one published port reaches several replicas.
	seen := map[string]bool{}
	for i := range 12 {
		resp, err := http.Get(p.base + "/node")
		if err != nil {
			t.Fatalf("GET /node %d: %v", i, err)
		}
		resp.Body.Close()
		seen[resp.Header.Get("X-Chat-Node")] = true
	}
	if len(seen) < 2 {
		t.Fatalf("X-Chat-Node showed only %v", seen)
	}
	followers := followOnSeveralReplicas(t, p.base, "compose", p.token, 3)
	pub := &publisher{base: p.base, room: "compose", token: p.token}
	pub.publish(t, 30)
	expectAll(t, followers, pub.count())

	t.Run("kill a gateway and a broker while publishing", func(t *testing.T) {
		published := make(chan error, 1)
		go func() { published <- pub.try(60) }()
		nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if pub.count() < 40 {
				return fmt.Errorf("publishing has not started")
			}
			return nil
		})
		dockertest.Run(t, nil, "docker", "kill", p.containers("gateway-1")[0])
		dockertest.Run(t, nil, "docker", "kill", p.containers("broker-2")[0])
		if err := <-published; err != nil {
			t.Fatal(err)
		}
		expectAll(t, followers, pub.count())
		p.compose("up", "-d", "--scale", "presence=2") // bring them back
	})

	t.Run("rolling restart of the gateways", func(t *testing.T) {
		stop := pub.keepPublishing(t)
		for _, gw := range gateways {
			p.restart(gw)
		}
		stop()
		expectAll(t, followers, pub.count())
		reconnects := 0
		for _, f := range followers {
			reconnects += f.Reconnects()
		}
		t.Logf("%d messages: every listener has each once, in order, over %d reconnects", pub.count(), reconnects)
	})

	t.Run("listeners while a replica restarts", func(t *testing.T) {
		testListenersWhileRestarting(t, p)
	})

	t.Run("a replica that is not ready is taken out", func(t *testing.T) {
		testUnreadyReplicaTakenOut(t, p)
	})

	t.Run("a frozen replica is taken out", func(t *testing.T) {
		testFrozenReplicaTakenOut(t, p)
	})

	// All along the brokers required passwords and TLS, and refused none
	// of what the gateways and services did.
	logs := p.compose("logs", "--no-color", "broker-1", "broker-2", "broker-3")
	if n := strings.Count(logs, "roles=gateway,service,reader,admin tls=true"); n < 3 {
		t.Errorf("%d broker starts with every role and TLS, want at least 3:\n%s", n, logs)
	}
	dockertest.NoViolations(t, logs)
}
