// Package presence is the chat-presence service: it knows who is online in
// which room across every gateway of the cluster.
//
// Gateways report each listener joining and leaving
// (chat.presence.report.<gateway>) and, every broker.PresenceHeartbeat,
// their whole state (in chunks when it is large). Every replica of the
// service subscribes to all reports (no queue group), so every replica
// holds the same state and can answer members and counts requests, which
// the micro framework spreads over the replicas. A gateway silent for
// broker.PresenceExpiry died without a goodbye: every replica drops its
// listeners.
//
// Join and leave events go out exactly once, with no leader: every replica
// publishes each change it sees to the JetStream stream CHAT_PRESENCE
// (broker.PresenceAnnounceSubject) with a Nats-Msg-Id derived from the
// reports that caused it, the same on every replica. The stream keeps the
// first copy, drops the others as duplicates, and re-publishes the stored
// one on chat.presence.room.<room>, where gateways listen. So a change is
// announced while any replica runs, whichever replicas stop or start.
//
// A replica that starts asks every gateway for its whole state at once
// (chat.presence.sync) and, for WarmUp, holds the changes it sees back:
// until it has heard a gateway in full it may take an old member for a
// new one. When the warm-up ends it publishes those it saw with a complete
// view (after every gateway's first whole state that told it of listeners
// it had not known), and drops the others, which another replica, warm
// already, announced, or which were not real changes.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/services"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Limits of the presence stream: a change is kept long enough for every
// replica's copy to meet the first within the duplicate window.
const (
	streamMaxAge     = 2 * time.Minute
	streamDuplicates = time.Minute
	streamMaxBytes   = 64 << 20
	// maxQueued bounds the changes waiting to be published, and those
	// held back during the warm-up.
	maxQueued = 1 << 16
)

// Options tunes a Service.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Replicas of the presence stream; 0 picks 3 on a cluster of 3 or
	// more servers, else 1, and never lowers what the stream has.
	Replicas int
	// ClusterSize is the number of NATS servers, when the caller knows
	// it; 0 counts the servers the connection knows of.
	ClusterSize int
	// Expiry is how long a silent gateway keeps its members
	// (default broker.PresenceExpiry).
	Expiry time.Duration
	// WarmUp is how long a new replica holds back the changes it sees,
	// so that it has heard every gateway's state before it announces
	// (default broker.PresenceHeartbeat + 1s, at most 15s).
	WarmUp time.Duration
}

// Service is a running presence replica.
type Service struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	svc  micro.Service
	sub  *nats.Subscription
	opts Options
	log  *slog.Logger
	id   string

	mu    sync.Mutex
	state *State
	warm  bool
	held  []Event // changes seen during the warm-up

	queue chan Event // changes to publish, in order
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// Start starts a presence replica on nc.
func Start(ctx context.Context, nc *nats.Conn, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Expiry <= 0 {
		o.Expiry = broker.PresenceExpiry
	}
	if o.WarmUp <= 0 {
		o.WarmUp = broker.PresenceHeartbeat + time.Second
	}
	// What a replica held back must reach the stream while the copies of
	// the warm replicas still count as duplicates.
	o.WarmUp = min(o.WarmUp, streamDuplicates/4)
	s := &Service{
		nc: nc, opts: o, log: o.Logger.With("service", "chat-presence"), id: broker.NewID(),
		state: NewState(), queue: make(chan Event, maxQueued),
	}
	var err error
	if s.js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	replicas := services.StreamReplicas(ctx, s.js, nc, broker.PresenceStream, o.Replicas, o.ClusterSize)
	_, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        broker.PresenceStream,
		Description: "ChatScalable presence changes, one copy of each, re-published to the rooms' listeners",
		Subjects:    []string{broker.PresenceAnnouncePrefix + "*"},
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
		MaxAge:      streamMaxAge,
		MaxBytes:    streamMaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  streamDuplicates,
		RePublish: &jetstream.RePublish{
			Source:      broker.PresenceAnnouncePrefix + "*",
			Destination: broker.PresenceEventPrefix + "{{wildcard(1)}}",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("presence stream %s: %w", broker.PresenceStream, err)
	}
	if s.sub, err = nc.Subscribe(broker.PresenceReportPrefix+">", s.onReport); err != nil {
		return nil, fmt.Errorf("presence: subscribe to reports: %w", err)
	}
	_ = s.sub.SetPendingLimits(-1, -1)
	version, metadata := services.MicroVersion(o.Version)
	metadata["instance"] = s.id
	s.svc, err = micro.AddService(nc, micro.Config{
		Name:        "chat-presence",
		Version:     version,
		Description: "ChatScalable presence: who is in which room",
		Metadata:    metadata,
	})
	if err != nil {
		_ = s.sub.Unsubscribe()
		return nil, fmt.Errorf("presence: add micro service: %w", err)
	}
	if err := s.svc.AddEndpoint("members", micro.HandlerFunc(s.members), micro.WithEndpointSubject(broker.PresenceMembersSubject)); err != nil {
		return nil, errors.Join(fmt.Errorf("presence: members endpoint: %w", err), s.close())
	}
	if err := s.svc.AddEndpoint("counts", micro.HandlerFunc(s.counts), micro.WithEndpointSubject(broker.PresenceCountsSubject)); err != nil {
		return nil, errors.Join(fmt.Errorf("presence: counts endpoint: %w", err), s.close())
	}
	if err := nc.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("presence: %w", err), s.close())
	}
	// Learn every live gateway's listeners now, not at their next
	// heartbeat.
	if err := nc.Publish(broker.PresenceSyncSubject, nil); err != nil {
		s.log.Warn("ask gateways for their presence state", "err", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(3)
	go s.expire(bg)
	go s.warmUp(bg)
	go s.publish(bg)
	s.log.Info("presence service started", "instance", s.id)
	return s, nil
}

// Warm reports whether the replica's warm-up is over, so it publishes the
// changes it sees as it sees them.
func (s *Service) Warm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.warm
}

// Stop stops the replica. Changes it has not published yet are left to
// the other replicas.
func (s *Service) Stop() error {
	s.stop()
	s.wg.Wait()
	return s.close()
}

func (s *Service) close() error {
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.Stop())
	}
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Service) onReport(msg *nats.Msg) {
	var r broker.PresenceReport
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		s.log.Warn("bad presence report", "subject", msg.Subject, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announce(s.state.Apply(r, time.Now()))
}

// announce queues events for publishing, or holds them back during the
// warm-up; s.mu is held, so they are queued in the order the state
// changed.
func (s *Service) announce(events []Event) {
	if !s.warm {
		if len(s.held)+len(events) > maxQueued {
			s.log.Warn("too many presence changes during the warm-up; leaving them to the other replicas", "held", len(s.held))
			s.held = nil
			return
		}
		s.held = append(s.held, events...)
		return
	}
	for _, e := range events {
		select {
		case s.queue <- e:
		default:
			s.log.Warn("presence changes queue full; leaving this one to the other replicas", "room", e.Room, "user", e.User, "type", e.Type)
		}
	}
}

// warmUp ends the warm-up: the changes seen with a complete view go out.
func (s *Service) warmUp(ctx context.Context) {
	defer s.wg.Done()
	select {
	case <-ctx.Done():
		return
	case <-time.After(s.opts.WarmUp):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Settle()
	held, dropped := s.held, 0
	s.held = nil
	s.warm = true
	var certain []Event
	for _, e := range held {
		if s.state.Certain(e) {
			certain = append(certain, e)
		} else {
			dropped++
		}
	}
	s.announce(certain)
	s.log.Info("presence warm", "instance", s.id, "announced", len(certain), "dropped", dropped)
}

// publish sends the queued changes to the presence stream, one at a time
// so they are stored in order; the stream drops the copies other replicas
// stored first.
func (s *Service) publish(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			if err := s.store(ctx, e); err != nil && ctx.Err() == nil {
				s.log.Warn("announce presence", "room", e.Room, "user", e.User, "type", e.Type, "err", err)
			}
		}
	}
}

// store publishes e to the presence stream, trying again for up to
// retryFor (the stream may be electing a leader): an attempt that timed
// out yet was stored only makes the next one a duplicate, which the
// stream drops.
func (s *Service) store(ctx context.Context, e Event) error {
	const retryFor = streamDuplicates / 2
	data, _ := json.Marshal(e.PresenceEvent)
	deadline := time.Now().Add(retryFor)
	wait := 100 * time.Millisecond
	for {
		msg := &nats.Msg{Subject: broker.PresenceAnnounceSubject(e.Room), Data: data, Header: nats.Header{}}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(broker.PresenceStream))
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (s *Service) expire(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.announce(s.state.Expire(now, s.opts.Expiry))
			s.mu.Unlock()
		}
	}
}

func (s *Service) members(req micro.Request) {
	var in broker.MembersRequest
	if err := json.Unmarshal(req.Data(), &in); err != nil {
		_ = req.Error("400", "the request is not JSON of the form {\"room\":\"…\"}", nil)
		return
	}
	if err := broker.ValidateRoom(in.Room); err != nil {
		_ = req.Error("400", err.Error(), nil)
		return
	}
	s.mu.Lock()
	reply := broker.MembersReply{Room: in.Room, Members: s.state.Members(in.Room)}
	s.mu.Unlock()
	_ = req.RespondJSON(reply)
}

func (s *Service) counts(req micro.Request) {
	// Anything that is not a CountsRequest asks for every room, as before
	// rooms could be named.
	var in broker.CountsRequest
	_ = json.Unmarshal(req.Data(), &in)
	s.mu.Lock()
	reply := broker.CountsReply{Rooms: s.state.Counts(in.Rooms)}
	s.mu.Unlock()
	_ = req.RespondJSON(reply)
}
