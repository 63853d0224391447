// Package ssetest is an SSE client for tests: it opens a stream, waits
// until the server has registered it, and hands out parsed events.
package ssetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Event is one SSE event or field group.
type Event struct {
	ID    string
	Event string
	Data  string
	Retry string
}

// Message is the JSON data of a message event.
type Message struct {
	Seq    uint64    `json:"seq"`
	ID     string    `json:"id"`
	Room   string    `json:"room"`
	User   string    `json:"user"`
	Text   string    `json:"text"`
	TS     time.Time `json:"ts"`
	Node   string    `json:"node"`
	Cursor string    `json:"cursor"`
}

// Stream is an open SSE stream.
type Stream struct {
	Resp   *http.Response
	events chan Event
	cancel context.CancelFunc
	client *http.Client
	mu     sync.Mutex
	paused bool
	cond   *sync.Cond
}

// Option changes how a stream is opened.
type Option func(*net.Dialer)

// RecvBuffer sets the stream socket's receive buffer to n bytes, so a
// paused stream fills the connection quickly, like a stalled client.
func RecvBuffer(n int) Option {
	return func(d *net.Dialer) {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
}

// ErrClosed is returned by Next once the stream has ended.
var ErrClosed = errors.New("stream ended")

// Open opens url as an SSE stream with optional headers and waits until the
// server has sent its opening retry field, which it does after registering
// the listener. The stream is closed when the test ends.
func Open(t testing.TB, url string, header http.Header, opts ...Option) *Stream {
	t.Helper()
	s, err := Dial(url, header, opts...)
	if err != nil {
		t.Fatalf("open stream %s: %v", url, err)
	}
	t.Cleanup(s.Close)
	return s
}

// OpenBare opens a stream that does not start with a retry field (a
// Mercure hub's): it returns once the response headers have arrived,
// which the gateway sends after the subscriber has joined its feed.
func OpenBare(t testing.TB, url string, header http.Header) *Stream {
	t.Helper()
	s, err := dial(url, header, false)
	if err != nil {
		t.Fatalf("open stream %s: %v", url, err)
	}
	t.Cleanup(s.Close)
	return s
}

// Dial is Open without a test: it returns an error instead of failing.
func Dial(url string, header http.Header, opts ...Option) (*Stream, error) {
	return dial(url, header, true, opts...)
}

func dial(url string, header http.Header, retryFirst bool, opts ...Option) (*Stream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	for _, o := range opts {
		o(dialer)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	s := &Stream{Resp: resp, events: make(chan Event, 1<<16), cancel: cancel, client: client}
	s.cond = sync.NewCond(&s.mu)
	go s.read()
	if !retryFirst {
		return s, nil
	}
	select {
	case ev, ok := <-s.events:
		if !ok || ev.Retry == "" {
			s.Close()
			return nil, fmt.Errorf("stream did not open with a retry field: %+v", ev)
		}
	case <-time.After(10 * time.Second):
		s.Close()
		return nil, errors.New("stream did not open within 10s")
	}
	return s, nil
}

func (s *Stream) read() {
	defer close(s.events)
	r := bufio.NewReaderSize(s.Resp.Body, 64<<10)
	var ev Event
	var data []string
	for {
		s.mu.Lock()
		for s.paused {
			s.cond.Wait()
		}
		s.mu.Unlock()
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev != (Event{}) || data != nil {
				ev.Data = strings.Join(data, "\n")
				s.events <- ev
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				data = append(data, value)
			case "retry":
				ev.Retry = value
			}
		}
	}
}

// Next returns the next event, waiting at most timeout.
func (s *Stream) Next(timeout time.Duration) (Event, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return Event{}, ErrClosed
		}
		return ev, nil
	case <-time.After(timeout):
		return Event{}, fmt.Errorf("no event within %s", timeout)
	}
}

// NextMessage returns the next message event's data, skipping other
// events, waiting at most timeout in all.
func (s *Stream) NextMessage(timeout time.Duration) (Message, Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		ev, err := s.Next(time.Until(deadline))
		if err != nil {
			return Message{}, ev, err
		}
		if ev.Event != "message" {
			continue
		}
		m, err := decodeMessage(ev.Data)
		return m, ev, err
	}
}

// Pause stops reading from the connection (after the current line and
// what is already buffered), as a stalled client would.
func (s *Stream) Pause() {
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
}

// Resume reads from the connection again after Pause.
func (s *Stream) Resume() {
	s.mu.Lock()
	s.paused = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Drain discards events until the stream ends and returns ErrClosed, or
// returns another error when it has not ended within timeout.
func (s *Stream) Drain(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return ErrClosed
			}
		case <-deadline:
			return fmt.Errorf("stream still open after %s", timeout)
		}
	}
}

func decodeMessage(data string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return Message{}, fmt.Errorf("message data %q: %w", data, err)
	}
	return m, nil
}

// Close ends the stream and releases its connection.
func (s *Stream) Close() {
	s.Resume()
	s.cancel()
	_ = s.Resp.Body.Close()
	s.client.CloseIdleConnections()
}

// PresenceEvent is the data of a presence event.
type PresenceEvent struct {
	Type string `json:"type"`
	User string `json:"user"`
	Room string `json:"room"`
}

// NextPresence returns the next presence event whose user does not start
// with "probe", skipping other events, waiting at most timeout in all.
func (s *Stream) NextPresence(timeout time.Duration) (PresenceEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		ev, err := s.Next(time.Until(deadline))
		if err != nil {
			return PresenceEvent{}, fmt.Errorf("waiting for a presence event: %w", err)
		}
		if ev.Event != "presence" {
			continue
		}
		var e PresenceEvent
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			return PresenceEvent{}, fmt.Errorf("presence data %q: %w", ev.Data, err)
		}
		if !strings.HasPrefix(e.User, "probe") {
			return e, nil
		}
	}
}

// WaitForPresence waits until presence events reach watcher: it connects
// and disconnects a listener named probe at eventsURL (a room's events
// URL, on any gateway) until watcher, a listener of the same room, sees
// the probe join and leave. Presence is announced once the presence
// replicas have warmed up and the gateway's room feed is subscribed.
func WaitForPresence(t testing.TB, eventsURL string, watcher *Stream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no presence events within %s", timeout)
		}
		p, err := Dial(eventsURL+"?user=probe", nil)
		if err != nil {
			t.Fatalf("probe listener: %v", err)
		}
		p.Close()
		joined := false
		for {
			ev, err := watcher.Next(500 * time.Millisecond)
			if err != nil {
				break // not announced (yet); probe again
			}
			if ev.Event != "presence" || !strings.Contains(ev.Data, `"user":"probe"`) {
				continue
			}
			if strings.Contains(ev.Data, `"join"`) {
				joined = true
			} else if joined {
				return
			}
		}
	}
}
