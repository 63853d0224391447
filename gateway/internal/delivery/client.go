package delivery

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Listener describes a client joining a room.
type Listener struct {
	// Queue is how many frames may wait for the client before it is ended
	// with ErrSlowClient (at least 1), while its connection holds output it
	// has not taken (see Client.SetUnsent): the client is slow. While the
	// connection has taken everything written to it, the frames wait for
	// the gateway's own writers, which may be behind under load; then
	// up to ownBacklog times as many may wait, so a busy gateway does not
	// cut off clients that read everything it sends them.
	Queue int
	// Budget is how many bytes may wait for the client, queued frames and
	// output its writer took but the connection did not (see
	// Client.SetUnsent), before it is ended with ErrSlowClient. 0: no byte
	// limit. A frame is always accepted by a client with nothing waiting,
	// so a budget smaller than one frame cannot mute a client.
	Budget int
	// Notify, if set, is called whenever a frame is queued, instead of
	// signalling Ready. It runs under the room's delivery lock and must
	// not block.
	Notify func()
	// OnEnd, if set, is called once when the hub ends the client, with the
	// reason. It must not block.
	OnEnd func(error)
	// Accept, if set, decides which frames carrying Meta the client is
	// queued (a Mercure subscriber's topic selectors); frames without
	// Meta always are. It runs under the room's delivery lock and must
	// not block.
	Accept func(Frame) bool
}

// Client is one listener of a room.
type Client struct {
	room *room
	// pending holds the frames not yet taken; it grows only while a
	// client is behind, so an idle client costs a few bytes.
	// The counters are 32-bit: an idle client should fit a small size
	// class, and frames and budgets stay far below 2 GB.
	mu           sync.Mutex
	pending      []Frame
	pendingBytes int32
	maxFrames    int32
	budget       int32
	unsent       atomic.Int32
	ready        chan struct{} // signalled when pending becomes non-empty
	notify       func()        // called instead, when set
	done         chan struct{}
	once         sync.Once
	err          error
	onEnd        func(error)
	accept       func(Frame) bool
}

func newClient(l Listener) *Client {
	c := &Client{maxFrames: int32(min(max(l.Queue, 1), math.MaxInt32)), budget: int32(min(max(l.Budget, 0), math.MaxInt32)),
		notify: l.Notify, done: make(chan struct{}), onEnd: l.OnEnd, accept: l.Accept}
	if l.Notify == nil {
		c.ready = make(chan struct{}, 1)
	}
	return c
}

// Ready is signalled when frames are waiting; AppendWaiting takes them. A client joined
// with Listener.Notify is told through that instead.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Ended reports whether the hub has ended the client, and why.
func (c *Client) Ended() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// AppendWaiting appends to buf the data of the waiting frames the client
// has not had yet, oldest first: presence events (Seq 0) and messages
// after *sent, which it advances. It empties the queue and returns buf
// and how many messages it appended.
func (c *Client) AppendWaiting(buf []byte, sent *uint64) ([]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.pending {
		if f.Seq == 0 || f.Seq > *sent {
			buf = append(buf, f.Data...)
			if f.Seq > 0 {
				*sent = f.Seq
				n++
			}
		}
	}
	clear(c.pending) // drop the references to the frames' bytes
	c.pending = c.pending[:0]
	c.pendingBytes = 0
	if cap(c.pending) > 1024 {
		c.pending = nil // let a burst's memory go
	}
	return buf, n
}

// SetUnsent tells the client how many bytes its writer holds that the
// connection has not taken yet; they count against the byte budget.
func (c *Client) SetUnsent(n int) { c.unsent.Store(int32(min(n, math.MaxInt32))) } //nolint:gosec // clamped on this line

// ownBacklog is how many times Listener.Queue frames may wait for a client
// whose connection took everything written to it.
const ownBacklog = 4

// push queues f, or returns why the client cannot take it.
func (c *Client) push(f Frame) error {
	c.mu.Lock()
	unsent := int(c.unsent.Load())
	waiting := int(c.pendingBytes) + unsent
	limit := int(c.maxFrames)
	if unsent == 0 {
		limit *= ownBacklog
	}
	switch {
	case len(c.pending) >= limit:
		c.mu.Unlock()
		return fmt.Errorf("%w: %d messages waiting, the limit is %d", ErrSlowClient, len(c.pending), limit)
	case c.budget > 0 && waiting > 0 && waiting+len(f.Data) > int(c.budget):
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes waiting and %d more, the budget is %d", ErrSlowClient, waiting, len(f.Data), c.budget)
	}
	c.pending = append(c.pending, f)
	c.pendingBytes += int32(len(f.Data)) //nolint:gosec // a frame is at most a few MB
	c.mu.Unlock()
	if c.notify != nil {
		c.notify()
		return nil
	}
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return nil
}

// Done is closed when the hub ends the client.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client was ended, after Done is closed.
func (c *Client) Err() error {
	<-c.done
	return c.err
}

func (c *Client) end(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		if c.onEnd != nil {
			c.onEnd(err)
		}
	})
}
