package mercure

import (
	"context"
	"strconv"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
	"github.com/nats-io/nats.go"
)

// room is the one room of the Mercure feed: every update, whatever its
// topics, is in it, and each subscriber's filter picks what it gets.
const room = "updates"

// feed is the Mercure stream as a delivery feed: its updates arrive on
// mercure.live.*.*, in stream order, so the update before seq is seq-1 and
// a jump is a hole the hub fills from the stream.
type feed struct {
	store *broker.Mercure
	epoch func() uint64
}

func (f feed) Subject(string) string { return broker.MercureLivePrefix + "*.*" }

func (f feed) Decode(_ string, msg *nats.Msg) (delivery.Item, error) {
	u, err := broker.DecodeMercure(msg.Header, msg.Data)
	if err != nil {
		return delivery.Item{}, err
	}
	return delivery.Item{Frame: f.frame(u), Prev: u.Seq - 1, Stored: u.Time}, nil
}

func (f feed) After(ctx context.Context, _ string, after uint64, limit int) ([]delivery.Item, error) {
	us, err := f.store.After(ctx, after, limit)
	items := make([]delivery.Item, len(us))
	for i, u := range us {
		items[i] = delivery.Item{Frame: f.frame(u), Stored: u.Time}
	}
	return items, err
}

func (f feed) LastSeq(ctx context.Context, _ string) (uint64, error) { return f.store.LastSeq(ctx) }

// frame encodes an update once, for every subscriber it goes to.
func (f feed) frame(u broker.MercureUpdate) delivery.Frame {
	return delivery.Frame{Seq: u.Seq, Data: appendUpdate(nil, u, broker.MercureID(u, f.epoch())), Meta: &updateMeta{topics: u.Topics, private: u.Private}}
}

// appendUpdate appends an update as Mercure writes it (event.go): event,
// retry, id, then one data line per line of the data (CRLF, CR and LF
// each end a line), and a blank line.
func appendUpdate(b []byte, u broker.MercureUpdate, id string) []byte {
	if u.Type != "" {
		b = append(b, "event: "...)
		b = append(b, u.Type...)
		b = append(b, '\n')
	}
	if u.Retry != 0 {
		b = append(b, "retry: "...)
		b = strconv.AppendUint(b, u.Retry, 10)
		b = append(b, '\n')
	}
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, '\n')
	data := u.Data
	for {
		i := indexLineEnd(data)
		b = append(b, "data: "...)
		if i < 0 {
			b = append(b, data...)
			b = append(b, '\n')
			break
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(b, '\n')
}

func indexLineEnd(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return i
		}
	}
	return -1
}
