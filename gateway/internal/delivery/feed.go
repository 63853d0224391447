package delivery

import (
	"context"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// A Feed is what a hub's rooms carry: the subject a room's stored
// messages are re-published on, how one is read, and the history its
// holes are filled from. Chat rooms are one feed (RoomFeed); the Mercure
// hub's updates are another, one room holding every update.
type Feed interface {
	// Subject is the live subject of room.
	Subject(room string) string
	// Decode reads a live message of room.
	Decode(room string, msg *nats.Msg) (Item, error)
	// After returns at most limit items of room stored after seq, oldest
	// first.
	After(ctx context.Context, room string, after uint64, limit int) ([]Item, error)
	// LastSeq returns the sequence of room's newest stored item.
	LastSeq(ctx context.Context, room string) (uint64, error)
}

// Item is one stored message of a feed, encoded for clients.
type Item struct {
	// Frame is what clients are sent; empty Data withholds the message
	// (it only advances the room's position).
	Frame
	// Prev is the sequence of the room's message before it, if known: a
	// live item whose Prev is past the room's position reveals a hole.
	Prev uint64
	// Stored is when the message was stored, if known (for the delivery
	// latency metric).
	Stored time.Time
}

// RoomFeed is the feed of chat rooms: messages of room r arrive on
// chat.live.<r>, each with the sequence of the room's previous message,
// and holes are filled from src. encode turns a message into its frame.
func RoomFeed(src Source, encode Encoder) Feed { return roomFeed{src: src, encode: encode} }

type roomFeed struct {
	src    Source
	encode Encoder
}

func (f roomFeed) Subject(room string) string { return broker.LiveSubject(room) }

func (f roomFeed) Decode(_ string, msg *nats.Msg) (Item, error) {
	m, err := broker.StoredMessage(msg.Header, msg.Data)
	if err != nil {
		return Item{}, err
	}
	return Item{Frame: Frame{Seq: m.Seq, Data: f.encode(m)}, Prev: broker.LastSequence(msg.Header), Stored: m.TS}, nil
}

func (f roomFeed) After(ctx context.Context, room string, after uint64, limit int) ([]Item, error) {
	msgs, _, err := f.src.After(ctx, room, after, limit)
	items := make([]Item, len(msgs))
	for i, m := range msgs {
		items[i] = Item{Frame: Frame{Seq: m.Seq, Data: f.encode(m)}, Stored: m.TS}
	}
	return items, err
}

func (f roomFeed) LastSeq(ctx context.Context, room string) (uint64, error) {
	return f.src.LastSeq(ctx, room)
}
