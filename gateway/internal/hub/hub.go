// Package hub fans a room's messages out to the SSE clients of one gateway
// process: one NATS subscription per active room, however many clients
// listen, and a bounded queue per client.
//
// A room's subscription is on the history stream's re-publish subject
// (chat.live.<room>), so every message arrives stored, with its sequence.
// Each message is encoded as an SSE frame once and the same bytes are
// queued to every client of the room. A client whose queue is full is
// disconnected rather than allowed to block the room or grow memory; it
// resumes from its last cursor when it reconnects.
package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// Errors that end a client; Client.Err returns them.
var (
	// ErrSlowClient ends a client whose queue overflowed.
	ErrSlowClient = errors.New("client fell behind and was disconnected")
	// ErrClosed ends every client when the hub closes (gateway shutdown).
	ErrClosed = errors.New("hub closed")
)

// Encoder turns a stored message into the bytes sent to clients.
type Encoder func(broker.Message) []byte

// Hub holds the active rooms of one gateway process.
type Hub struct {
	nc     *nats.Conn
	encode Encoder
	log    *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	clients atomic.Int64
}

// New returns a Hub that subscribes through nc and encodes with encode.
func New(nc *nats.Conn, encode Encoder, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{nc: nc, encode: encode, log: log, rooms: map[string]*room{}}
}

type room struct {
	name    string
	sub     *nats.Subscription
	members map[*Client]struct{}      // guarded by Hub.mu
	list    atomic.Pointer[[]*Client] // copy of members read by the subscription
}

// Client is one listener of a room.
type Client struct {
	room  string
	queue chan []byte
	done  chan struct{}
	once  sync.Once
	err   error
	onEnd func(error)
}

// Frames returns the channel of encoded frames queued to the client.
func (c *Client) Frames() <-chan []byte { return c.queue }

// Done is closed when the hub ends the client (slow client or shutdown).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client was ended, after Done is closed.
func (c *Client) Err() error {
	<-c.done
	return c.err
}

// Room returns the room the client listens to.
func (c *Client) Room() string { return c.room }

func (c *Client) end(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		if c.onEnd != nil {
			c.onEnd(err)
		}
	})
}

// Join registers a client of room with a queue of queueLen frames. When it
// returns, the room's subscription is registered with the NATS server, so
// every message stored after that reaches the client. onEnd, if not nil,
// is called once when the hub ends the client; it must not block (the
// SSE handler uses it to interrupt a write stuck on a stalled connection).
func (h *Hub) Join(roomName string, queueLen int, onEnd func(error)) (*Client, error) {
	if queueLen < 1 {
		queueLen = 1
	}
	c := &Client{room: roomName, queue: make(chan []byte, queueLen), done: make(chan struct{}), onEnd: onEnd}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	r := h.rooms[roomName]
	if r == nil {
		r = &room{name: roomName, members: map[*Client]struct{}{}}
		sub, err := h.nc.Subscribe(broker.LiveSubject(roomName), r.deliver(h))
		if err != nil {
			return nil, fmt.Errorf("subscribe to room %s: %w", roomName, err)
		}
		// Unlimited pending in the client library: overflow is handled per
		// SSE client, where it belongs, not by dropping the room's feed.
		_ = sub.SetPendingLimits(-1, -1)
		if err := h.nc.Flush(); err != nil {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("subscribe to room %s: %w", roomName, err)
		}
		r.sub = sub
		h.rooms[roomName] = r
	}
	r.members[c] = struct{}{}
	r.publishList()
	h.clients.Add(1)
	return c, nil
}

// Leave unregisters c; the room's subscription ends with its last client.
func (h *Hub) Leave(c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[c.room]
	if r == nil {
		return
	}
	if _, ok := r.members[c]; !ok {
		return
	}
	delete(r.members, c)
	h.clients.Add(-1)
	r.publishList()
	if len(r.members) == 0 {
		delete(h.rooms, c.room)
		if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			h.log.Warn("unsubscribe room", "room", c.room, "err", err)
		}
	}
}

// Close ends every client with ErrClosed and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, r := range h.rooms {
		for c := range r.members {
			c.end(ErrClosed)
		}
	}
}

// SetEncoder sets the frame encoder; call it before the first Join.
func (h *Hub) SetEncoder(encode Encoder) { h.encode = encode }

// Clients returns the number of registered clients.
func (h *Hub) Clients() int64 { return h.clients.Load() }

// Rooms returns the number of rooms with at least one client.
func (h *Hub) Rooms() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

func (r *room) publishList() {
	list := make([]*Client, 0, len(r.members))
	for c := range r.members {
		list = append(list, c)
	}
	r.list.Store(&list)
}

// deliver is the room's subscription handler. nats.go calls it from one
// goroutine per subscription, so frames are queued in stream order.
func (r *room) deliver(h *Hub) nats.MsgHandler {
	return func(msg *nats.Msg) {
		m, err := broker.StoredMessage(msg.Header, msg.Data)
		if err != nil {
			h.log.Warn("drop live message", "room", r.name, "err", err)
			return
		}
		frame := h.encode(m)
		for _, c := range *r.list.Load() {
			select {
			case c.queue <- frame:
			default:
				c.end(ErrSlowClient)
			}
		}
	}
}
