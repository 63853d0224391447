// Replay: what a resuming listener missed, read from history.

package delivery

import (
	"context"
	"time"
)

// replay sends the room's stored messages after from, up to at least
// upTo (the room's position when the client joined the live feed), and
// returns the last sequence the client has. When the client cannot get
// everything it missed (the history was recreated, retention removed
// messages, or more than --max-replay are missing) it first gets a reset
// event and then the newest retained messages.
func (d *Delivery) replay(ctx context.Context, send func([]byte) bool, room string, from Cursor, upTo uint64) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*d.opts.ReadTimeout)
	defer cancel()
	fail := func(err error) (uint64, bool) {
		d.opts.Log.Warn("replay", "room", room, "err", err)
		return 0, false
	}
	after := from.Seq
	var reset *resetNotice
	switch {
	case from.Epoch != d.opts.Epoch():
		reset, after = &resetNotice{Reason: "history_recreated"}, 0
	case from.Seq > upTo:
		// Past what this gateway has delivered: its live feed may lag the
		// gateway that gave out the cursor, or no message ever had it.
		// Taking it at its word would skip every message up to it, so
		// unless the room holds it, the client is told and starts over
		// from what is retained.
		ok, err := d.holds(ctx, room, from.Seq)
		if err != nil {
			return fail(err)
		}
		if ok {
			return from.Seq, true
		}
		reset, after = &resetNotice{Reason: "unknown_position"}, 0
	case from.Seq == upTo:
		// Nothing was stored between the client's last message and its
		// joining the live feed.
		return from.Seq, true
	default:
		// Retention removes a room's oldest messages first, so if the
		// client's last message is still stored, so is all that follows.
		// Asked of the stream's leader when a replica says no: a replica
		// back from a partition says no to what it has not caught up with
		// (it once sent a listener a false reset and skipped six messages).
		ok, err := d.opts.History.Holds(ctx, room, from.Seq)
		if err != nil {
			return fail(err)
		}
		if !ok {
			reset = &resetNotice{Reason: "history_truncated"}
		}
	}
	msgs, _, err := d.opts.History.After(ctx, room, after, d.opts.MaxReplay)
	if err != nil {
		return fail(err)
	}
	if n := len(msgs); n == d.opts.MaxReplay && msgs[n-1].Seq < upTo {
		// More than MaxReplay missed: send the newest MaxReplay up to upTo.
		skipped, err := d.countBetween(ctx, room, msgs[n-1].Seq, upTo)
		if err != nil {
			return fail(err)
		}
		if reset == nil {
			reset = &resetNotice{Reason: "replay_limit", Missed: &skipped}
		}
		if msgs, err = d.opts.History.Before(ctx, room, upTo+1, d.opts.MaxReplay); err != nil {
			return fail(err)
		}
	}
	if reset != nil {
		if !send(resetFrame(*reset)) {
			return 0, false
		}
	}
	// A stream replica may lag a moment behind the live feed: read on until
	// the replay reaches the position the client joined at.
	sent := after
	deadline := time.Now().Add(2 * time.Second)
	for {
		// Written in pieces of about replayChunk bytes: a replay of a
		// thousand large messages is never joined into one buffer.
		var buf []byte
		n := 0
		flush := func() bool {
			if len(buf) == 0 {
				return true
			}
			ok := send(buf)
			buf = buf[:0]
			d.opts.Metrics.Replayed.Add(float64(n))
			d.opts.Metrics.Delivered.Add(float64(n))
			n = 0
			return ok
		}
		for _, m := range msgs {
			if m.Seq > sent {
				frame := d.messageFrame(m)
				buf = append(buf, frame...)
				sent = m.Seq
				if len(frame) > 0 {
					n++
				}
				if len(buf) >= replayChunk && !flush() {
					return 0, false
				}
			}
		}
		if !flush() {
			return 0, false
		}
		if sent >= upTo {
			return sent, true
		}
		if time.Now().After(deadline) {
			d.opts.Log.Warn("replay did not reach the live position", "room", room, "sent", sent, "joined_at", upTo)
			return 0, false // the client reconnects and resumes from what it got
		}
		if len(msgs) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if msgs, _, err = d.opts.History.After(ctx, room, sent, d.opts.MaxReplay); err != nil {
			return fail(err)
		}
	}
}

// holds reports whether the room's history holds the message at seq, as
// the stream's leader knows it.
func (d *Delivery) holds(ctx context.Context, room string, seq uint64) (bool, error) {
	return d.opts.History.Holds(ctx, room, seq)
}

// replayChunk is the size of the pieces a replay is written in.
const replayChunk = 64 << 10

// countBetween counts the room's messages with lo < seq <= hi.
func (d *Delivery) countBetween(ctx context.Context, room string, lo, hi uint64) (uint64, error) {
	first, pendingLo, err := d.opts.History.After(ctx, room, lo, 1)
	if err != nil || len(first) == 0 {
		return 0, err
	}
	beyond, pendingHi, err := d.opts.History.After(ctx, room, hi, 1)
	if err != nil {
		return 0, err
	}
	return uint64(len(first)) + pendingLo - (uint64(len(beyond)) + pendingHi), nil
}
