// Package delivery takes a room's messages from the bus to the SSE
// listeners of one gateway process. The HTTP layer parses a listen request
// and hands the listener to Delivery.Serve; everything after that is here,
// in the order a message travels:
//
//   - feed.go: what a hub carries. Chat rooms are one feed; the Mercure
//     hub's updates (package mercure) are another, served by the same hub,
//     queues and writers through ServeFeed, each listener taking only the
//     frames its Accept wants.
//   - hub.go: one NATS subscription per active room, on the history
//     stream's re-publish subject, so every message arrives stored and
//     numbered; holes in the feed are filled from history (backfill). Each
//     message is encoded once (frames.go, sse.go, cursor.go) and the same
//     bytes are queued to every listener of the room.
//   - client.go: a listener's queue, with its frame and byte budgets; a
//     listener over either is cut off instead of slowing the room.
//   - replay.go: a resuming listener first gets what it missed, from
//     history, up to the position it joined the live feed at.
//   - writer.go: the rules of a live stream, shared by both writers: skip
//     what the replay sent, heartbeat a quiet stream, say goodbye when the
//     gateway stops, end a listener that was cut off at once.
//   - the two writers behind one contract: loop.go, loopstream.go and
//     poll_linux.go write every stream from a few goroutines on
//     connections taken over from net/http (epoll); handler.go keeps a
//     stream on its net/http handler (other platforms, or by choice).
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
	"github.com/chatscalable/chatscalable/gateway/internal/metrics"
	"github.com/nats-io/nats.go"
)

// History is what delivery reads of the room history: the hub fills holes
// in live feeds from it, and resuming listeners replay from it.
type History interface {
	Source
	Before(ctx context.Context, room string, before uint64, limit int) ([]broker.Message, error)
	// Holds reports whether seq holds a message of room, as the stream's
	// leader knows it (a lagging replica's "not found" is not enough).
	Holds(ctx context.Context, room string, seq uint64) (bool, error)
}

// Presence is told of listeners joining and leaving rooms.
type Presence interface {
	Join(room, user string) (id string)
	Leave(id string)
}

// Options configures a Delivery. The gateway fills every field from its
// options (their defaults are in package defaults).
type Options struct {
	History History
	// Epoch returns the history stream's current epoch, for cursors.
	Epoch func() uint64
	// Presence, if set, is told of every listener joining and leaving, and
	// the rooms' presence events are streamed to their listeners.
	Presence Presence
	Metrics  *metrics.Metrics
	Log      *slog.Logger

	// Loop writes streams from a few goroutines on connections taken over
	// from net/http (Linux); false keeps each stream on its handler.
	Loop bool
	// MaxMessageBytes is the message rule a stored message must meet to
	// be shown (one published around the gateway may not).
	MaxMessageBytes int
	// MaxReplay bounds the messages replayed to a resuming listener.
	MaxReplay int
	// ClientQueue and ClientBuffer are a listener's frame and byte
	// budgets; over either it is cut off.
	ClientQueue  int
	ClientBuffer int
	// WriteTimeout ends a stream whose client has not taken what was
	// written to it within this time.
	WriteTimeout time.Duration
	// Heartbeat is the longest a stream goes without bytes.
	Heartbeat time.Duration
	// Coalesce: see LoopOptions.Coalesce.
	Coalesce time.Duration
	// Retry is the reconnect delay hinted to every listener, and
	// ShutdownRetry the one hinted to listeners a stopping gateway ends.
	Retry         time.Duration
	ShutdownRetry time.Duration
	// ReadTimeout bounds joining a room and each history read of a replay.
	ReadTimeout time.Duration
}

// Delivery is one gateway process's fan-out: its hub, and its stream loop
// when streams are written by one.
type Delivery struct {
	opts    Options
	hub     *Hub // the chat rooms'
	hubsMu  sync.Mutex
	hubs    []*Hub // every hub, the chat rooms' first (see AddHub)
	loop    *Loop  // nil: each stream stays on its handler
	head    []byte // the retry hint every stream starts with
	goodbye []byte // the retry hint to listeners a stopping gateway ends
}

// New starts delivery over nc.
func New(nc *nats.Conn, o Options) (*Delivery, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &Delivery{opts: o, head: appendRetry(nil, o.Retry), goodbye: appendRetry(nil, o.ShutdownRetry)}
	ho := HubOptions{Log: o.Log, Latency: o.Metrics.DeliverySeconds.Observe}
	if o.Presence != nil {
		ho.Presence = presenceFrame
	}
	d.hub = NewHub(nc, RoomFeed(o.History, d.messageFrame), ho)
	d.hubs = []*Hub{d.hub}
	if o.Loop && LoopSupported {
		var err error
		d.loop, err = NewLoop(LoopOptions{
			Heartbeat:    o.Heartbeat,
			WriteTimeout: o.WriteTimeout,
			Coalesce:     o.Coalesce,
			Goodbye:      d.goodbye,
			Delivered:    func(n int) { o.Metrics.Delivered.Add(float64(n)) },
			Log:          o.Log,
		})
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Request is one listener, parsed and checked by the HTTP layer.
type Request struct {
	Room string
	User string
	// From, if set, is the position the listener resumes after.
	From *Cursor
	// Expires, if set, is when the listener's token expires: the stream
	// gets an auth-expiring event before it, and ends at it.
	Expires time.Time
	// Release, if set, is called once when a stream that started ends
	// (what the listener held is free again).
	Release func()
	// Detach, if set, is called when the stream is about to outlive its
	// handler (the stream loop writes it from then on); it returns what
	// to call when the stream ends, with the bytes the loop wrote to it,
	// so the request's log line, its duration and its size cover the
	// whole stream.
	Detach func() (ended func(written int64))
}

// Errors of Serve, returned before anything was written: the caller
// answers the request.
var (
	// ErrUnavailable: the room cannot be joined now (NATS is away, or the
	// gateway is stopping); the client tries again.
	ErrUnavailable = errors.New("cannot listen to the room now; try again")
	// ErrNoStream: the connection could not be taken over for streaming.
	ErrNoStream = errors.New("cannot stream on this connection")
)

// Serve streams req's room to the client until it goes away, falls
// behind, or the gateway stops. The listener joins the room's hub before
// anything is read from history, so no message falls between the replay
// and the live feed; live frames the replay sent already are skipped, so
// none is sent twice.
func (d *Delivery) Serve(w http.ResponseWriter, r *http.Request, req Request) error {
	fr := FeedRequest{Hub: d.hub, Room: req.Room, Expires: req.Expires, Release: req.Release, Detach: req.Detach}
	if req.From != nil {
		from, room := *req.From, req.Room
		fr.Replay = func(ctx context.Context, send func([]byte) bool, upTo uint64) (uint64, bool) {
			return d.replay(ctx, send, room, from, upTo)
		}
	}
	if p := d.opts.Presence; p != nil {
		room, user := req.Room, req.User
		fr.Joined = func() func() {
			id := p.Join(room, user)
			return func() { p.Leave(id) }
		}
	}
	return d.ServeFeed(w, r, fr)
}

// FeedRequest is one listener of any feed's hub: a chat room (Serve
// makes one) or the Mercure hub's updates.
type FeedRequest struct {
	// Hub and Room are what the listener joins: a hub of this Delivery
	// (see AddHub) and a room of its feed.
	Hub  *Hub
	Room string
	// Accept: see Listener.Accept.
	Accept func(Frame) bool
	// Head is written right after the response headers; nil: the retry
	// hint of every chat stream.
	Head []byte
	// Replay, if set, sends what the listener missed, up to at least upTo
	// (the room's position when it joined the live feed), and returns the
	// last sequence the client has; false ends the stream.
	Replay func(ctx context.Context, send func([]byte) bool, upTo uint64) (uint64, bool)
	// Joined, if set, is called once the listener has joined, and what it
	// returns when the listener leaves (presence).
	Joined func() (left func())
	// Expires, Release and Detach: see Request. QuietExpiry ends the
	// stream at Expires without the auth-expiring event first (a Mercure
	// subscriber knows no such event).
	Expires     time.Time
	QuietExpiry bool
	Release     func()
	Detach      func() (ended func(written int64))
}

// ServeFeed streams req's room of req.Hub to the client until it goes
// away, falls behind, or the gateway stops, as Serve does for chat rooms.
// Response headers already set on w are kept (the SSE ones are added).
func (d *Delivery) ServeFeed(w http.ResponseWriter, r *http.Request, req FeedRequest) error {
	o := &d.opts // what the stream's closures keep: a pointer, not a copy
	wr := d.writerFor(w, r)
	l := Listener{Queue: o.ClientQueue, Budget: o.ClientBuffer, Accept: req.Accept}
	wr.hooks(&l)
	hub := req.Hub
	ctx, cancel := context.WithTimeout(r.Context(), o.ReadTimeout)
	c, joinedAt, err := hub.Join(ctx, req.Room, l)
	cancel()
	if err != nil {
		o.Log.Warn("join room", "room", req.Room, "err", err)
		return ErrUnavailable
	}
	o.Metrics.SSEConnections.Inc()
	var left func()
	if req.Joined != nil {
		left = req.Joined()
	}
	room, remote, release := req.Room, r.RemoteAddr, req.Release // kept by the stream, unlike the request
	leave := func() {
		if ended, why := c.Ended(); ended && errors.Is(why, ErrSlowClient) {
			o.Metrics.SlowDisconnects.Inc()
			o.Log.Info("listener cut off", "room", room, "remote", remote, "reason", why)
		}
		hub.Leave(c)
		o.Metrics.SSEConnections.Dec()
		if release != nil {
			release()
		}
		if left != nil {
			left()
		}
	}
	head := req.Head
	if head == nil {
		head = d.head
	}
	if err := wr.start(c, head); err != nil {
		leave()
		if errors.Is(err, ErrNoStream) {
			o.Log.Warn("take over stream connection", "err", err)
			return ErrNoStream
		}
		return nil // the client went away
	}
	var sent uint64 // the last sequence the client has
	if req.Replay != nil {
		o.Metrics.Replays.Inc()
		var ok bool
		if sent, ok = req.Replay(r.Context(), wr.send, joinedAt); !ok {
			wr.abort()
			leave()
			return nil
		}
	}
	s := wr.session()
	s.client, s.sent, s.goodbye = c, sent, d.goodbye
	s.setExpiry(req.Expires, defaults.AuthExpiringNotice)
	if req.QuietExpiry {
		s.warned.Store(true)
	}
	detach := req.Detach
	if detach == nil {
		detach, _ = r.Context().Value(detachKey{}).(func() func(int64))
	}
	var ended func(int64)
	if wr.detached() && detach != nil {
		ended = detach()
	}
	wr.live(s, func(reason error) {
		leave()
		o.Log.Debug("stream ended", "room", room, "reason", reason, "delivered", s.delivered, "remote", remote)
		if ended != nil {
			ended(s.written.Load())
		}
	})
	return nil
}

// detachKey carries a Detach function through a request's context.
type detachKey struct{}

// WithDetach returns ctx carrying detach (see Request.Detach), for the
// streams served under it that set none: the HTTP layer sets it for a
// handler of its own (the Mercure hub's), which need not know of it.
func WithDetach(ctx context.Context, detach func() (ended func(written int64))) context.Context {
	return context.WithValue(ctx, detachKey{}, detach)
}

// writerFor picks the writer of a stream: the loop when there is one and
// the connection can be taken over (HTTP/1.x), else the handler.
func (d *Delivery) writerFor(w http.ResponseWriter, r *http.Request) writer {
	if d.loop != nil && canHijack(w) {
		return &loopWriter{st: d.loop.NewStream(), timeout: d.opts.WriteTimeout, w: w}
	}
	return newHandlerWriter(w, r, d.opts)
}

// AddHub adds a hub of another feed (the Mercure hub's updates), whose
// listeners ServeFeed streams like the chat's: it is closed and resynced
// with the chat rooms' hub.
func (d *Delivery) AddHub(nc *nats.Conn, feed Feed, o HubOptions) *Hub {
	if o.Log == nil {
		o.Log = d.opts.Log
	}
	h := NewHub(nc, feed, o)
	d.hubsMu.Lock()
	d.hubs = append(d.hubs, h)
	d.hubsMu.Unlock()
	return h
}

// allHubs returns every hub.
func (d *Delivery) allHubs() []*Hub {
	d.hubsMu.Lock()
	defer d.hubsMu.Unlock()
	return slices.Clone(d.hubs)
}

// Close ends every listener with ErrClosed (the gateway is stopping): each
// gets the goodbye and its stream ends.
func (d *Delivery) Close() {
	for _, h := range d.allHubs() {
		h.Close()
	}
}

// Shutdown waits until the loop's streams have ended (after Close) or ctx
// ends, then stops the loop.
func (d *Delivery) Shutdown(ctx context.Context) error {
	d.Close()
	if d.loop == nil {
		return nil
	}
	return d.loop.Shutdown(ctx)
}

// Reset ends every listener with ErrResync: the history stream was
// recreated and old positions mean nothing.
func (d *Delivery) Reset() { d.hub.Reset() }

// Resync delivers what the live feeds of every hub missed while NATS was
// unreachable.
func (d *Delivery) Resync(ctx context.Context) error {
	var errs []error
	for _, h := range d.allHubs() {
		errs = append(errs, h.Resync(ctx))
	}
	return errors.Join(errs...)
}

// Err returns why streams cannot be served: the loop's poller failed.
func (d *Delivery) Err() error {
	if d.loop == nil {
		return nil
	}
	return d.loop.Err()
}

// Epoch returns the history stream's current epoch, which cursors carry.
func (d *Delivery) Epoch() uint64 { return d.opts.Epoch() }

// Clients returns the number of listeners of every hub.
func (d *Delivery) Clients() int64 {
	var n int64
	for _, h := range d.allHubs() {
		n += h.Clients()
	}
	return n
}

// Rooms returns the number of rooms with at least one listener.
func (d *Delivery) Rooms() int { return d.hub.Rooms() }

// Coalesced returns how often the stream loop held a stream back to gather
// more frames into one write (0 without a loop).
func (d *Delivery) Coalesced() int64 {
	if d.loop == nil {
		return 0
	}
	return d.loop.Coalesced()
}

// Backfills returns how many holes in live feeds were filled.
func (d *Delivery) Backfills() int64 { return d.hub.Backfills() }
