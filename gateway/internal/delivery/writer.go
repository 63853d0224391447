// The writer contract, and the rules of a live stream both writers follow.

package delivery

import "errors"

// A writer carries one stream to its client: the response head, the
// replay, then the live feed. It only moves bytes; what to send and when
// the stream ends are the session's rules. Two writers implement it: the
// stream loop (loopWriter) and the net/http handler (handlerWriter).
type writer interface {
	// hooks sets how the listener's hub client tells the writer that
	// frames wait (Notify, or the client's Ready channel when unset) and
	// that the client was ended (OnEnd).
	hooks(l *Listener)
	// start sends the response head (status, headers, retry hint).
	// ErrNoStream means nothing was sent; another error, that the client
	// went away.
	start(c *Client, head []byte) error
	// send writes b (the replay) and reports whether the client took it
	// within the write timeout.
	send(b []byte) bool
	// abort ends a stream that stops before its live feed.
	abort()
	// detached reports whether live returns before the stream ends (the
	// stream then outlives its handler).
	detached() bool
	// session returns the writer's session, to be filled before live.
	session() *session
	// live writes the session until the stream ends, then calls done
	// with the reason, once.
	live(s *session, done func(reason error))
}

// session is one stream's live feed: a hub client and what it was sent.
type session struct {
	client *Client
	// sent is the last sequence written; live frames up to it (sent by
	// the replay) are skipped.
	sent uint64
	// goodbye is written to a client ended because the gateway stops: a
	// short retry hint, so it comes back soon, to any gateway.
	goodbye   []byte
	delivered int64
}

// cutOff returns why the client was cut off as too slow, or nil. Such a
// stream ends at once, whatever it has not sent: the client resumes from
// its cursor.
func (s *session) cutOff() error {
	if ended, why := s.client.Ended(); ended && errors.Is(why, ErrSlowClient) {
		return why
	}
	return nil
}

// next appends to buf what the stream sends now, and returns it with the
// number of messages in it, and, when the stream ends after this write,
// why:
//   - a client cut off as too slow ends with nothing more written;
//   - frames waiting go out oldest first, messages at or below sent
//     skipped;
//   - a client ended because the gateway stops gets the goodbye after
//     them; one ended for another reason (a room that lost continuity)
//     gets them and ends, to resume by cursor;
//   - with nothing else to write, a due heartbeat is a comment line.
func (s *session) next(buf []byte, heartbeat bool) ([]byte, int, error) {
	ended, why := s.client.Ended()
	if ended && errors.Is(why, ErrSlowClient) {
		return buf, 0, why
	}
	buf, n := s.client.AppendWaiting(buf, &s.sent)
	if ended && errors.Is(why, ErrClosed) {
		buf = append(buf, s.goodbye...)
	}
	if len(buf) == 0 && heartbeat {
		buf = appendComment(buf, "heartbeat")
	}
	s.delivered += int64(n)
	if ended {
		return buf, n, why
	}
	return buf, n, nil
}
