package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that keeps every room's history.
const StreamName = "CHAT_ROOMS"

// Headers the stream sets on re-published and directly read messages.
const (
	headerSubject   = "Nats-Subject"
	headerSequence  = "Nats-Sequence"
	headerTimeStamp = "Nats-Time-Stamp"
	// HeaderLastSequence is the sequence of the room's previous stored
	// message, on re-published live messages (0 for a room's first).
	HeaderLastSequence = "Nats-Last-Sequence"
)

// HistoryConfig holds the limits of the history stream.
type HistoryConfig struct {
	// MaxMsgsPerRoom bounds the messages kept per room (default 1000).
	MaxMsgsPerRoom int64
	// MaxAge bounds how long messages are kept (default 168h).
	MaxAge time.Duration
	// Replicas is the stream's replication factor; 0 chooses it: 3 when
	// ClusterSize is 3 or more, else 1, and never fewer than the existing
	// stream has, so an automatic choice never scales history down.
	Replicas int
	// ClusterSize is the number of NATS servers the caller knows of, for
	// the automatic choice of Replicas.
	ClusterSize int
	// DuplicateWindow is how long publish ids are remembered for
	// de-duplication (default 2m).
	DuplicateWindow time.Duration
	// MaxTextBytes is the largest message text; the stream refuses
	// payloads larger than such a message's envelope (MaxPayloadBytes).
	// 0: the server's limit only.
	MaxTextBytes int
}

func (c HistoryConfig) streamConfig() jetstream.StreamConfig {
	if c.MaxMsgsPerRoom <= 0 {
		c.MaxMsgsPerRoom = 1000
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 168 * time.Hour
	}
	c.Replicas = c.StreamReplicas()
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	maxMsgSize := int32(-1)
	if c.MaxTextBytes > 0 {
		maxMsgSize = int32(min(MaxPayloadBytes(c.MaxTextBytes), math.MaxInt32)) //nolint:gosec // clamped on this line
	}
	return jetstream.StreamConfig{
		Name:              StreamName,
		MaxMsgSize:        maxMsgSize,
		Description:       "ChatScalable room history",
		Subjects:          []string{RoomSubjectPrefix + "*"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: c.MaxMsgsPerRoom,
		MaxAge:            c.MaxAge,
		Replicas:          c.Replicas,
		Duplicates:        c.DuplicateWindow,
		AllowDirect:       true,
		RePublish: &jetstream.RePublish{
			Source:      RoomSubjectPrefix + "*",
			Destination: LiveSubjectPrefix + "{{wildcard(1)}}",
		},
	}
}

// StreamReplicas returns the replication factor the config asks for:
// Replicas, or when that is 0, 3 on a cluster of 3 servers or more, else 1.
func (c HistoryConfig) StreamReplicas() int {
	switch {
	case c.Replicas > 0:
		return c.Replicas
	case c.ClusterSize >= 3:
		return 3
	}
	return 1
}

// History reads and maintains the history stream.
type History struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *publisher
}

// NewHistory returns a History using the connection nc.
func NewHistory(nc *nats.Conn, opts ...StoreOption) (*History, error) {
	pub, err := newPublisher(nc, opts)
	if err != nil {
		return nil, err
	}
	return &History{nc: nc, js: pub.js, pub: pub}, nil
}

// JetStream returns the JetStream context History uses.
func (h *History) JetStream() jetstream.JetStream { return h.js }

// Ensure creates the history stream, or updates its limits, and returns
// the stream's epoch.
func (h *History) Ensure(ctx context.Context, cfg HistoryConfig) (uint64, error) {
	info, err := ensureStream(ctx, h.js, cfg.streamConfig(), cfg.Replicas <= 0)
	if err != nil {
		return 0, err
	}
	return epochOf(info), nil
}

// ensureStream creates the stream want describes, or updates it when its
// settings differ. Gateways call it after every reconnect and every 30 s;
// reading the stream is enough when it already has the wanted settings,
// so only a real change goes through the cluster's metadata leader. With
// autoReplicas, want's replicas were chosen automatically and an existing
// stream never gets fewer.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, autoReplicas bool) (*jetstream.StreamInfo, error) {
	existing, err := js.Stream(ctx, want.Name)
	var info *jetstream.StreamInfo
	switch {
	case err == nil:
		info = existing.CachedInfo()
		if autoReplicas {
			want.Replicas = max(want.Replicas, info.Config.Replicas)
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		// The cluster cannot say right now (a leader election after a
		// node was lost): creating the stream would wait for the same
		// cluster and fail later, so say so at once and let the caller
		// try again soon.
		return nil, fmt.Errorf("stream %s: %w", want.Name, err)
	}
	if info == nil || !sameLimits(info.Config, want) {
		s, err := js.CreateOrUpdateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", want.Name, err)
		}
		info = s.CachedInfo()
	}
	if info.Cluster != nil && info.Cluster.Leader == "" {
		return nil, fmt.Errorf("stream %s: %w", want.Name, ErrNoLeader)
	}
	if err := hasQuorum(info); err != nil {
		return nil, fmt.Errorf("stream %s: %w", want.Name, err)
	}
	return info, nil
}

// ErrNoQuorum: the stream's leader has not heard from a majority of its
// replicas lately, so it cannot store (a leader cut off from the others
// answers for itself until nats-server makes it step down, after 10 s).
var ErrNoQuorum = errors.New("the stream's leader does not hear a majority of its replicas")

// replicaSilentAfter is how long a replica may go unheard by the stream's
// leader and still count towards a quorum: many Raft heartbeats (1 s each
// at nats-server's default, a sixth of --election-timeout on our nodes),
// so a busy machine does not look like a partition.
const replicaSilentAfter = 5 * time.Second

// hasQuorum reports whether the leader that answered info hears a
// majority of the stream's replicas, itself included.
func hasQuorum(info *jetstream.StreamInfo) error {
	if info.Cluster == nil || info.Config.Replicas <= 1 {
		return nil
	}
	heard := 1 // the leader
	for _, r := range info.Cluster.Replicas {
		if r != nil && !r.Offline && r.Active < replicaSilentAfter {
			heard++
		}
	}
	if heard <= info.Config.Replicas/2 {
		return fmt.Errorf("%w (%d of %d)", ErrNoQuorum, heard, info.Config.Replicas)
	}
	return nil
}

// sameLimits reports whether a stream's configuration already has every
// setting ensureStream manages.
func sameLimits(have, want jetstream.StreamConfig) bool {
	limit := func(n int64) int64 { // 0 and -1 both mean no limit
		if n <= 0 {
			return -1
		}
		return n
	}
	return slices.Equal(have.Subjects, want.Subjects) &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		limit(have.MaxMsgs) == limit(want.MaxMsgs) &&
		limit(have.MaxBytes) == limit(want.MaxBytes) &&
		have.MaxAge == want.MaxAge &&
		have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates &&
		have.MaxMsgSize == want.MaxMsgSize &&
		have.AllowDirect == want.AllowDirect &&
		have.Discard == want.Discard &&
		have.Storage == want.Storage &&
		have.RePublish != nil && *have.RePublish == *want.RePublish
}

// Epoch returns the history stream's epoch: its creation time in Unix
// nanoseconds. A recreated stream has a new epoch, so positions from the old
// one are never mistaken for positions in the new one.
func (h *History) Epoch(ctx context.Context) (uint64, error) {
	info, err := h.info(ctx)
	if err != nil {
		return 0, err
	}
	return epochOf(info), nil
}

func epochOf(info *jetstream.StreamInfo) uint64 { return uint64(info.Created.UnixNano()) }

func (h *History) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	return s.CachedInfo(), nil
}

// Publish stores m on its room's subject and returns it with its sequence.
// dedupeID (m.ID when empty) is the JetStream de-duplication id: a publish
// repeating one seen within the stream's duplicate window is not stored
// again, and Publish returns the message stored the first time, with
// duplicate true.
func (h *History) Publish(ctx context.Context, m Message, dedupeID string) (stored Message, duplicate bool, err error) {
	if dedupeID == "" {
		dedupeID = m.ID
	}
	if !encodableTime(m.TS) {
		return m, false, fmt.Errorf("encode message: the time %v is outside years 0-9999", m.TS)
	}
	data := m.AppendJSON(make([]byte, 0, 160+len(m.Text)))
	hdr := make(nats.Header, 3) // and the two nats.go adds: Nats-Msg-Id, Nats-Expected-Stream
	hdr[HeaderUser] = []string{m.User}
	msg := &nats.Msg{Subject: RoomSubject(m.Room), Data: data, Header: hdr}
	ack, err := h.pub.publish(ctx, msg, dedupeID, StreamName)
	if err != nil {
		return m, false, err
	}
	m.Seq = ack.Sequence
	if !ack.Duplicate {
		return m, false, nil
	}
	// A stream replica may not hold the first publish yet; wait briefly.
	for {
		first, err := h.Get(ctx, m.Room, ack.Sequence)
		if err != nil {
			return m, true, err
		}
		if first != nil {
			return *first, true, nil
		}
		select {
		case <-ctx.Done():
			return m, true, nil // retention removed it: the sequence is still right
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ErrNoLeader is returned by Ensure while the clustered stream has no
// leader, so it cannot store messages yet.
var ErrNoLeader = errors.New("the stream has no leader yet")

// ErrNotStored is returned for a message without stream position headers.
var ErrNotStored = errors.New("message carries no stream position")

// StoredMessage decodes a message read from the stream or re-published by
// it: the headers give its room, sequence and stored time.
func StoredMessage(hdr nats.Header, data []byte) (Message, error) {
	room, ok := RoomFromSubject(lastValue(hdr, headerSubject))
	if !ok {
		return Message{}, fmt.Errorf("%w: subject %q", ErrNotStored, lastValue(hdr, headerSubject))
	}
	seq, err := strconv.ParseUint(lastValue(hdr, headerSequence), 10, 64)
	if err != nil || seq == 0 {
		return Message{}, fmt.Errorf("%w: sequence %q", ErrNotStored, lastValue(hdr, headerSequence))
	}
	m := DecodeMessage(room, hdr.Get(HeaderUser), data)
	m.Seq = seq
	if m.TS.IsZero() {
		m.TS, _ = time.Parse(time.RFC3339Nano, lastValue(hdr, headerTimeStamp))
	}
	if m.ID == "" {
		if m.ID = hdr.Get(jetstream.MsgIDHeader); m.ID == "" {
			m.ID = "seq-" + strconv.FormatUint(seq, 10)
		}
	}
	return m, nil
}

// LastSequence returns the Nats-Last-Sequence header of a re-published
// message: the sequence of the room's previous message, 0 for none.
func LastSequence(hdr nats.Header) uint64 {
	n, _ := strconv.ParseUint(lastValue(hdr, HeaderLastSequence), 10, 64)
	return n
}

// lastValue returns the last value of a header. The server appends its
// position headers after the publisher's own, so the last value is the
// server's even if a publisher sent a forged one.
func lastValue(hdr nats.Header, key string) string {
	v := hdr.Values(key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Bounds returns the first and last sequence of the whole stream.
func (h *History) Bounds(ctx context.Context) (first, last uint64, err error) {
	s, err := h.js.Stream(ctx, StreamName)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	st := s.CachedInfo().State
	return st.FirstSeq, st.LastSeq, nil
}

// After returns up to limit messages of room with a sequence greater than
// after, oldest first, and how many more messages of the room follow them.
func (h *History) After(ctx context.Context, room string, after uint64, limit int) ([]Message, uint64, error) {
	return h.batch(ctx, room, after+1, 0, limit)
}

// Before returns the last (up to) limit messages of room with a sequence
// lower than before (0: the newest messages), oldest first. The stream can
// only be read forwards, so it reads windows of growing size backwards from
// before until it has limit messages or reaches the room's first message.
// The room's first and last messages bound the windows; they are found
// with direct gets, without asking for the stream's info.
func (h *History) Before(ctx context.Context, room string, before uint64, limit int) ([]Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	oldest, err := h.direct(ctx, map[string]any{"seq": 1, "next_by_subj": RoomSubject(room)})
	if err != nil || oldest == nil {
		return nil, err
	}
	first := oldest.Seq
	var hi uint64
	if before > 0 {
		hi = before - 1
	} else if hi, err = h.LastSeq(ctx, room); err != nil {
		return nil, err
	}
	if hi < first || hi == 0 {
		return nil, nil
	}
	var out []Message
	window := uint64(max(limit, 64))
	for {
		lo := first
		if hi >= first+window {
			lo = hi - window + 1
		}
		page, err := h.window(ctx, room, lo, hi, limit)
		if err != nil {
			return nil, err
		}
		out = append(page, out...)
		if len(out) >= limit || lo == first {
			break
		}
		hi, window = lo-1, window*2
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// window returns the last keep messages of room with lo <= seq <= hi.
func (h *History) window(ctx context.Context, room string, lo, hi uint64, keep int) ([]Message, error) {
	var out []Message
	for from := lo; from <= hi; {
		page, _, err := h.batch(ctx, room, from, hi, keep)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		out = append(out, page...)
		if len(out) > keep {
			out = append(out[:0], out[len(out)-keep:]...)
		}
		from = page[len(page)-1].Seq + 1
		if len(page) < keep {
			break
		}
	}
	return out, nil
}

// batch reads up to limit messages of room from sequence from on, stopping
// after sequence upTo when it is not 0, with one direct batch get.
func (h *History) batch(ctx context.Context, room string, from, upTo uint64, limit int) ([]Message, uint64, error) {
	if limit <= 0 {
		return nil, 0, nil
	}
	var out []Message
	pending, err := directBatch(ctx, h.nc, StreamName, map[string]any{"seq": from, "next_by_subj": RoomSubject(room), "batch": limit}, func(msg *nats.Msg) {
		m, err := StoredMessage(msg.Header, msg.Data)
		if err != nil {
			return // not a chat message; cannot happen on this stream's subjects
		}
		if upTo == 0 || m.Seq <= upTo {
			out = append(out, m)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("history read: %w", err)
	}
	return out, pending, nil
}

// LastSeq returns the sequence of room's newest stored message, 0 if the
// room has none.
func (h *History) LastSeq(ctx context.Context, room string) (uint64, error) {
	m, err := h.direct(ctx, map[string]any{"last_by_subj": RoomSubject(room)})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Seq, nil
}

// Get returns the stored message at seq if it belongs to room, or nil if
// that position holds no message of room (never did, or no longer does).
func (h *History) Get(ctx context.Context, room string, seq uint64) (*Message, error) {
	m, err := h.direct(ctx, map[string]any{"seq": seq})
	if err != nil || m == nil || m.Room != room {
		return nil, err
	}
	return m, nil
}

// Holds reports whether seq holds a message of room. A direct get answers
// first; its "not found", which a lagging replica may give, is checked
// with the stream's leader before it is believed.
func (h *History) Holds(ctx context.Context, room string, seq uint64) (bool, error) {
	m, err := h.direct(ctx, map[string]any{"seq": seq})
	if err != nil {
		return false, err
	}
	if m != nil {
		return m.Room == room, nil
	}
	ok, err := leaderHolds(ctx, h.nc, StreamName, seq, RoomSubject(room))
	if err != nil {
		return false, fmt.Errorf("history read: %w", err)
	}
	return ok, nil
}

// direct makes a single-message direct get; nil means not found (see
// direct.go for why not jetstream's GetMsg).
func (h *History) direct(ctx context.Context, req map[string]any) (*Message, error) {
	msg, err := directGet(ctx, h.nc, StreamName, req)
	if err != nil {
		return nil, fmt.Errorf("history read: %w", err)
	}
	if msg == nil {
		return nil, nil
	}
	m, err := StoredMessage(msg.Header, msg.Data)
	if err != nil {
		return nil, nil // not a chat message
	}
	return &m, nil
}

// RoomStats is what the history holds of one room.
type RoomStats struct {
	// Messages is how many messages of the room are stored.
	Messages uint64
	// LastSeq and LastTime locate the room's newest message.
	LastSeq  uint64
	LastTime time.Time
}

// Rooms returns the stats of every room with stored messages.
func (h *History) Rooms(ctx context.Context) (map[string]RoomStats, error) {
	s, err := h.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(RoomSubjectPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("stream %s subjects: %w", StreamName, err)
	}
	out := make(map[string]RoomStats, len(info.State.Subjects))
	for subject, n := range info.State.Subjects {
		if room, ok := RoomFromSubject(subject); ok {
			out[room] = RoomStats{Messages: n}
		}
	}
	// The newest message of every room, with multi-subject batch gets of
	// at most 1024 subjects each (the server's limit).
	subjects := make([]string, 0, len(out))
	for room := range out {
		subjects = append(subjects, RoomSubject(room))
	}
	for len(subjects) > 0 {
		n := min(len(subjects), 1024)
		if err := h.lastOf(ctx, subjects[:n], out); err != nil {
			return nil, err
		}
		subjects = subjects[n:]
	}
	return out, nil
}

// lastOf fills in the newest message of each subject's room in out.
func (h *History) lastOf(ctx context.Context, subjects []string, out map[string]RoomStats) error {
	_, err := directBatch(ctx, h.nc, StreamName, map[string]any{"multi_last": subjects, "batch": len(subjects)}, func(msg *nats.Msg) {
		room, ok := RoomFromSubject(lastValue(msg.Header, headerSubject))
		st, known := out[room]
		if !ok || !known {
			return // a room first stored after the counts were read
		}
		st.LastSeq, _ = strconv.ParseUint(lastValue(msg.Header, headerSequence), 10, 64)
		st.LastTime, _ = time.Parse(time.RFC3339Nano, lastValue(msg.Header, headerTimeStamp))
		out[room] = st
	})
	if err != nil {
		return fmt.Errorf("room stats: %w", err)
	}
	return nil
}
