package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Mercure updates on the bus. A Mercure update has one or more topics
// (arbitrary strings, usually URLs: the first is canonical), data, and an
// optional id, type and retry; it may be private. Gateways store each in
// the stream MercureStream on
//
//	mercure.update.<topic token>.<id token>
//
// where a token is a hash of the string (base32, 24 characters), so no
// topic can reach a subject's wildcards or separators, and the id token
// is "h" for an update whose id the hub assigns (see MercureID). The
// topics and the rest travel in headers (Mercure-Topic, one value per
// topic, Mercure-Id, Mercure-Type, Mercure-Retry, Mercure-Private,
// Mercure-Time) and the data is the body, so `nats sub 'mercure.update.>'`
// shows updates as they are stored. The stream re-publishes each stored
// update on mercure.live.<topic token>.<id token>, where the gateways
// listen; no client role may publish there.
const (
	MercureStream        = "CHAT_MERCURE"
	MercureSubjectPrefix = "mercure.update."
	MercureLivePrefix    = "mercure.live."

	HeaderMercureTopic   = "Mercure-Topic"
	HeaderMercureID      = "Mercure-Id"
	HeaderMercureType    = "Mercure-Type"
	HeaderMercureRetry   = "Mercure-Retry"
	HeaderMercurePrivate = "Mercure-Private"
	HeaderMercureTime    = "Mercure-Time"

	// MercureSubscriptionsSubject asks every gateway with a Mercure hub
	// for its subscribers; each answers with a JSON list of them.
	MercureSubscriptionsSubject = "chat.mercure.subscriptions"

	// hubIDToken is the id token of an update whose id the hub assigns.
	hubIDToken = "h"
)

// MercureUpdate is one Mercure update.
type MercureUpdate struct {
	// Topics are the update's topics, the canonical one first.
	Topics []string
	Data   string
	// ID is the id the publisher gave, or "" for one the hub assigns from
	// the update's place in the stream (MercureID).
	ID      string
	Type    string
	Retry   uint64
	Private bool
	// Time is when a gateway took the update, to the millisecond: the
	// time part of a hub-assigned id.
	Time time.Time
	// Seq is the update's sequence in the stream, once stored.
	Seq uint64
}

// ErrInvalidUpdate is returned for an update that cannot be stored.
var ErrInvalidUpdate = errors.New("invalid Mercure update")

// Validate checks what the bus needs of an update: at least one topic,
// and no CR, LF or NUL in a topic, the id or the type (they travel in
// headers and SSE fields, where those characters would end the field).
func (u MercureUpdate) Validate() error {
	if len(u.Topics) == 0 {
		return fmt.Errorf("%w: no topic", ErrInvalidUpdate)
	}
	for _, t := range u.Topics {
		if t == "" || strings.ContainsAny(t, "\r\n\x00") {
			return fmt.Errorf("%w: a topic is empty or contains a forbidden control character", ErrInvalidUpdate)
		}
	}
	if strings.ContainsAny(u.ID, "\r\n\x00") {
		return fmt.Errorf("%w: \"id\" field contains a forbidden control character", ErrInvalidUpdate)
	}
	if strings.ContainsAny(u.Type, "\r\n\x00") {
		return fmt.Errorf("%w: \"type\" field contains a forbidden control character", ErrInvalidUpdate)
	}
	return nil
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// MercureToken returns the subject token of a topic or id: 120 bits of
// its SHA-256, in 24 base32 characters.
func MercureToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return tokenEncoding.EncodeToString(sum[:15])
}

// MercureSubject returns the subject an update is stored on.
func MercureSubject(u MercureUpdate) string {
	id := hubIDToken
	if u.ID != "" {
		id = MercureToken(u.ID)
	}
	return MercureSubjectPrefix + MercureToken(u.Topics[0]) + "." + id
}

// MercureConfig holds the limits of the Mercure stream.
type MercureConfig struct {
	// MaxAge bounds how long updates are kept (default 168h).
	MaxAge time.Duration
	// MaxMsgs and MaxBytes bound how many updates, and how many bytes of
	// them, are kept; the oldest go first (defaults 1,000,000 and 1 GiB).
	MaxMsgs  int64
	MaxBytes int64
	// Replicas and ClusterSize: see HistoryConfig.
	Replicas    int
	ClusterSize int
}

func (c MercureConfig) streamConfig() jetstream.StreamConfig {
	if c.MaxAge <= 0 {
		c.MaxAge = 168 * time.Hour
	}
	if c.MaxMsgs <= 0 {
		c.MaxMsgs = 1_000_000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	return jetstream.StreamConfig{
		Name:        MercureStream,
		Description: "ChatScalable Mercure updates",
		Subjects:    []string{MercureSubjectPrefix + "*.*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		MaxMsgs:     c.MaxMsgs,
		MaxBytes:    c.MaxBytes,
		Replicas:    HistoryConfig{Replicas: c.Replicas, ClusterSize: c.ClusterSize}.StreamReplicas(),
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
		RePublish: &jetstream.RePublish{
			Source:      MercureSubjectPrefix + "*.*",
			Destination: MercureLivePrefix + "{{wildcard(1)}}.{{wildcard(2)}}",
		},
	}
}

// Mercure stores and reads Mercure updates.
type Mercure struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *publisher
}

// NewMercure returns a Mercure using the connection nc.
func NewMercure(nc *nats.Conn, opts ...StoreOption) (*Mercure, error) {
	pub, err := newPublisher(nc, opts)
	if err != nil {
		return nil, err
	}
	return &Mercure{nc: nc, js: pub.js, pub: pub}, nil
}

// Ensure creates the Mercure stream, or updates its limits, and returns
// its epoch (its creation time in Unix nanoseconds).
func (m *Mercure) Ensure(ctx context.Context, cfg MercureConfig) (uint64, error) {
	info, err := ensureStream(ctx, m.js, cfg.streamConfig(), cfg.Replicas <= 0)
	if err != nil {
		return 0, err
	}
	return epochOf(info), nil
}

// Publish stores u and returns its sequence. Each call is one update: a
// publish retried after a lost answer is stored once (a de-duplication id
// of its own), but two calls with the same Mercure id are two updates, as
// on a Mercure hub.
func (m *Mercure) Publish(ctx context.Context, u MercureUpdate) (uint64, error) {
	return m.PublishOnce(ctx, u, NewID())
}

// PublishOnce stores u unless an update with the same dedupeID was stored
// within the stream's duplicate window (2 minutes): gateways that each
// publish the same event with the same id store it once.
func (m *Mercure) PublishOnce(ctx context.Context, u MercureUpdate, dedupeID string) (uint64, error) {
	if err := u.Validate(); err != nil {
		return 0, err
	}
	msg := &nats.Msg{Subject: MercureSubject(u), Data: []byte(u.Data), Header: nats.Header{}}
	for _, t := range u.Topics {
		msg.Header.Add(HeaderMercureTopic, t)
	}
	if u.ID != "" {
		msg.Header.Set(HeaderMercureID, u.ID)
	}
	if u.Type != "" {
		msg.Header.Set(HeaderMercureType, u.Type)
	}
	if u.Retry > 0 {
		msg.Header.Set(HeaderMercureRetry, strconv.FormatUint(u.Retry, 10))
	}
	if u.Private {
		msg.Header.Set(HeaderMercurePrivate, "true")
	}
	msg.Header.Set(HeaderMercureTime, strconv.FormatInt(u.Time.UnixMilli(), 10))
	ack, err := m.pub.publish(ctx, msg, dedupeID, MercureStream)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// DecodeMercure decodes an update read from the Mercure stream or
// re-published by it. Position headers are taken by their last value (the
// server's, after any a publisher forged).
func DecodeMercure(hdr nats.Header, data []byte) (MercureUpdate, error) {
	if !strings.HasPrefix(lastValue(hdr, headerSubject), MercureSubjectPrefix) {
		return MercureUpdate{}, fmt.Errorf("%w: subject %q", ErrNotStored, lastValue(hdr, headerSubject))
	}
	seq, err := strconv.ParseUint(lastValue(hdr, headerSequence), 10, 64)
	if err != nil || seq == 0 {
		return MercureUpdate{}, fmt.Errorf("%w: sequence %q", ErrNotStored, lastValue(hdr, headerSequence))
	}
	u := MercureUpdate{
		Topics:  hdr.Values(HeaderMercureTopic),
		Data:    string(data),
		ID:      hdr.Get(HeaderMercureID),
		Type:    hdr.Get(HeaderMercureType),
		Private: hdr.Get(HeaderMercurePrivate) == "true",
		Seq:     seq,
	}
	u.Retry, _ = strconv.ParseUint(hdr.Get(HeaderMercureRetry), 10, 64)
	if ms, err := strconv.ParseInt(hdr.Get(HeaderMercureTime), 10, 64); err == nil {
		u.Time = time.UnixMilli(ms)
	} else {
		u.Time, _ = time.Parse(time.RFC3339Nano, lastValue(hdr, headerTimeStamp))
	}
	if len(u.Topics) == 0 {
		return MercureUpdate{}, fmt.Errorf("%w: no topic", ErrInvalidUpdate)
	}
	return u, nil
}

// After returns at most limit updates stored after seq, oldest first.
func (m *Mercure) After(ctx context.Context, after uint64, limit int) ([]MercureUpdate, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []MercureUpdate
	_, err := directBatch(ctx, m.nc, MercureStream, map[string]any{"seq": after + 1, "next_by_subj": MercureSubjectPrefix + ">", "batch": limit}, func(msg *nats.Msg) {
		if u, err := DecodeMercure(msg.Header, msg.Data); err == nil {
			out = append(out, u)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("mercure read: %w", err)
	}
	return out, nil
}

// Bounds returns the sequences of the oldest and the newest stored
// update (0, 0 for none).
func (m *Mercure) Bounds(ctx context.Context) (first, last uint64, err error) {
	s, err := m.js.Stream(ctx, MercureStream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", MercureStream, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return 0, 0, nil
	}
	return st.FirstSeq, st.LastSeq, nil
}

// LastSeq returns the sequence of the newest stored update, 0 for none.
func (m *Mercure) LastSeq(ctx context.Context) (uint64, error) {
	_, last, err := m.Bounds(ctx)
	return last, err
}

// FindID returns the sequence of the newest stored update whose
// publisher gave it id (0 when none is stored).
func (m *Mercure) FindID(ctx context.Context, id string) (uint64, error) {
	msg, err := directGet(ctx, m.nc, MercureStream, map[string]any{"last_by_subj": MercureSubjectPrefix + "*." + MercureToken(id)})
	if err != nil {
		return 0, fmt.Errorf("mercure read: %w", err)
	}
	if msg == nil {
		return 0, nil
	}
	u, err := DecodeMercure(msg.Header, msg.Data)
	if err != nil || u.ID != id { // a hash collision, 120 bits: never in practice
		return 0, nil
	}
	return u.Seq, nil
}

// MercureID returns the id of an update: the one its publisher gave, or
// for one the hub assigns, a UUID version 7 (RFC 9562) made of the time the
// gateway took it (48 bits of milliseconds), 12 bits of the stream's epoch
// and its 62-bit sequence in the random fields (the RFC's "counter"
// method), as urn:uuid:…. Every gateway derives the same id from the stored
// update, and ParseMercureID gets the sequence back without a lookup.
func MercureID(u MercureUpdate, epoch uint64) string {
	if u.ID != "" {
		return u.ID
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(u.Time.UnixMilli())<<16) //nolint:gosec // milliseconds since 1970 fit 48 bits until the year 10889
	tag := epochTag(epoch)
	b[6] = 0x70 | byte(tag>>8&0x0f)
	b[7] = byte(tag & 0xff) //nolint:gosec // masked to its low byte
	binary.BigEndian.PutUint64(b[8:16], u.Seq&(1<<62-1))
	b[8] |= 0x80 // the RFC's variant, 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return "urn:uuid:" + string(s[:])
}

// ParseMercureID returns the sequence of a hub-assigned id of the stream
// with the given epoch; ok is false for any other id.
func ParseMercureID(id string, epoch uint64) (seq uint64, ok bool) {
	s, found := strings.CutPrefix(id, "urn:uuid:")
	if !found || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return 0, false
	}
	b, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil || b[6]>>4 != 7 || b[8]>>6 != 2 {
		return 0, false
	}
	if uint16(b[6]&0x0f)<<8|uint16(b[7]) != epochTag(epoch) {
		return 0, false
	}
	seq = binary.BigEndian.Uint64(b[8:16]) & (1<<62 - 1)
	return seq, seq > 0
}

// epochTag is 12 bits of a stream epoch: an id from a recreated stream is
// not taken for a position in the new one (but for 1 in 4096).
func epochTag(epoch uint64) uint16 {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, epoch))
	return binary.BigEndian.Uint16(sum[:2]) & 0x0fff
}
