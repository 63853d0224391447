// Package rooms is the ChatScalable rooms directory: a NATS micro service
// (name "chat-rooms") that lists the rooms, describes one room, sets a
// room's topic and makes a room private or public, on the subjects and with
// the JSON shapes of broker (RoomsListSubject, RoomsGetSubject,
// RoomsTopicSubject, RoomsPrivateSubject).
//
// The service keeps no state of its own, so any number of replicas can run
// side by side; their endpoints share one queue group and NATS hands each
// request to one of them. Every request is answered from what the bus
// holds at that moment:
//
//   - message counts and last activity from the history stream
//     (broker.History), which the gateways write;
//   - topics and privacy from the JetStream key-value bucket
//     CHAT_ROOM_TOPICS (the key <room> holds its topic, the key
//     private.<room> marks it private), which every replica reads and
//     writes, so a setting made through one replica is seen by all, and
//     which every gateway watches for private rooms;
//   - member counts from the presence service, with one request to
//     broker.PresenceCountsSubject per reply, for the rooms of the reply. If presence does not answer
//     within Options.PresenceTimeout (it may not be running), the rooms are
//     still returned, with Members left out.
//
// A room is in the directory when its history holds messages, it has a
// topic or it is private. The list comes in pages (broker.RoomsListRequest) of at most
// broker.MaxRoomsPage rooms and half the server's maximum payload, ordered
// most recently active first, then by name; a page's Next cursor is the
// last room's place in that order, so a walk through the pages lists every
// room once, except that a room which gets a message during the walk moves
// to the front and may be missed by it (it is on the next first page). Errors are NATS micro errors: code "400" for bad input (malformed
// JSON, an invalid room name or topic), "500" for failures of the bus.
package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/services"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Names of the service and of its storage.
const (
	// ServiceName is the micro service name, as shown by `nats micro ls`.
	ServiceName = "chat-rooms"
	// ServiceDescription is the micro service description.
	ServiceDescription = "ChatScalable rooms directory"
	// TopicsBucket is the JetStream key-value bucket holding the topics,
	// keyed by room name.
	TopicsBucket = broker.RoomTopicsBucket
)

// Error codes of the service's micro errors (header Nats-Service-Error-Code).
const (
	// CodeBadRequest answers malformed JSON, an invalid room or topic.
	CodeBadRequest = "400"
	// CodeInternal answers a failure to read or write the bus.
	CodeInternal = "500"
)

const (
	defaultPresenceTimeout = 500 * time.Millisecond
	// requestTimeout bounds the bus reads and writes of one request.
	requestTimeout = 5 * time.Second
	// maxDescription bounds the length of an error description.
	maxDescription = 300
)

// Options configures Start.
type Options struct {
	// Version is the service version reported to `nats micro info`. It
	// must be SemVer for the micro framework; anything else (such as "dev",
	// a commit, or "") is reported as services.MicroVersion makes it
	// (0.0.0-dev+dev), with the given value in the service's metadata
	// under "version".
	Version string
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Replicas is the replication factor of the settings bucket. 0 chooses
	// it: 3 on a cluster of 3 servers or more, else 1, and never fewer
	// than the bucket already has, so an automatic choice never scales the
	// topics down.
	Replicas int
	// ClusterSize is the number of NATS servers, when the caller knows
	// it; 0 counts the servers the connection knows of.
	ClusterSize int
	// PresenceTimeout bounds the wait for the presence service's member
	// counts (default 500ms).
	PresenceTimeout time.Duration
}

// Service is a running rooms directory. It is safe for concurrent use.
type Service struct {
	nc              *nats.Conn
	hist            *broker.History
	js              jetstream.JetStream
	kv              jetstream.KeyValue
	svc             micro.Service
	log             *slog.Logger
	presenceTimeout time.Duration

	cacheMu sync.Mutex
	cache   *directory
}

// Start creates (or updates) the settings bucket and starts the micro
// service on nc, with the endpoints list, get, topic and private on
// broker.RoomsListSubject, broker.RoomsGetSubject,
// broker.RoomsTopicSubject and broker.RoomsPrivateSubject. ctx bounds the setup only. It fails while
// JetStream is unavailable; the caller may retry. The history stream need
// not exist yet: until it does, rooms have no messages.
func Start(ctx context.Context, nc *nats.Conn, o Options) (*Service, error) {
	if nc == nil {
		return nil, errors.New("rooms: nil NATS connection")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PresenceTimeout <= 0 {
		o.PresenceTimeout = defaultPresenceTimeout
	}
	hist, err := broker.NewHistory(nc)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	js := hist.JetStream()
	replicas := services.BucketReplicas(ctx, js, nc, TopicsBucket, o.Replicas, o.ClusterSize)
	kv, err := js.CreateOrUpdateKeyValue(ctx, broker.RoomSettingsConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("rooms: create or update key-value bucket %s: %w", TopicsBucket, err)
	}
	s := &Service{nc: nc, hist: hist, js: js, kv: kv, log: o.Logger, presenceTimeout: o.PresenceTimeout}

	version, metadata := services.MicroVersion(o.Version)
	cfg := micro.Config{
		Name:        ServiceName,
		Version:     version,
		Metadata:    metadata,
		Description: ServiceDescription,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Error("rooms service error", "subject", e.Subject, "err", e.Description)
		},
	}
	svc, err := micro.AddService(nc, cfg)
	if err != nil {
		return nil, fmt.Errorf("rooms: add micro service: %w", err)
	}
	for _, ep := range []struct {
		name, subject string
		handler       micro.HandlerFunc
	}{
		{"list", broker.RoomsListSubject, s.handleList},
		{"get", broker.RoomsGetSubject, s.handleGet},
		{"topic", broker.RoomsTopicSubject, s.handleTopic},
		{"private", broker.RoomsPrivateSubject, s.handlePrivate},
	} {
		if err := svc.AddEndpoint(ep.name, safe(s.log, ep.name, ep.handler), micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("rooms: add endpoint %s: %w", ep.name, err)
		}
	}
	s.svc = svc
	// Once Start returns, the server knows the endpoints: a request made
	// from any connection reaches them.
	flush := func() error { return nc.FlushTimeout(requestTimeout) }
	if _, ok := ctx.Deadline(); ok {
		flush = func() error { return nc.FlushWithContext(ctx) }
	}
	if err := flush(); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("rooms: flush: %w", err)
	}
	return s, nil
}

// Stop stops the service: its endpoints stop taking requests once those
// already received are answered. The connection stays open; the topics
// bucket is kept.
func (s *Service) Stop() error { return s.svc.Stop() }

// safe turns a panic in a handler into a 500 answer instead of a crash.
func safe(log *slog.Logger, name string, h micro.HandlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("rooms handler panic", "endpoint", name, "panic", r)
				_ = req.Error(CodeInternal, "internal error", nil)
			}
		}()
		h(req)
	}
}

func (s *Service) handleList(req micro.Request) {
	in, ok := decodeList(req)
	if !ok {
		return
	}
	after, err := parseCursor(in.After)
	if err != nil {
		badRequest(req, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rooms, err := s.cachedList(ctx)
	if err != nil {
		s.fail(req, "list", err)
		return
	}
	rest := rooms[sort.Search(len(rooms), func(i int) bool { return after.before(keyOf(rooms[i])) }):]
	more := len(rest) > in.Limit
	page := slices.Clone(rest[:min(len(rest), in.Limit)])
	names := make([]string, len(page))
	for i, r := range page {
		names[i] = r.Room
	}
	var members map[string]int
	if len(page) > 0 {
		members = s.counts(names)
	}
	for i := range page {
		page[i].Members = memberCount(members, page[i].Room)
	}
	data, err := encodePage(page, more, s.maxReply())
	if err != nil {
		s.fail(req, "list", err)
		return
	}
	if err := req.Respond(data); err != nil {
		s.log.Warn("rooms reply failed", "err", err)
	}
}

func (s *Service) handleGet(req micro.Request) {
	var r broker.RoomRequest
	if !decode(req, &r) || !validRoom(req, r.Room) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	s.answerRoom(ctx, req, "get", r.Room)
}

func (s *Service) handleTopic(req micro.Request) {
	var r broker.TopicRequest
	if !decode(req, &r) || !validRoom(req, r.Room) {
		return
	}
	// Leading and trailing spaces are dropped, so a blank topic clears it;
	// any other white space is a control character ValidateTopic rejects.
	topic := strings.Trim(r.Topic, " ")
	if err := broker.ValidateTopic(topic); err != nil {
		badRequest(req, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var err error
	if topic == "" {
		err = s.kv.Delete(ctx, r.Room)
	} else {
		_, err = s.kv.PutString(ctx, r.Room, topic)
	}
	if err != nil {
		s.fail(req, "topic", fmt.Errorf("store topic of room %s: %w", r.Room, err))
		return
	}
	s.log.Debug("topic set", "room", r.Room, "topic", topic)
	s.answerRoom(ctx, req, "topic", r.Room)
}

// handlePrivate makes a room private or public again. The gateways watch
// the private keys and refuse the room to anyone without a subscribe
// grant for it from then on; who may ask is the gateway's to check (an
// admin token).
func (s *Service) handlePrivate(req micro.Request) {
	var r broker.PrivateRequest
	if !decode(req, &r) || !validRoom(req, r.Room) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var err error
	if r.Private {
		_, err = s.kv.PutString(ctx, broker.PrivateRoomKey(r.Room), "true")
	} else {
		err = s.kv.Delete(ctx, broker.PrivateRoomKey(r.Room))
	}
	if err != nil {
		s.fail(req, "private", fmt.Errorf("store privacy of room %s: %w", r.Room, err))
		return
	}
	s.log.Info("room privacy set", "room", r.Room, "private", r.Private)
	s.answerRoom(ctx, req, "private", r.Room)
}

// answerRoom answers req with room as it is now, with its member count.
func (s *Service) answerRoom(ctx context.Context, req micro.Request, endpoint, room string) {
	counts := s.countsAsync(room)
	info, err := s.room(ctx, room)
	if err != nil {
		s.fail(req, endpoint, err)
		return
	}
	info.Members = memberCount(<-counts, room)
	s.respond(req, info)
}

// room returns one room's messages, last activity, topic and privacy.
func (s *Service) room(ctx context.Context, room string) (broker.RoomInfo, error) {
	info := broker.RoomInfo{Room: room}
	stream, err := s.js.Stream(ctx, broker.StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// no history yet: no messages
	case err != nil:
		return info, fmt.Errorf("stream %s: %w", broker.StreamName, err)
	default:
		subject := broker.RoomSubject(room)
		si, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return info, fmt.Errorf("stream %s: %w", broker.StreamName, err)
		}
		info.Messages = si.State.Subjects[subject]
		if info.Messages > 0 {
			last, err := stream.GetLastMsgForSubject(ctx, subject)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				info.Messages = 0 // removed since: retention or a purge
			case err != nil:
				return info, fmt.Errorf("last message of room %s: %w", room, err)
			default:
				info.LastActivity = timePtr(last.Time)
				info.LastSeq = last.Sequence
			}
		}
	}
	entry, err := s.kv.Get(ctx, room)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return info, fmt.Errorf("topic of room %s: %w", room, err)
	default:
		info.Topic = string(entry.Value())
	}
	switch _, err := s.kv.Get(ctx, broker.PrivateRoomKey(room)); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return info, fmt.Errorf("privacy of room %s: %w", room, err)
	default:
		info.Private = true
	}
	return info, nil
}

// settings returns every room's topic, and the rooms made private.
func (s *Service) settings(ctx context.Context) (map[string]string, map[string]bool, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("read room settings: %w", err)
	}
	defer func() { _ = w.Stop() }()
	topics, private := map[string]string{}, map[string]bool{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, nil, errors.New("read room settings: the watcher stopped")
			}
			if e == nil { // every current value has been delivered
				return topics, private, nil
			}
			key := e.Key()
			if room, ok := strings.CutPrefix(key, broker.PrivateRoomKeyPrefix); ok {
				if broker.ValidateRoom(room) == nil {
					private[room] = true
				}
			} else if broker.ValidateRoom(key) == nil && len(e.Value()) > 0 {
				topics[key] = string(e.Value())
			}
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("read room settings: %w", ctx.Err())
		}
	}
}

// countsAsync asks the presence service for the member count of room
// and delivers the counts on the returned channel: nil if presence did not
// answer in time or answered with an error.
func (s *Service) countsAsync(room string) <-chan map[string]int {
	ch := make(chan map[string]int, 1)
	go func() { ch <- s.counts([]string{room}) }()
	return ch
}

// counts asks the presence service for the member counts of rooms.
func (s *Service) counts(rooms []string) map[string]int {
	req, _ := json.Marshal(broker.CountsRequest{Rooms: rooms})
	msg, err := s.nc.Request(broker.PresenceCountsSubject, req, s.presenceTimeout)
	if err != nil {
		s.log.Debug("no member counts from presence", "err", err)
		return nil
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		s.log.Warn("presence counts error", "code", code, "err", msg.Header.Get(micro.ErrorHeader))
		return nil
	}
	var reply broker.CountsReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		s.log.Warn("bad presence counts reply", "err", err)
		return nil
	}
	if reply.Rooms == nil {
		reply.Rooms = map[string]int{}
	}
	return reply.Rooms
}

// memberCount is room's member count from counts, nil without counts.
// Presence lists only rooms with members, so a room missing from an
// answer has none.
func memberCount(counts map[string]int, room string) *int {
	if counts == nil {
		return nil
	}
	n := max(counts[room], 0)
	return &n
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// decode reads the request's JSON into v, answering 400 if it cannot.
func decode(req micro.Request, v any) bool {
	// encoding/json would silently replace invalid UTF-8 in strings.
	if !utf8.Valid(req.Data()) {
		badRequest(req, "malformed JSON request: not valid UTF-8")
		return false
	}
	if err := json.Unmarshal(req.Data(), v); err != nil {
		badRequest(req, "malformed JSON request: "+err.Error())
		return false
	}
	return true
}

// validRoom checks room, answering 400 if it is invalid.
func validRoom(req micro.Request, room string) bool {
	if err := broker.ValidateRoom(room); err != nil {
		badRequest(req, err.Error())
		return false
	}
	return true
}

func badRequest(req micro.Request, description string) {
	_ = req.Error(CodeBadRequest, cleanDescription(description), nil)
}

// fail logs an internal failure and answers 500.
func (s *Service) fail(req micro.Request, endpoint string, err error) {
	s.log.Error("rooms request failed", "endpoint", endpoint, "err", err)
	_ = req.Error(CodeInternal, cleanDescription("internal error: "+err.Error()), nil)
}

func (s *Service) respond(req micro.Request, v any) {
	if err := req.RespondJSON(v); err != nil {
		s.log.Warn("rooms reply failed", "err", err)
	}
}

// cleanDescription makes text safe for a header value: one line of
// printable characters, at most maxDescription bytes.
func cleanDescription(text string) string {
	text = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(text, " "))
	text = strings.TrimSpace(text)
	if len(text) > maxDescription {
		cut := maxDescription
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	if text == "" {
		text = "error"
	}
	return text
}
