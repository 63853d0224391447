package ssetest

import (
	"net/http"
	"sync"
	"time"
)

// Follower keeps listening to a room across disconnects, the way a
// browser's EventSource does: when its stream ends it reconnects to the
// same URL (through a load balancer, any replica) with Last-Event-ID set
// to the last cursor it received.
type Follower struct {
	url    string
	header http.Header
	stop   chan struct{}
	done   chan struct{}

	mu         sync.Mutex
	msgs       []Message
	nodes      map[string]bool
	resets     int
	reconnects int
	current    *Stream
}

// Follow starts following url.
func Follow(url string) *Follower { return FollowWith(url, nil) }

// FollowWith starts following url, sending header (e.g. Authorization)
// with every request.
func FollowWith(url string, header http.Header) *Follower {
	f := &Follower{url: url, header: header, stop: make(chan struct{}), done: make(chan struct{}), nodes: map[string]bool{}}
	go f.run()
	return f
}

func (f *Follower) run() {
	defer close(f.done)
	cursor := ""
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		h := f.header.Clone()
		if cursor != "" {
			if h == nil {
				h = http.Header{}
			}
			h.Set("Last-Event-Id", cursor)
		}
		s, err := Dial(f.url, h)
		if err != nil {
			select {
			case <-f.stop:
				return
			case <-time.After(200 * time.Millisecond): // as a browser's retry
			}
			continue
		}
		f.mu.Lock()
		f.current = s
		f.nodes[s.Resp.Header.Get("X-Chat-Node")] = true
		f.mu.Unlock()
		select {
		case <-f.stop: // Stop ran while this stream was opening
			s.Close()
			return
		default:
		}
		for {
			ev, err := s.Next(time.Hour)
			if err != nil {
				break
			}
			switch ev.Event {
			case "reset":
				f.mu.Lock()
				f.resets++
				f.mu.Unlock()
			case "message":
				m, err := decodeMessage(ev.Data)
				if err != nil {
					continue
				}
				cursor = ev.ID
				f.mu.Lock()
				f.msgs = append(f.msgs, m)
				f.mu.Unlock()
			}
		}
		s.Close()
		f.mu.Lock()
		f.reconnects++
		f.mu.Unlock()
	}
}

// Messages returns the messages received so far, in order.
func (f *Follower) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.msgs...)
}

// Nodes returns the gateway nodes (X-Chat-Node) it has been connected to.
func (f *Follower) Nodes() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for n := range f.nodes {
		out[n] = true
	}
	return out
}

// Reconnects returns how often the stream ended and was opened again;
// Resets how many reset events it got.
func (f *Follower) Reconnects() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reconnects
}

// Resets returns how many reset events it got (a resume that lost messages).
func (f *Follower) Resets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resets
}

// Stop stops following and closes the stream.
func (f *Follower) Stop() {
	select {
	case <-f.stop:
		return
	default:
		close(f.stop)
	}
	f.mu.Lock()
	if f.current != nil {
		f.current.Close()
	}
	f.mu.Unlock()
	<-f.done
}
