package hoststest

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// received is a message as a listener got it.
type received struct {
	msg ssetest.Message
	at  time.Time
}

// listener follows a room on one gateway the way a browser's EventSource
// does: when its stream ends it reconnects to the same gateway with
// Last-Event-ID set to the last cursor it received. It notes when each
// message arrived, and every reset event.
type listener struct {
	node *Node
	url  string
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	got        []received
	resets     []string
	reconnects int
	current    *ssetest.Stream
}

// follow opens the first stream at once, so the listener is registered
// when it returns, then keeps following in the background until Stop.
func follow(t testing.TB, g *Node, room string) *listener {
	t.Helper()
	l := &listener{node: g, url: g.URL + "/rooms/" + room + "/events?user=listener-" + g.Name,
		stop: make(chan struct{}), done: make(chan struct{})}
	s, err := ssetest.Dial(l.url, nil)
	if err != nil {
		t.Fatalf("listen on %s: %v", g.Name, err)
	}
	l.current = s
	go l.run(s)
	return l
}

func (l *listener) run(s *ssetest.Stream) {
	defer close(l.done)
	cursor := ""
	for {
		cursor = l.read(s, cursor)
		s.Close()
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(200 * time.Millisecond): // a browser's retry delay
			}
			h := http.Header{}
			if cursor != "" {
				h.Set("Last-Event-Id", cursor)
			}
			var err error
			if s, err = ssetest.Dial(l.url, h); err == nil {
				break
			}
		}
		l.mu.Lock()
		l.reconnects++
		l.current = s
		l.mu.Unlock()
		select {
		case <-l.stop: // Stop ran while this stream was opening
			s.Close()
			return
		default:
		}
	}
}

// read takes events from s until it ends and returns the last cursor.
func (l *listener) read(s *ssetest.Stream, cursor string) string {
	for {
		ev, err := s.Next(time.Hour)
		if err != nil {
			return cursor
		}
		switch ev.Event {
		case "reset":
			l.mu.Lock()
			l.resets = append(l.resets, ev.Data)
			l.mu.Unlock()
		case "message":
			var m ssetest.Message
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				continue
			}
			cursor = ev.ID
			l.mu.Lock()
			l.got = append(l.got, received{m, time.Now()})
			l.mu.Unlock()
		}
	}
}

func (l *listener) messages() []received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]received(nil), l.got...)
}

func (l *listener) reconnectCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reconnects
}

func (l *listener) resetEvents() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.resets...)
}

// Stop stops following and closes the stream.
func (l *listener) Stop() {
	select {
	case <-l.stop:
		return
	default:
		close(l.stop)
	}
	l.mu.Lock()
	if l.current != nil {
		l.current.Close()
	}
	l.mu.Unlock()
	<-l.done
}
