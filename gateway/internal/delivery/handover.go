// The loop writer: a stream whose connection is taken over from net/http
// and written by the stream loop once its head and replay are out.

package delivery

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"time"
)

// loopWriter hijacks the connection, writes the response head and the
// replay itself, and then attaches the connection to the loop.
type loopWriter struct {
	st      *Stream
	timeout time.Duration
	w       http.ResponseWriter
	conn    net.Conn // set by start
}

// canHijack reports whether the connection under w can be taken over
// (HTTP/1.x; not HTTP/2).
func canHijack(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// hooks: frames queued before the stream is attached are written after.
func (lw *loopWriter) hooks(l *Listener) {
	l.Notify = lw.st.Notify
	l.OnEnd = lw.st.clientEnded
}

func (lw *loopWriter) start(_ *Client, head []byte) error {
	conn, _, err := http.NewResponseController(lw.w).Hijack()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoStream, err)
	}
	lw.conn = conn
	defer func() { lw.w = nil }() // the stream outlives the request: keep none of it
	h := lw.w.Header().Clone()
	setSSEHeaders(h)
	h.Set("Connection", "close") // the body ends when the connection does
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(head)
	if !lw.send(buf.Bytes()) {
		lw.abort()
		return ErrClientGone
	}
	return nil
}

func (lw *loopWriter) send(b []byte) bool {
	_ = lw.conn.SetWriteDeadline(time.Now().Add(lw.timeout))
	_, err := lw.conn.Write(b)
	return err == nil
}

func (lw *loopWriter) abort() { _ = lw.conn.Close() }

func (lw *loopWriter) detached() bool { return true }

// session is kept in the stream: one allocation less per listener.
func (lw *loopWriter) session() *session { return &lw.st.ownSession }

func (lw *loopWriter) live(s *session, done func(error)) {
	if err := lw.st.attach(lw.conn, s, done); err != nil {
		// The loop is stopping (the gateway shuts down between this
		// stream's replay and its hand-over): write what the session has
		// for the client now, its goodbye included, and end.
		if out, _, _ := s.next(nil, false); len(out) > 0 {
			lw.send(out)
		}
		lw.abort()
		done(fmt.Errorf("attach stream: %w", err))
	}
}
