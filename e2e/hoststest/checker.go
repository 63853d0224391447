package hoststest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

// Load is what a Checker's publishers do: each publishes one message
// every Interval (after the previous one is answered), at most Max, for
// at most Within (then it stops by itself, as a bound on any test).
type Load struct {
	Interval time.Duration
	Max      int
	Within   time.Duration
}

// attempt is one publish.
type attempt struct {
	text   string
	sent   time.Time
	took   time.Duration
	status int // 0: no answer (transport error or timeout)
	seq    uint64
}

// noPosition is the status noted for a 201 whose body has no seq.
const noPosition = -1

// publisher publishes numbered, unique texts to one gateway.
type publisher struct {
	node     *Node
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	attempts []attempt
}

// Checker runs publishers and listeners on every gateway of a room and
// checks, after the faults, that nothing acknowledged was lost or
// duplicated, in history or on any listener.
type Checker struct {
	room  string
	start time.Time
	pubs  []*publisher
	lis   []*listener
}

// publishClient answers within a bound far above the gateway's 5 s
// publish timeout: a publish that reaches it hung.
var publishClient = &http.Client{Timeout: 20 * time.Second}

// StartChecker opens a listener on each gateway (registered before any
// publish), then starts a publisher on each.
func StartChecker(t testing.TB, room string, gws []*Node, load Load) *Checker {
	t.Helper()
	c := &Checker{room: room, start: time.Now()}
	for _, g := range gws {
		l := follow(t, g, room)
		t.Cleanup(l.Stop)
		c.lis = append(c.lis, l)
	}
	for _, g := range gws {
		p := &publisher{node: g, stop: make(chan struct{}), done: make(chan struct{})}
		go p.run(room, load)
		t.Cleanup(p.Stop)
		c.pubs = append(c.pubs, p)
	}
	return c
}

func (p *publisher) run(room string, load Load) {
	defer close(p.done)
	url := p.node.URL + "/rooms/" + room + "/messages"
	end := time.Now().Add(load.Within)
	for i := range load.Max {
		if time.Now().After(end) {
			return
		}
		select {
		case <-p.stop:
			return
		case <-time.After(load.Interval): // the pace of the load
		}
		a := attempt{text: fmt.Sprintf("%s-%s-%06d", room, p.node.Name, i), sent: time.Now()}
		body, _ := json.Marshal(map[string]string{"user": p.node.Name, "text": a.text})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if resp, err := publishClient.Do(req); err == nil {
			a.status = resp.StatusCode
			if resp.StatusCode == http.StatusCreated {
				var m struct{ Seq uint64 }
				if json.NewDecoder(resp.Body).Decode(&m) != nil || m.Seq == 0 {
					a.status = noPosition
				}
				a.seq = m.Seq
			}
			_ = resp.Body.Close()
		}
		a.took = time.Since(a.sent)
		p.mu.Lock()
		p.attempts = append(p.attempts, a)
		p.mu.Unlock()
	}
}

// Stop stops publishing and waits for the publish in flight.
func (p *publisher) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *publisher) snapshot() []attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.attempts)
}

// counts returns the publisher's acknowledged and refused publishes.
func (p *publisher) counts() (acked, refused int) {
	for _, a := range p.snapshot() {
		if a.status == http.StatusCreated {
			acked++
		} else {
			refused++
		}
	}
	return acked, refused
}

// Counts returns how many publishes on g were acknowledged and how many
// were not, so far.
func (c *Checker) Counts(g *Node) (acked, refused int) {
	for _, p := range c.pubs {
		if p.node == g {
			return p.counts()
		}
	}
	return 0, 0
}

// WaitAcked waits until each of gws has n more acknowledged publishes
// than when it was called.
func (c *Checker) WaitAcked(t testing.TB, n int, timeout time.Duration, gws ...*Node) {
	t.Helper()
	base := map[*Node]int{}
	for _, g := range gws {
		base[g], _ = c.Counts(g)
	}
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		for _, g := range gws {
			if a, _ := c.Counts(g); a < base[g]+n {
				return fmt.Errorf("%s: %d publishes acknowledged, want %d more than %d", g.Name, a, n, base[g])
			}
		}
		return nil
	})
}

// WaitRefused waits until each of gws has refused n more publishes than
// when it was called.
func (c *Checker) WaitRefused(t testing.TB, n int, timeout time.Duration, gws ...*Node) {
	t.Helper()
	base := map[*Node]int{}
	for _, g := range gws {
		_, base[g] = c.Counts(g)
	}
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		for _, g := range gws {
			if _, r := c.Counts(g); r < base[g]+n {
				return fmt.Errorf("%s: %d publishes refused, want %d more than %d", g.Name, r, n, base[g])
			}
		}
		return nil
	})
}

// Reconnects returns how often the listener on g has had to reconnect.
func (c *Checker) Reconnects(g *Node) int {
	for _, l := range c.lis {
		if l.node == g {
			return l.reconnectCount()
		}
	}
	return 0
}

// Elapsed is the time since the checker started, to place faults in its
// report.
func (c *Checker) Elapsed() time.Duration { return time.Since(c.start).Round(100 * time.Millisecond) }

// Stop stops the publishers.
func (c *Checker) Stop() {
	for _, p := range c.pubs {
		p.Stop()
	}
}
