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
// queued to every client of the room. A client whose queue is over its
// frame or byte budget is disconnected rather than allowed to block the
// room or grow memory; it resumes from its last cursor when it reconnects.
//
// Locks: no lock of the hub is held across a network round trip or a
// sleep, except a room's feed lock, which only that room's delivery takes.
// Activating a room (subscribing, learning its position) and filling a
// hole from history therefore delay that room alone; joins, leaves and
// deliveries of other rooms go on.
package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
	"github.com/nats-io/nats.go"
)

// Errors that end a client; Client.Err returns them.
var (
	// ErrSlowClient ends a client that fell behind: its queue went over
	// its frame or byte budget. The error a client ends with wraps it and
	// says which.
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

// Encoder turns a stored message into the bytes sent to clients; nil
// withholds the message.
type Encoder func(broker.Message) []byte

// PresenceEncoder turns a presence event into the bytes sent to clients.
type PresenceEncoder func(broker.PresenceEvent) []byte

// Frame is one encoded event queued to a client. Seq is the message's
// history sequence, or 0 for an event outside history (presence). Meta,
// if set, is what a client's Accept decides by (a Mercure update's topics).
type Frame struct {
	Seq  uint64
	Data []byte
	Meta any
}

// HubOptions tunes a Hub.
type HubOptions struct {
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
	// ActivateTimeout bounds subscribing to a room and learning its
	// position, whoever waits for it (default 5s).
	ActivateTimeout time.Duration
	Log             *slog.Logger
}

// Hub holds the active rooms of one gateway process.
type Hub struct {
	nc   *nats.Conn
	feed Feed
	opts HubOptions
	log  *slog.Logger

	mu     sync.Mutex // guards rooms only; never held across I/O
	rooms  map[string]*room
	closed atomic.Bool

	clients   atomic.Int64
	backfills atomic.Int64
}

// NewHub returns a Hub of feed's rooms that subscribes through nc.
func NewHub(nc *nats.Conn, feed Feed, o HubOptions) *Hub {
	if o.MaxBackfill <= 0 {
		o.MaxBackfill = defaults.MaxBackfill
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = defaults.CatchUpTimeout
	}
	if o.ActivateTimeout <= 0 {
		o.ActivateTimeout = defaults.ActivateTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Hub{nc: nc, feed: feed, opts: o, log: o.Log, rooms: map[string]*room{}}
}

type room struct {
	name string
	// ready is closed once the room is subscribed and knows its position
	// (err nil) or failed to (err set).
	ready    chan struct{}
	err      error
	sub      *nats.Subscription
	presence *nats.Subscription

	// feed serialises delivery: the live handler, backfills and resyncs.
	// It is held while history is read; joins and leaves never take it.
	feed sync.Mutex

	mu      sync.Mutex // guards what follows; never held across I/O
	lastSeq uint64
	list    []*Client
	gone    bool // the room was given up; a joiner looks it up again
}

// Join registers a client of room. It returns the client and the sequence
// of the room's last message before the client joined: every later
// message is queued to the client, so a client resuming from a cursor
// replays from the stream up to that sequence and takes the rest from its
// queue.
func (h *Hub) Join(ctx context.Context, roomName string, l Listener) (*Client, uint64, error) {
	c := newClient(l)
	for {
		if h.closed.Load() {
			return nil, 0, ErrClosed
		}
		h.mu.Lock()
		r := h.rooms[roomName]
		mine := r == nil
		if mine {
			r = &room{name: roomName, ready: make(chan struct{})}
			h.rooms[roomName] = r
		}
		h.mu.Unlock()
		if mine {
			h.activate(r)
		}
		select {
		case <-r.ready:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("join room %s: %w", roomName, ctx.Err())
		}
		if r.err != nil {
			return nil, 0, r.err
		}
		r.mu.Lock()
		if r.gone || h.closed.Load() {
			// The last client left (or the hub closed) meanwhile: look
			// the room up again.
			r.mu.Unlock()
			continue
		}
		c.room = r
		r.list = append(r.list, c)
		seq := r.lastSeq
		r.mu.Unlock()
		h.clients.Add(1)
		return c, seq, nil
	}
}

// activate subscribes to a room's live feed and learns its last sequence,
// holding the room's feed lock so live messages wait until then. It uses
// a context of its own: one listener giving up must not fail the others
// waiting for the room.
func (h *Hub) activate(r *room) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.ActivateTimeout)
	defer cancel()
	r.feed.Lock()
	defer r.feed.Unlock()
	defer close(r.ready)
	fail := func(err error) {
		r.err = err
		if r.sub != nil {
			_ = r.unsubscribe()
		}
		h.mu.Lock()
		if h.rooms[r.name] == r {
			delete(h.rooms, r.name)
		}
		h.mu.Unlock()
	}
	sub, err := h.nc.Subscribe(h.feed.Subject(r.name), func(msg *nats.Msg) { h.deliver(r, msg) })
	if err != nil {
		fail(fmt.Errorf("subscribe to room %s: %w", r.name, err))
		return
	}
	// Unlimited pending in the client library: overflow is handled per
	// SSE client, where it belongs, not by dropping the room's feed.
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	if h.opts.Presence != nil {
		if r.presence, err = h.nc.Subscribe(broker.PresenceEventSubject(r.name), func(msg *nats.Msg) { h.deliverPresence(r, msg) }); err != nil {
			fail(fmt.Errorf("subscribe to room %s presence: %w", r.name, err))
			return
		}
	}
	if err := h.nc.FlushWithContext(ctx); err != nil {
		fail(fmt.Errorf("subscribe to room %s: %w", r.name, err))
		return
	}
	last, err := h.feed.LastSeq(ctx, r.name)
	if err != nil {
		fail(fmt.Errorf("room %s position: %w", r.name, err))
		return
	}
	r.mu.Lock()
	r.lastSeq = last
	r.mu.Unlock()
}

// Leave unregisters c; the room's subscription ends with its last client.
func (h *Hub) Leave(c *Client) {
	r := c.room
	if r == nil {
		return
	}
	r.mu.Lock()
	found := false
	for i, m := range r.list {
		if m == c {
			r.list = append(r.list[:i:i], r.list[i+1:]...)
			found = true
			break
		}
	}
	last := found && len(r.list) == 0 && !r.gone
	if last {
		r.gone = true
	}
	r.mu.Unlock()
	if !found {
		return
	}
	h.clients.Add(-1)
	if last {
		h.forget(r)
		if err := r.unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			h.log.Warn("unsubscribe room", "room", r.name, "err", err)
		}
	}
}

// forget removes r from the active rooms, if it is still there.
func (h *Hub) forget(r *room) {
	h.mu.Lock()
	if h.rooms[r.name] == r {
		delete(h.rooms, r.name)
	}
	h.mu.Unlock()
}

func (r *room) unsubscribe() error {
	err := r.sub.Unsubscribe()
	if r.presence != nil {
		err = errors.Join(err, r.presence.Unsubscribe())
	}
	return err
}

// active returns the rooms that are subscribed and positioned.
func (h *Hub) active() []*room {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		select {
		case <-r.ready:
			if r.err == nil {
				rooms = append(rooms, r)
			}
		default: // still activating: it learns its position itself
		}
	}
	return rooms
}

// Close ends every client with ErrClosed and refuses new ones.
func (h *Hub) Close() {
	h.closed.Store(true)
	for _, r := range h.active() {
		r.mu.Lock()
		for _, c := range r.list {
			c.end(ErrClosed)
		}
		r.mu.Unlock()
	}
}

// Reset ends every client with ErrResync and forgets every room, for when
// the history stream was recreated and old positions mean nothing.
func (h *Hub) Reset() {
	for _, r := range h.active() {
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		r.gone = true
		list := r.list
		r.list = nil
		r.mu.Unlock()
		for _, c := range list {
			c.end(ErrResync)
			h.clients.Add(-1)
		}
		h.forget(r)
		_ = r.unsubscribe()
	}
}

// Resync checks every room for messages stored while the live feed was
// down (after a NATS reconnect) and delivers them. A room whose history
// cannot be read right now (a stream leader election is the usual cause)
// keeps its clients: the error is returned so the caller tries again soon,
// and the next live message repairs any hole by itself.
func (h *Hub) Resync(ctx context.Context) error {
	var errs []error
	for _, r := range h.active() {
		last, err := h.feed.LastSeq(ctx, r.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("room %s: %w", r.name, err))
			continue
		}
		r.feed.Lock()
		if last > r.position() {
			if err := h.backfill(ctx, r, last); errors.Is(err, errBackfillTooLong) {
				r.giveUp(last)
			} else if err != nil {
				errs = append(errs, fmt.Errorf("room %s: %w", r.name, err))
			}
		}
		r.feed.Unlock()
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

// position returns the last sequence delivered to the room's clients.
func (r *room) position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSeq
}

// deliver is the room's subscription handler. nats.go calls it from one
// goroutine per subscription, so frames are queued in stream order.
func (h *Hub) deliver(r *room, msg *nats.Msg) {
	it, err := h.feed.Decode(r.name, msg)
	if err != nil {
		h.log.Warn("drop live message", "room", r.name, "err", err)
		return
	}
	r.feed.Lock()
	defer r.feed.Unlock()
	last := r.position()
	if it.Seq <= last {
		return // already delivered, by a backfill
	}
	if it.Prev > last {
		if err := h.backfill(context.Background(), r, it.Prev); err != nil {
			// The message in hand must not go out after a hole its
			// clients would never see filled: they resume by cursor.
			r.giveUp(it.Prev)
		}
	}
	r.fanOut(it.Frame)
	if h.opts.Latency != nil && !it.Stored.IsZero() {
		h.opts.Latency(time.Since(it.Stored).Seconds())
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

// fanOut queues a message frame to every client and advances the room's
// position, unless a message at or past f.Seq went out already. Empty data
// (a message the encoder withheld) only advances the position.
func (r *room) fanOut(f Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.Seq <= r.lastSeq {
		return
	}
	r.lastSeq = f.Seq
	if len(f.Data) > 0 {
		r.queue(f)
	}
}

// queue queues f to every client that accepts it, ending those over their
// budget; r.mu is held.
func (r *room) queue(f Frame) {
	for _, c := range r.list {
		if c.accept != nil && f.Meta != nil && !c.accept(f) {
			continue
		}
		if err := c.push(f); err != nil {
			c.end(err)
		}
	}
}

// endAll ends every client of the room with err.
func (r *room) endAll(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.list {
		c.end(err)
	}
}

// skipTo moves the room's position to seq without delivering.
func (r *room) skipTo(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastSeq = max(r.lastSeq, seq)
}

// giveUp skips a hole that cannot be filled and ends the room's clients
// with ErrResync; they resume by cursor, from the stream.
func (r *room) giveUp(upTo uint64) {
	r.skipTo(upTo)
	r.endAll(ErrResync)
}

// errBackfillTooLong means a hole held more than MaxBackfill messages.
var errBackfillTooLong = errors.New("too many messages to backfill")

// backfill delivers the room's stored messages after its position up to
// and including upTo; r.feed is held (and no other lock of the hub). A
// stream replica may lag behind the live feed for a moment, and no replica
// answers while the stream elects a new leader, so an incomplete or failed
// read is retried until CatchUpTimeout or the end of ctx. If the hole is
// not filled by then it returns why, having delivered what it could; the
// caller decides whether the room's clients wait for another try (Resync)
// or are sent away to resume by cursor (a live message after the hole).
func (h *Hub) backfill(ctx context.Context, r *room, upTo uint64) error {
	h.backfills.Add(1)
	deadline := time.Now().Add(h.opts.CatchUpTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	read, from := 0, r.position()
	defer func() {
		h.log.Info("backfilled room feed", "room", r.name, "after", from, "up_to", upTo, "messages", read)
	}()
	for pos := from; pos < upTo; pos = r.position() {
		if read > h.opts.MaxBackfill {
			h.log.Warn("cannot backfill room feed", "room", r.name, "from", pos, "to", upTo, "err", errBackfillTooLong)
			return errBackfillTooLong
		}
		items, err := h.feed.After(ctx, r.name, pos, 256)
		if err != nil || len(items) == 0 {
			if ctx.Err() != nil {
				err = fmt.Errorf("history read after %d of %d: %w", pos, upTo, cmp.Or(err, ctx.Err()))
				h.log.Warn("cannot backfill room feed", "room", r.name, "from", pos, "to", upTo, "err", err)
				return err
			}
			// The replica has not caught up yet, or the stream is between
			// leaders and no replica answers for a moment.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		for _, it := range items {
			if it.Seq > upTo {
				// upTo itself is gone (retention); nothing more to fill.
				r.skipTo(upTo)
				return nil
			}
			r.fanOut(it.Frame)
			read++
		}
	}
	return nil
}
