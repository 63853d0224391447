// The writer contract, and the rules of a live stream both writers follow.

package delivery

import (
	"errors"
	"sync/atomic"
	"time"
)

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
	// written counts the bytes the stream loop wrote to the stream.
	written atomic.Int64
	// expires, when set, is when the listener's token expires: at warnAt
	// the stream gets an auth-expiring event (once), and at expires it
	// ends with ErrAuthExpired. Both are set before the stream is live.
	expires, warnAt time.Time
	warned          atomic.Bool
}

// ErrAuthExpired ends a stream whose token expired; the client resumes
// by cursor with a fresh token.
var ErrAuthExpired = errors.New("the listener's token expired")

// setExpiry arranges the auth-expiring warning and the end of a stream
// whose token expires at t: notice before it, or half the time left if
// that is shorter.
func (s *session) setExpiry(t time.Time, notice time.Duration) {
	if t.IsZero() {
		return
	}
	s.expires = t
	s.warnAt = t.Add(-min(notice, time.Until(t)/2))
}

// expiryDue reports whether the session's token warning or expiry is due
// at now and not yet acted on; the loop's sweeper asks, to wake the
// stream.
func (s *session) expiryDue(now time.Time) bool {
	if s.expires.IsZero() {
		return false
	}
	return !now.Before(s.expires) || !s.warned.Load() && !now.Before(s.warnAt)
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
//   - a listener whose token is about to expire gets an auth-expiring
//     event, and one whose token expired ends after what waits;
//   - with nothing else to write, a due heartbeat is a comment line.
func (s *session) next(buf []byte, heartbeat bool) ([]byte, int, error) {
	ended, why := s.client.Ended()
	if ended && errors.Is(why, ErrSlowClient) {
		return buf, 0, why
	}
	buf, n := s.client.AppendWaiting(buf, &s.sent)
	if !s.expires.IsZero() {
		now := time.Now()
		if !now.Before(s.expires) {
			s.delivered += int64(n)
			return buf, n, ErrAuthExpired
		}
		if !now.Before(s.warnAt) && s.warned.CompareAndSwap(false, true) {
			buf = authExpiringFrame(buf, s.expires)
		}
	}
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
