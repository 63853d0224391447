// Package stream serves SSE streams on connections taken over from
// net/http, from a fixed set of goroutines instead of two per connection.
//
// With net/http a streaming response holds its handler goroutine, a
// background reader goroutine and the server's buffered reader and
// writers for as long as it lasts: about 30 KB per idle listener, and a
// goroutine wake-up per listener per message. Once the SSE response
// headers are out, the gateway hijacks the connection and attaches it to a
// Loop:
//
//   - one poller goroutine (epoll on Linux) notices connections that the
//     client closed, and connections that can be written again after a
//     full socket buffer;
//   - a few workers (one per CPU) write the frames the hub queued, taking
//     a stream's whole backlog in one non-blocking write; a worker never
//     waits on a slow client: what the socket does not take waits in the
//     stream until the poller says it can be written;
//   - one sweeper goroutine sends heartbeats to quiet streams and closes
//     streams whose client has not caught up for the write timeout.
//
// An idle listener then costs its socket, its hub entry and this package's
// small Stream, and a message to a room wakes a worker or two, not one
// goroutine per listener.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
)

// Reasons a stream ends, passed to its OnClose.
var (
	ErrClientGone   = errors.New("client closed the connection")
	ErrWriteTimeout = errors.New("client did not catch up within the write timeout")
	ErrLoopClosed   = errors.New("stream loop closed")
)

// LoopOptions tunes a Loop.
type LoopOptions struct {
	// Workers is the number of writing goroutines (default GOMAXPROCS).
	Workers int
	// Heartbeat is the longest a stream goes without bytes: a quiet
	// stream gets a comment line (default 15s).
	Heartbeat time.Duration
	// WriteTimeout ends a stream whose client has not taken everything
	// written to it for this long, however little it reads meanwhile
	// (default 10s).
	WriteTimeout time.Duration
	// Goodbye is written to streams that end because the gateway stops
	// (ErrClosed), typically a short retry hint.
	Goodbye []byte
	// Coalesce is, while the loop is behind (see BehindAfter), the
	// shortest time between two writes to one stream: frames that arrive
	// sooner wait the rest of it and go out together, in one system call.
	// A loop that keeps up writes at once, however many streams a message
	// wakes, and a stream written less often than this (a chat at a human
	// pace) is never delayed; behind, busy rooms trade up to this much
	// latency for far fewer writes, which is what lets the loop catch up
	// and keeps the latency of everything else down. 0 always writes at
	// once.
	Coalesce time.Duration
	// BehindAfter is how long the queue of streams waiting for a worker
	// may stay non-empty before the loop counts as behind and starts to
	// coalesce; it stays behind for a few coalescing windows after that
	// (default 2ms). Whether the workers empty their queue, not how many
	// streams wait, says whether they keep up: a message to a few hundred
	// listeners is written within a millisecond or two and the queue is
	// empty until the next message; a gateway that shares its cores with
	// others (three mesh nodes on two cores) or fans out a busy room to
	// thousands is behind, and coalescing is what lets it catch up.
	BehindAfter time.Duration
	// SendBuffer is the kernel send buffer of each stream's socket, in
	// bytes (default 128 KiB; the kernel doubles it for its bookkeeping).
	// Left to itself the kernel grows it to megabytes for a client that
	// does not read; bounded, what a stalled client pins stays within its
	// budget and the write timeout notices it.
	SendBuffer int
	// Delivered, if set, is told how many messages each write delivered.
	Delivered func(n int)
	Log       *slog.Logger
}

// Loop owns the attached streams.
type Loop struct {
	opts   LoopOptions
	poller *poller

	qmu   sync.Mutex
	qcond *sync.Cond
	queue []*Stream
	qhead int
	// busySince is the unix nanoseconds when the queue last went from
	// empty to not empty; 0 while it is empty. Written under qmu.
	busySince atomic.Int64

	dmu     sync.Mutex
	delayed []*Stream    // streams waiting out Coalesce, still "queued"
	dtimer  *time.Timer  // moves due streams to the queue; armed while delayed is not empty
	held    atomic.Int64 // how often a stream was held back to coalesce
	// behindUntil is the unix nanoseconds until which the loop counts as
	// behind: a stream waited longer than BehindAfter shortly before.
	behindUntil atomic.Int64

	mu      sync.Mutex
	streams map[*Stream]struct{}
	closing bool
	empty   chan struct{} // closed when closing and no stream is left

	nextID atomic.Uint32
	failed atomic.Pointer[error] // why the poller stopped on its own
	stop   chan struct{}
	wg     sync.WaitGroup
}

// LoopSupported reports whether this platform can run a Loop; elsewhere the
// gateway keeps each stream on its net/http handler goroutine.
const LoopSupported = pollSupported

// NewLoop starts a Loop.
func NewLoop(o LoopOptions) (*Loop, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = defaults.Heartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaults.WriteTimeout
	}
	if o.BehindAfter <= 0 {
		o.BehindAfter = defaults.BehindAfter
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = defaults.SendBuffer
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l := &Loop{opts: o, streams: map[*Stream]struct{}{}, stop: make(chan struct{}), empty: make(chan struct{})}
	l.qcond = sync.NewCond(&l.qmu)
	l.dtimer = time.AfterFunc(time.Hour, l.undelay)
	l.dtimer.Stop()
	p, err := newPoller(l)
	if err != nil {
		return nil, err
	}
	l.poller = p
	l.wg.Add(o.Workers + 2)
	for range o.Workers {
		go l.work()
	}
	go func() {
		defer l.wg.Done()
		err := p.run()
		select {
		case <-l.stop:
		default:
			if err == nil {
				err = errors.New("the poller stopped")
			}
			l.failed.Store(&err)
		}
	}()
	go l.sweep()
	return l, nil
}

// Coalesced returns how often a stream was held back to gather more
// frames into one write.
func (l *Loop) Coalesced() int64 { return l.held.Load() }

// Streams returns the number of attached streams.
func (l *Loop) Streams() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.streams)
}

func (l *Loop) enqueue(s *Stream) {
	l.qmu.Lock()
	l.markBusy()
	l.queue = append(l.queue, s)
	l.qmu.Unlock()
	l.qcond.Signal()
}

// next returns the next stream to run, or nil when the loop stops.
func (l *Loop) next() *Stream {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	for l.qhead == len(l.queue) {
		select {
		case <-l.stop:
			return nil
		default:
		}
		l.qcond.Wait()
	}
	s := l.queue[l.qhead]
	l.queue[l.qhead] = nil
	l.qhead++
	if l.qhead == len(l.queue) {
		l.busySince.Store(0)
		l.queue, l.qhead = l.queue[:0], 0
		if cap(l.queue) > 4096 {
			l.queue = nil // let a burst's memory go
		}
	}
	return s
}

// work runs queued streams until the loop stops.
func (l *Loop) work() {
	defer l.wg.Done()
	var scratch []byte
	for {
		s := l.next()
		if s == nil {
			return
		}
		if l.opts.Coalesce > 0 && l.behind(s, time.Now().UnixNano()) && s.forced.Load() == nil && len(s.out) == 0 {
			l.delay(s) // written a moment ago: gather more first
			continue
		}
		s.state.Store(running)
		scratch = s.run(scratch[:0])
		if cap(scratch) > 256<<10 {
			scratch = nil
		}
		if !s.state.CompareAndSwap(running, idle) {
			s.state.Store(queued) // notified while running: run again
			l.enqueue(s)
		}
	}
}

// markBusy notes when the queue stops being empty; l.qmu is held.
func (l *Loop) markBusy() {
	if l.qhead == len(l.queue) {
		l.busySince.Store(time.Now().UnixNano())
	}
}

// behind reports whether s, just taken from the queue at now, should wait
// out the coalescing window: the loop is behind (its queue has not been
// empty for BehindAfter, now or shortly before) and s was written a
// moment ago.
func (l *Loop) behind(s *Stream, now int64) bool {
	if b := l.busySince.Load(); b != 0 && now-b > l.opts.BehindAfter.Nanoseconds() {
		l.behindUntil.Store(now + behindWindows*l.opts.Coalesce.Nanoseconds())
	} else if now >= l.behindUntil.Load() {
		return false
	}
	return l.early(s, now)
}

// behindWindows is how many coalescing windows the loop stays behind after
// it last found its queue busy too long: long enough not to flap with
// every message, short enough that a loop which caught up soon writes at
// once again.
const behindWindows = 5

// delay holds s, which stays queued, until Coalesce after its last write.
func (l *Loop) delay(s *Stream) {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	l.delayed = append(l.delayed, s)
	l.held.Add(1)
	if len(l.delayed) == 1 {
		wait := time.Duration(s.lastWrite.Load() + l.opts.Coalesce.Nanoseconds() - time.Now().UnixNano())
		l.dtimer.Reset(max(wait, 0))
	}
}

// early reports whether s was written too recently to be written again at
// now. Anything due within a tenth of the window counts as due: timers
// are not that precise, and one wake-up should serve many streams.
func (l *Loop) early(s *Stream, now int64) bool {
	c := l.opts.Coalesce.Nanoseconds()
	return now-s.lastWrite.Load() < c-c/10
}

// undelay queues the delayed streams whose wait is over and sets the
// timer for the rest.
func (l *Loop) undelay() {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	now := time.Now().UnixNano()
	next := int64(0)
	keep := l.delayed[:0]
	var due []*Stream
	for _, s := range l.delayed {
		if !l.early(s, now) {
			due = append(due, s)
			continue
		}
		keep = append(keep, s)
		if at := s.lastWrite.Load() + l.opts.Coalesce.Nanoseconds(); next == 0 || at < next {
			next = at
		}
	}
	clear(l.delayed[len(keep):])
	l.delayed = keep
	if len(keep) > 0 {
		l.dtimer.Reset(time.Duration(next - now))
	}
	if len(due) > 0 {
		l.qmu.Lock()
		l.markBusy()
		l.queue = append(l.queue, due...)
		l.qmu.Unlock()
		l.qcond.Broadcast()
	}
}

func (l *Loop) forget(s *Stream) {
	l.mu.Lock()
	delete(l.streams, s)
	l.signalEmpty()
	l.mu.Unlock()
}

// signalEmpty closes l.empty once the loop is closing and holds no
// stream; l.mu is held.
func (l *Loop) signalEmpty() {
	if !l.closing || len(l.streams) > 0 {
		return
	}
	select {
	case <-l.empty:
	default:
		close(l.empty)
	}
}

// sweep sends heartbeats, closes stuck streams, and wakes streams whose
// token is about to expire or expired.
func (l *Loop) sweep() {
	defer l.wg.Done()
	every := min(max(l.opts.Heartbeat/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var batch []*Stream
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		beat := l.opts.Heartbeat.Nanoseconds()
		stuck := l.opts.WriteTimeout.Nanoseconds()
		l.mu.Lock()
		wall := time.Unix(0, now)
		for s := range l.streams {
			if b := s.blockedSince.Load(); b != 0 && now-b >= stuck {
				batch = append(batch, s)
			} else if b == 0 && now-s.lastWrite.Load() >= beat && !s.heartbeat.Load() {
				s.heartbeat.Store(true)
				batch = append(batch, s)
			} else if s.sess.expiryDue(wall) {
				batch = append(batch, s) // its token's warning or end
			}
		}
		l.mu.Unlock()
		for _, s := range batch {
			if b := s.blockedSince.Load(); b != 0 && now-b >= stuck {
				s.end(ErrWriteTimeout)
			} else {
				s.Notify()
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}

// Shutdown waits until every stream has ended (the hub, closed first, ends
// their clients with ErrClosed, so each gets the Goodbye and closes) or
// ctx ends, then closes what is left and stops the loop.
func (l *Loop) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.signalEmpty()
	l.mu.Unlock()
	var err error
	select {
	case <-l.empty:
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	left := make([]*Stream, 0, len(l.streams))
	for s := range l.streams {
		left = append(left, s)
	}
	l.mu.Unlock()
	for _, s := range left {
		s.end(ErrLoopClosed)
	}
	select {
	case <-l.empty:
	case <-time.After(time.Second):
	}
	close(l.stop)
	l.dtimer.Stop()
	l.qmu.Lock()
	l.qcond.Broadcast()
	l.qmu.Unlock()
	l.poller.close()
	l.wg.Wait()
	// Streams no worker reached are closed here.
	for _, s := range left {
		s.close(ErrLoopClosed)
	}
	return err
}
