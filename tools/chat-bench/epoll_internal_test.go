package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

// sseServer streams the same events to every listener of /events: the
// first line at once, then, on each send, an event of the given text
// with the marker, written in pieces of at most piece bytes with a flush
// after each (through net/http: a chunked body, whose chunk boundaries
// fall inside markers).
type sseServer struct {
	mu        sync.Mutex
	listeners []chan string
	joined    chan struct{}
}

func newSSEServer(t *testing.T, piece int) (*httptest.Server, *sseServer) {
	s := &sseServer{joined: make(chan struct{}, 100000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		ch := make(chan string, 1024)
		s.mu.Lock()
		s.listeners = append(s.listeners, ch)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("retry: 2000\n\n"))
		w.(http.Flusher).Flush()
		s.joined <- struct{}{}
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-ch:
				for len(ev) > 0 {
					k := min(piece, len(ev))
					if _, err := w.Write([]byte(ev[:k])); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					ev = ev[k:]
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func (s *sseServer) send(ev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.listeners {
		ch <- ev
	}
}

// TestEpollReadersCountEveryEvent opens many counting subscribers on the
// epoll readers against a real HTTP server whose chunked bodies split
// markers, checks each counts every event exactly once, and that each
// sees its stream end when the server closes it.
func TestEpollReadersCountEveryEvent(t *testing.T) {
	if !epollSupported {
		t.Skip("epoll readers are Linux only")
	}
	for _, tc := range []struct {
		name, marker, event string
		piece               int
	}{
		{"room events in 7-byte chunks", "event: message\n", "id: 1\nevent: message\ndata: {\"text\":\"event: messag\"}\n\n", 7},
		{"Mercure updates in 3-byte chunks", "id: ", "id: urn:uuid:1\ndata: {\"ts\":\"x\"}\n\n", 3},
		{"whole events", "event: message\n", "event: message\ndata: x\n\n", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, s := newSSEServer(t, tc.piece)
			ep := &endpoint{
				eventsURL: func(base string) string { return base + "/events" },
				marker:    []byte(tc.marker), auth: "Bearer t",
			}
			ctx, cancel := context.WithCancel(context.Background())
			const n, events = 300, 200
			subs, err := openSubscribers(ctx, []string{srv.URL}, ep, n, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i := range events {
				s.send(tc.event)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let reads fall between events too
				}
			}
			nodetest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				var short []string
				for i, sub := range subs {
					if isProbe(i, n, 1, 1) {
						continue
					}
					if c := sub.count.Load(); c != events {
						short = append(short, fmt.Sprintf("%d: %d", i, c))
					}
				}
				if len(short) > 0 {
					return fmt.Errorf("%d subscribers of %d counted other than %d events: %s", len(short), n, events, strings.Join(short[:min(5, len(short))], ", "))
				}
				return nil
			})
			// A stream the server closes is seen as ended.
			srv.CloseClientConnections()
			nodetest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				for i, sub := range subs {
					if !sub.ended.Load() {
						return fmt.Errorf("subscriber %d has not seen its stream end", i)
					}
				}
				return nil
			})
			cancel()
		})
	}
}

// TestEpollSubscriberRefused checks a stream answered with another status
// than 200 fails to open with that status in the error.
func TestEpollSubscriberRefused(t *testing.T) {
	if !epollSupported {
		t.Skip("epoll readers are Linux only")
	}
	srv, _ := newSSEServer(t, 1<<20)
	ep := &endpoint{eventsURL: func(base string) string { return base + "/events" }, marker: []byte("id: ")} // no token
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := openSubscribers(ctx, []string{srv.URL}, ep, 10, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("got %v, want a status 401 error", err)
	}
}
