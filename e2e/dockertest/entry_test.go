package dockertest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/dockertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// The compose entry point (Caddy, deployments/caddy) must send requests
// only to ready gateway replicas. These helpers and subtests check it; they
// run inside TestComposeDeployment so the project is brought up once.

// openListeners opens n SSE streams of room through base with token, all
// at once. Each must open: a replica that is not ready answers 503, and the
// entry point must not let a client see that.
func openListeners(t *testing.T, base, room, token string, n int) []*ssetest.Stream {
	t.Helper()
	streams := make([]*ssetest.Stream, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			streams[i], errs[i] = ssetest.Dial(base+"/rooms/"+room+"/events", bearer(token))
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range streams {
			if s != nil {
				s.Close()
			}
		}
	})
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("listener %d of %d: %v", i, n, err)
		}
	}
	if failed > 0 {
		t.FailNow()
	}
	return streams
}

// postMessage publishes text to room with token once, with no retry, and
// returns the status.
func postMessage(base, room, token, text string) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	body := fmt.Sprintf(`{"text":%q}`, text)
	req, err := http.NewRequest(http.MethodPost, base+"/rooms/"+room+"/messages", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// receiveOne publishes one message and checks that every stream gets it.
func receiveOne(t *testing.T, base, room, token string, streams []*ssetest.Stream) {
	t.Helper()
	text := fmt.Sprintf("after-%d", time.Now().UnixNano())
	if code, err := postMessage(base, room, token, text); err != nil || code != http.StatusCreated {
		t.Fatalf("publish: %d %v", code, err)
	}
	for i, s := range streams {
		m, _, err := s.NextMessage(30 * time.Second)
		if err != nil || m.Text != text {
			t.Errorf("listener %d (on %s): got %q, %v; want %q", i, s.Resp.Header.Get("X-Chat-Node"), m.Text, err, text)
		}
	}
}

// strictListener follows a room like a browser's EventSource (when a stream
// ends it opens it again with Last-Event-ID) and records every open that
// failed, which ssetest.Follower retries silently.
type strictListener struct {
	url   string
	token string
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	stopped bool
	opened  bool
	fails   []string
	texts   []string
	current *ssetest.Stream
}

func listenStrict(url, token string) *strictListener {
	l := &strictListener{url: url, token: token, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *strictListener) run() {
	defer close(l.done)
	cursor := ""
	for {
		h := bearer(l.token)
		if cursor != "" {
			h.Set("Last-Event-Id", cursor)
		}
		s, err := ssetest.Dial(l.url, h)
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			if err == nil {
				s.Close()
			}
			return
		}
		if err != nil {
			l.fails = append(l.fails, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
		} else {
			l.opened = true
			l.current = s
		}
		l.mu.Unlock()
		if err == nil {
			for {
				ev, err := s.Next(time.Hour)
				if err != nil {
					break
				}
				if ev.Event == "message" {
					cursor = ev.ID
					l.mu.Lock()
					l.texts = append(l.texts, ev.Data)
					l.mu.Unlock()
				}
			}
			s.Close()
		}
		select {
		case <-l.stop:
			return
		case <-time.After(250 * time.Millisecond): // the retry a gateway asks for
		}
	}
}

// state returns whether a stream has opened, the failed opens and whether
// a message containing text has arrived.
func (l *strictListener) state(text string) (opened bool, fails []string, got bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.texts {
		if strings.Contains(d, text) {
			got = true
		}
	}
	return l.opened, append([]string(nil), l.fails...), got
}

func (l *strictListener) Stop() {
	close(l.stop)
	l.mu.Lock()
	l.stopped = true
	if l.current != nil {
		l.current.Close()
	}
	l.mu.Unlock()
	<-l.done
}

// restart restarts a gateway service's container and waits until Docker
// reports it healthy (its /readyz answers 200).
func (p *project) restart(service string) {
	p.t.Helper()
	id := p.containers(service)[0]
	dockertest.Run(p.t, nil, "docker", "restart", "-t", "10", id)
	nodetest.CheckFor(p.t, 60*time.Second, 250*time.Millisecond, func() error {
		out := dockertest.Run(p.t, nil, "docker", "inspect", "--format", "{{.State.Health.Status}}", id)
		if strings.TrimSpace(out) != "healthy" {
			return fmt.Errorf("%s is %s", service, out)
		}
		return nil
	})
}

// testListenersWhileRestarting keeps 20 listeners open and opens more, one
// every 100 ms, while a gateway restarts: no open may fail, and each
// listener gets a message published afterwards.
func testListenersWhileRestarting(t *testing.T, p *project) {
	url := p.base + "/rooms/restart/events"
	var ls []*strictListener
	var mu sync.Mutex
	add := func() {
		mu.Lock()
		ls = append(ls, listenStrict(url, p.token))
		mu.Unlock()
	}
	t.Cleanup(func() {
		for _, l := range ls {
			l.Stop()
		}
	})
	for range 20 {
		add()
	}
	nodetest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for i, l := range ls {
			if opened, _, _ := l.state(""); !opened {
				return fmt.Errorf("listener %d has not opened", i)
			}
		}
		return nil
	})
	restarted := make(chan struct{})
	opening := make(chan struct{})
	go func() {
		defer close(opening)
		for range 40 {
			select {
			case <-restarted:
				return
			case <-time.After(100 * time.Millisecond):
				add()
			}
		}
	}()
	p.restart("gateway-2")
	close(restarted)
	<-opening

	text := fmt.Sprintf("after-restart-%d", time.Now().UnixNano())
	if code, err := postMessage(p.base, "restart", p.token, text); err != nil || code != http.StatusCreated {
		t.Fatalf("publish: %d %v", code, err)
	}
	nodetest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for i, l := range ls {
			if _, _, got := l.state(text); !got {
				return fmt.Errorf("listener %d of %d has not received the message", i, len(ls))
			}
		}
		return nil
	})
	for i, l := range ls {
		if _, fails, _ := l.state(""); len(fails) > 0 {
			t.Errorf("listener %d: %d failed opens: %v", i, len(fails), fails)
		}
	}
	t.Logf("%d listeners across a gateway restart: none failed to open, each got the message", len(ls))
}

// testUnreadyReplicaTakenOut cuts a gateway off the brokers' network, so
// its /readyz answers 503 while it still answers HTTP, and checks that the
// entry point stops sending it requests within seconds, that every request
// after that succeeds, and that it is back once it is ready again.
func testUnreadyReplicaTakenOut(t *testing.T, p *project) {
	const gw = "gateway-3"
	id := p.containers(gw)[0]
	network := p.name + "_chat"
	nodetest.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error { return p.inRotation(gw) })

	dockertest.Run(t, nil, "docker", "network", "disconnect", network, id)
	reconnected := false
	t.Cleanup(func() {
		if !reconnected {
			_, _ = dockertest.Try(nil, "docker", "network", "connect", network, id)
		}
	})
	// The gateway notices the lost NATS connection by its pings (up to
	// about 12 s); from then its /readyz answers 503.
	nodetest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		if _, err := dockertest.Try(nil, "docker", "exec", id, "/app", "healthcheck"); err == nil {
			return fmt.Errorf("%s is still ready", gw)
		}
		return nil
	})
	unready := time.Now()
	nodetest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error { return p.outOfRotation(gw) })
	t.Logf("%s taken out at most %s after this test saw its /readyz fail", gw, time.Since(unready).Round(100*time.Millisecond))

	// Every request from now on succeeds, publishes included.
	for i := range 20 {
		if n, err := p.node(); err != nil || n == gw {
			t.Errorf("request %d: GET /node: %q %v", i, n, err)
		}
		if code, err := postMessage(p.base, "takenout", p.token, fmt.Sprintf("m%d", i)); err != nil || code != http.StatusCreated {
			t.Errorf("request %d: publish: %d %v", i, code, err)
		}
		s, err := ssetest.Dial(p.base+"/rooms/takenout/events", bearer(p.token))
		if err != nil {
			t.Errorf("request %d: listen: %v", i, err)
			continue
		}
		if n := s.Resp.Header.Get("X-Chat-Node"); n == gw {
			t.Errorf("request %d: listener on %s", i, gw)
		}
		s.Close()
	}

	dockertest.Run(t, nil, "docker", "network", "connect", network, id)
	reconnected = true
	nodetest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error { return p.inRotation(gw) })
}

// testFrozenReplicaTakenOut pauses a gateway, so its /readyz does not
// answer at all, and checks that the entry point stops sending it requests
// within seconds and takes it back once it runs again.
func testFrozenReplicaTakenOut(t *testing.T, p *project) {
	const gw = "gateway-1"
	id := p.containers(gw)[0]
	nodetest.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error { return p.inRotation(gw) })
	dockertest.Run(t, nil, "docker", "pause", id)
	paused := true
	t.Cleanup(func() {
		if paused {
			_, _ = dockertest.Try(nil, "docker", "unpause", id)
		}
	})
	start := time.Now()
	// A request sent to it before the entry point noticed waits for its
	// answer; the client gives up after 5 s and that try counts as failed.
	nodetest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error { return p.outOfRotation(gw) })
	t.Logf("%s taken out %s after it froze", gw, time.Since(start).Round(100*time.Millisecond))
	dockertest.Run(t, nil, "docker", "unpause", id)
	paused = false
	nodetest.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error { return p.inRotation(gw) })
}

// node asks the entry point which replica answers. /node answers even on
// a replica that is not ready, so it shows where requests go.
func (p *project) node() (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(p.base + "/node")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /node: %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Chat-Node"), nil
}

// inRotation returns nil once gw answers one of 12 requests in a row
// (requests go to the ready replicas in turn).
func (p *project) inRotation(gw string) error {
	seen := map[string]int{}
	for range 12 {
		n, err := p.node()
		if err == nil && n == gw {
			return nil
		}
		seen[fmt.Sprint(n, err)]++
	}
	return fmt.Errorf("%s gets no requests: they went to %v", gw, seen)
}

// outOfRotation returns nil when 12 requests in a row all succeed on
// other replicas than gw.
func (p *project) outOfRotation(gw string) error {
	for range 12 {
		n, err := p.node()
		if err != nil {
			return err
		}
		if n == gw {
			return fmt.Errorf("%s still gets requests", gw)
		}
	}
	return nil
}
