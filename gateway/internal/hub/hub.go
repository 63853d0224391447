// Package hub fans a room's messages out to the SSE clients of one gateway
// process: one NATS subscription per active room, however many clients
// listen, and a bounded queue per client.
//
// A room's subscription is on the history stream's re-publish subject
// (chat.live.<room>), so every message arrives stored, with its sequence and
// the sequence of the room's previous message. The hub keeps the last
// sequence it delivered per room; when a message's previous sequence is not
// that one, the live feed has a hole (a NATS reconnect, a dropped message)
// and the hub first backfills the hole from the stream. After a reconnect
// it also checks each room for messages it missed. Clients therefore see a
// gap-free, duplicate-free feed.
//
// Each message is encoded as an SSE frame once and the same bytes are
// queued to every client of the room. A client whose queue is full is
// disconnected rather than allowed to block the room or grow memory; it
// resumes from its last cursor when it reconnects.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// Errors that end a client; Client.Err returns them.
var (
	// ErrSlowClient ends a client whose queue overflowed.
	ErrSlowClient = errors.New("client fell behind and was disconnected")
	// ErrClosed ends every client when the hub closes (gateway shutdown).
	ErrClosed = errors.New("hub closed")
	// ErrResync ends the clients of a room whose feed could not be
	// repaired (a hole too large or unreadable, or a recreated stream);
	// they reconnect and resume from their cursors.
	ErrResync = errors.New("room feed lost continuity")
)

// Source is the room history the hub backfills holes from.
type Source interface {
	After(ctx context.Context, room string, after uint64, limit int) ([]broker.Message, uint64, error)
	LastSeq(ctx context.Context, room string) (uint64, error)
}

// Encoder turns a stored message into the bytes sent to clients.
type Encoder func(broker.Message) []byte

// PresenceEncoder turns a presence event into the bytes sent to clients.
type PresenceEncoder func(broker.PresenceEvent) []byte

// Frame is one encoded event queued to a client. Seq is the message's
// history sequence, or 0 for an event outside history (presence).
type Frame struct {
	Seq  uint64
	Data []byte
}

// Options tunes a Hub.
type Options struct {
	// MaxBackfill bounds the messages read to fill one hole; a larger hole
	// ends the room's clients with ErrResync (default 10000).
	MaxBackfill int
	// Latency, if set, observes how old each live message is (from its
	// envelope timestamp) when the hub queues it to the room's clients.
	Latency func(seconds float64)
	// Presence, if set, encodes the room's presence events (from
	// chat.presence.room.<room>), which are then queued to its clients.
	Presence PresenceEncoder
	// CatchUpTimeout bounds the wait for the stream to hold and serve the
	// messages of a hole: a lagging replica, or a leader election after a
	// node died (default 5s).
	CatchUpTimeout time.Duration
	Log            *slog.Logger
}

// Hub holds the active rooms of one gateway process.
type Hub struct {
	nc     *nats.Conn
	src    Source
	encode Encoder
	opts   Options
	log    *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	clients   atomic.Int64
	backfills atomic.Int64
}

// New returns a Hub that subscribes through nc, backfills from src and
// encodes with encode.
func New(nc *nats.Conn, src Source, encode Encoder, o Options) *Hub {
	if o.MaxBackfill <= 0 {
		o.MaxBackfill = 10000
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Hub{nc: nc, src: src, encode: encode, opts: o, log: o.Log, rooms: map[string]*room{}}
}

type room struct {
	name     string
	sub      *nats.Subscription
	presence *nats.Subscription
	members  map[*Client]struct{} // guarded by Hub.mu

	mu      sync.Mutex // serialises delivery; guards lastSeq and list
	lastSeq uint64
	list    []*Client
}

// Client is one listener of a room.
type Client struct {
	room string
	// pending holds the frames not yet taken, at most max; it grows only
	// while a client is behind, so an idle client costs a few bytes.
	mu      sync.Mutex
	pending []Frame
	max     int
	ready   chan struct{} // signalled when pending becomes non-empty
	notify  func()        // called instead, when set
	done    chan struct{}
	once    sync.Once
	err     error
	onEnd   func(error)
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
	if cap(c.pending) > 1024 {
		c.pending = nil // let a burst's memory go
	}
	return buf, n
}

// push queues f, or reports false when the queue is full.
func (c *Client) push(f Frame) bool {
	c.mu.Lock()
	if len(c.pending) >= c.max {
		c.mu.Unlock()
		return false
	}
	c.pending = append(c.pending, f)
	c.mu.Unlock()
	if c.notify != nil {
		c.notify()
		return true
	}
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return true
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

// Listener describes a client joining a room.
type Listener struct {
	// Queue is how many frames may wait for the client before it is ended
	// with ErrSlowClient (at least 1).
	Queue int
	// Notify, if set, is called whenever a frame is queued, instead of
	// signalling Ready. It runs under the room's delivery lock and must
	// not block.
	Notify func()
	// OnEnd, if set, is called once when the hub ends the client, with the
	// reason. It must not block.
	OnEnd func(error)
}

// Join registers a client of room. It returns the client and the sequence
// of the room's last message before the client joined: every later
// message is queued to the client, so a client resuming from a cursor
// replays from the stream up to that sequence and takes the rest from its
// queue.
func (h *Hub) Join(ctx context.Context, roomName string, l Listener) (*Client, uint64, error) {
	c := &Client{room: roomName, max: max(l.Queue, 1), notify: l.Notify, done: make(chan struct{}), onEnd: l.OnEnd}
	if l.Notify == nil {
		c.ready = make(chan struct{}, 1)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, 0, ErrClosed
	}
	r := h.rooms[roomName]
	if r == nil {
		var err error
		if r, err = h.activate(ctx, roomName); err != nil {
			return nil, 0, err
		}
		h.rooms[roomName] = r
	}
	r.members[c] = struct{}{}
	h.clients.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, c)
	return c, r.lastSeq, nil
}

// activate subscribes to a room's live feed and learns its last sequence.
// The room's delivery lock is held until then, so live messages wait.
func (h *Hub) activate(ctx context.Context, name string) (*room, error) {
	r := &room{name: name, members: map[*Client]struct{}{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	sub, err := h.nc.Subscribe(broker.LiveSubject(name), func(msg *nats.Msg) { h.deliver(r, msg) })
	if err != nil {
		return nil, fmt.Errorf("subscribe to room %s: %w", name, err)
	}
	// Unlimited pending in the client library: overflow is handled per
	// SSE client, where it belongs, not by dropping the room's feed.
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	if h.opts.Presence != nil {
		if r.presence, err = h.nc.Subscribe(broker.PresenceEventSubject(name), func(msg *nats.Msg) { h.deliverPresence(r, msg) }); err != nil {
			r.unsubscribe()
			return nil, fmt.Errorf("subscribe to room %s presence: %w", name, err)
		}
	}
	if err := h.nc.FlushWithContext(ctx); err != nil {
		r.unsubscribe()
		return nil, fmt.Errorf("subscribe to room %s: %w", name, err)
	}
	if r.lastSeq, err = h.src.LastSeq(ctx, name); err != nil {
		r.unsubscribe()
		return nil, fmt.Errorf("room %s position: %w", name, err)
	}
	return r, nil
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
	r.mu.Lock()
	for i, m := range r.list {
		if m == c {
			r.list = append(r.list[:i:i], r.list[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	if len(r.members) == 0 {
		delete(h.rooms, c.room)
		if err := r.unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			h.log.Warn("unsubscribe room", "room", c.room, "err", err)
		}
	}
}

func (r *room) unsubscribe() error {
	err := r.sub.Unsubscribe()
	if r.presence != nil {
		err = errors.Join(err, r.presence.Unsubscribe())
	}
	return err
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

// Reset ends every client with ErrResync and forgets every room, for when
// the history stream was recreated and old positions mean nothing.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, r := range h.rooms {
		for c := range r.members {
			c.end(ErrResync)
			h.clients.Add(-1)
		}
		_ = r.unsubscribe()
		delete(h.rooms, name)
	}
}

// Resync checks every room for messages stored while the live feed was
// down (after a NATS reconnect) and delivers them. A room whose history
// cannot be read right now (a stream leader election is the usual cause)
// keeps its clients: the error is returned so the caller tries again soon,
// and the next live message repairs any hole by itself.
func (h *Hub) Resync(ctx context.Context) error {
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	var errs []error
	for _, r := range rooms {
		last, err := h.src.LastSeq(ctx, r.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("room %s: %w", r.name, err))
			continue
		}
		r.mu.Lock()
		if last > r.lastSeq {
			h.backfill(ctx, r, last)
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Clients returns the number of registered clients.
func (h *Hub) Clients() int64 { return h.clients.Load() }

// Backfills returns how many holes in live feeds were backfilled.
func (h *Hub) Backfills() int64 { return h.backfills.Load() }

// Rooms returns the number of rooms with at least one client.
func (h *Hub) Rooms() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

// deliver is the room's subscription handler. nats.go calls it from one
// goroutine per subscription, so frames are queued in stream order.
func (h *Hub) deliver(r *room, msg *nats.Msg) {
	m, err := broker.StoredMessage(msg.Header, msg.Data)
	if err != nil {
		h.log.Warn("drop live message", "room", r.name, "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Seq <= r.lastSeq {
		return // already delivered, by a backfill
	}
	if prev := broker.LastSequence(msg.Header); prev > r.lastSeq {
		h.backfill(context.Background(), r, prev)
	}
	r.fanOut(m.Seq, h.encode(m))
	if h.opts.Latency != nil && !m.TS.IsZero() {
		h.opts.Latency(time.Since(m.TS).Seconds())
	}
}

// deliverPresence queues a presence event to the room's clients.
func (h *Hub) deliverPresence(r *room, msg *nats.Msg) {
	var e broker.PresenceEvent
	if err := json.Unmarshal(msg.Data, &e); err != nil || e.Room != r.name {
		h.log.Warn("drop presence event", "room", r.name, "err", err)
		return
	}
	data := h.opts.Presence(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue(Frame{Data: data})
}

// fanOut queues a message frame to every client; r.mu is held.
func (r *room) fanOut(seq uint64, data []byte) {
	r.lastSeq = seq
	r.queue(Frame{Seq: seq, Data: data})
}

// queue queues f to every client, ending those whose queue is full; r.mu
// is held.
func (r *room) queue(f Frame) {
	for _, c := range r.list {
		if !c.push(f) {
			c.end(ErrSlowClient)
		}
	}
}

// backfill delivers the room's stored messages after r.lastSeq up to and
// including upTo; r.mu is held. A stream replica may lag behind the live
// feed for a moment, and no replica answers while the stream elects a new
// leader, so an incomplete or failed read is retried until CatchUpTimeout; if the hole cannot be filled the room's clients are
// ended with ErrResync, and they resume by cursor.
func (h *Hub) backfill(ctx context.Context, r *room, upTo uint64) {
	h.backfills.Add(1)
	deadline := time.Now().Add(h.opts.CatchUpTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	read, from := 0, r.lastSeq
	defer func() {
		h.log.Info("backfilled room feed", "room", r.name, "after", from, "up_to", upTo, "messages", read)
	}()
	for r.lastSeq < upTo {
		msgs, _, err := h.src.After(ctx, r.name, r.lastSeq, 256)
		if time.Now().After(deadline) || read > h.opts.MaxBackfill || ctx.Err() != nil {
			h.log.Warn("cannot backfill room feed", "room", r.name, "from", r.lastSeq, "to", upTo, "err", err)
			r.lastSeq = upTo
			for _, c := range r.list {
				c.end(ErrResync)
			}
			return
		}
		if err != nil || len(msgs) == 0 {
			// The replica has not caught up yet, or the stream is between
			// leaders and no replica answers for a moment.
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for _, m := range msgs {
			if m.Seq > upTo {
				// upTo itself is gone (retention); nothing more to fill.
				r.lastSeq = upTo
				return
			}
			r.fanOut(m.Seq, h.encode(m))
			read++
		}
	}
}
