package delivery

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Stream is one SSE stream: a hub client written to a connection.
type Stream struct {
	loop *Loop
	id   uint32
	conn net.Conn
	raw  syscall.RawConn
	fd   int
	sess *session
	// ownSession is the session of a stream that Delivery.Serve attached
	// (Attach makes one of its own).
	ownSession session
	// onClose is called once when the stream ends, from a loop goroutine,
	// with the reason.
	onClose func(reason error)

	attached atomic.Bool
	state    atomic.Int32 // idle, queued, running, runningDirty
	closed   atomic.Bool

	out []byte // bytes the socket did not take yet; touched by the worker running the stream only

	forced       atomic.Pointer[error] // set to end the stream at its next run
	lastWrite    atomic.Int64          // unix nanoseconds of the last write that moved bytes
	blockedSince atomic.Int64          // unix nanoseconds; 0 while the socket takes everything
	heartbeat    atomic.Bool           // a heartbeat is due
}

const (
	idle int32 = iota
	queued
	running
	runningDirty
)

// NewStream returns a stream not yet attached to a connection. Its Notify
// can be given to the hub before the connection is handed over: frames
// queued until Attach are written after it.
func (l *Loop) NewStream() *Stream {
	return &Stream{loop: l, id: l.nextID.Add(1)}
}

// clientEnded is the hub's OnEnd of the stream's client: the next run
// ends the stream.
func (s *Stream) clientEnded(error) { s.Notify() }

// Notify tells the loop that the stream's client has frames waiting or
// was ended. It never blocks.
func (s *Stream) Notify() {
	if !s.attached.Load() {
		return // Attach schedules the stream once it owns the connection
	}
	for {
		switch st := s.state.Load(); st {
		case idle:
			if s.state.CompareAndSwap(idle, queued) {
				s.loop.enqueue(s)
				return
			}
		case running:
			if s.state.CompareAndSwap(running, runningDirty) {
				return
			}
		default: // queued or runningDirty: a run is coming
			return
		}
	}
}

// Attach hands conn (hijacked, response headers and any replay written)
// over to the loop, which writes c's frames with sequence above sent until
// the stream ends; then it closes conn and calls onClose with the reason
// and the messages it delivered.
func (s *Stream) Attach(conn net.Conn, c *Client, sent uint64, onClose func(reason error, delivered int64)) error {
	sess := &session{client: c, sent: sent, goodbye: s.loop.opts.Goodbye}
	return s.attach(conn, sess, func(reason error) { onClose(reason, sess.delivered) })
}

// attach hands conn over to the loop, which writes the session until the
// stream ends; then it closes conn and calls onClose.
func (s *Stream) attach(conn net.Conn, sess *session, onClose func(reason error)) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errors.New("connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		s.fd = int(fd)
		serr = setSendBuffer(s.fd, s.loop.opts.SendBuffer)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set the send buffer: %w", serr)
	}
	_ = conn.SetDeadline(time.Time{})
	s.conn, s.raw, s.sess, s.onClose = conn, raw, sess, onClose
	s.lastWrite.Store(time.Now().UnixNano())
	l := s.loop
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrLoopClosed
	}
	l.streams[s] = struct{}{}
	l.mu.Unlock()
	if err := l.poller.add(s); err != nil {
		l.forget(s)
		return err
	}
	s.attached.Store(true)
	s.Notify() // write what queued before the loop owned the stream
	return nil
}

// Err returns why the loop cannot serve streams: its poller failed.
// Streams it holds no longer hear of closed clients or writable sockets,
// so the gateway reports itself not ready.
func (l *Loop) Err() error {
	if err := l.failed.Load(); err != nil {
		return *err
	}
	return nil
}

// run writes what is waiting for the stream, by the session's rules,
// using buf to gather it.
func (s *Stream) run(buf []byte) []byte {
	if s.closed.Load() {
		return buf
	}
	if why := s.forced.Load(); why != nil {
		s.close(*why)
		return buf
	}
	if why := s.sess.cutOff(); why != nil {
		s.close(why)
		return buf
	}
	if len(s.out) > 0 {
		// The socket was full: send the rest first, and take no new
		// frames until it is out (they wait, up to the client's budget).
		if !s.write(s.out, true) {
			return buf
		}
		if len(s.out) > 0 {
			return buf
		}
	}
	buf, n, end := s.sess.next(buf, s.heartbeat.Load())
	if len(buf) > 0 {
		s.heartbeat.Store(false)
		if !s.write(buf, false) {
			return buf
		}
		if n > 0 && s.loop.opts.Delivered != nil {
			s.loop.opts.Delivered(n)
		}
	}
	if end != nil {
		// What the socket took is the client's; the rest it resumes by cursor.
		s.close(end)
	}
	return buf
}

// write writes b without blocking and keeps what the socket did not take
// in s.out (b is s.out itself when kept). It reports false if the stream
// ended.
func (s *Stream) write(b []byte, kept bool) bool {
	var n int
	var werr error
	err := s.raw.Write(func(fd uintptr) bool {
		n, werr = writeNonBlocking(int(fd), b)
		return true // never wait: the poller says when to try again
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		s.close(ErrClientGone)
		return false
	}
	now := time.Now().UnixNano()
	if n > 0 {
		s.lastWrite.Store(now)
		s.sess.written.Add(int64(n))
	}
	rest := b[n:]
	switch {
	case len(rest) == 0:
		s.out = nil
		s.blockedSince.Store(0)
	case kept:
		s.out = rest
	default:
		s.out = append([]byte(nil), rest...)
	}
	s.sess.client.SetUnsent(len(s.out))
	// The write timeout runs from the moment the socket first refused
	// bytes until it has taken all of them: a client that reads a trickle
	// never catches up, and is ended when it runs out.
	if len(rest) > 0 && s.blockedSince.Load() == 0 {
		s.blockedSince.Store(now)
	}
	return true
}

// close ends the stream once: it stops watching the connection, closes it
// and reports the reason.
func (s *Stream) close(reason error) {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.loop.poller.remove(s)
	_ = s.conn.Close()
	s.out = nil
	s.loop.forget(s)
	if s.onClose != nil {
		s.onClose(reason)
	}
}

// end makes the stream's next run close it with reason; a worker does the
// closing, so it never races a write of the stream.
func (s *Stream) end(reason error) {
	s.forced.CompareAndSwap(nil, &reason)
	s.Notify()
}
