// Package presence is the chat-presence service: it knows who is online in
// which room across every gateway of the cluster.
//
// Gateways report each listener joining and leaving
// (chat.presence.report.<gateway>) and, every broker.PresenceHeartbeat,
// their whole state. Every replica of the service subscribes to all
// reports (no queue group), so every replica holds the same state and can
// answer members and counts requests, which the micro framework spreads
// over the replicas. A gateway silent for broker.PresenceExpiry died
// without a goodbye: every replica drops its listeners.
//
// Join and leave events (chat.presence.room.<room>) must go out once, not
// once per replica, so only the leader publishes them. The leader is
// whoever holds the key "leader" in the JetStream KV bucket
// CHAT_PRESENCE_LEADER, whose entries expire after LeaderTTL: the leader
// renews it with a compare-and-set on its revision, the others try to
// create it, so when the leader dies another replica takes over within
// LeaderTTL. A new replica asks every gateway for its whole state at once
// (chat.presence.sync), and waits one heartbeat before it campaigns, so it
// has heard every gateway's state and does not announce old members as
// new.
// Events that fall in a leader handover (at most LeaderTTL) are not
// announced; the members and counts stay right.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/services"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// LeaderBucket is the KV bucket holding the presence leader's key.
const LeaderBucket = "CHAT_PRESENCE_LEADER"

// Options tunes a Service.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Replicas of the leader bucket; 0 picks 3 on a cluster of 3 or more
	// servers, else 1, and never lowers what the bucket has.
	Replicas int
	// ClusterSize is the number of NATS servers, when the caller knows
	// it; 0 counts the servers the connection knows of.
	ClusterSize int
	// Expiry is how long a silent gateway keeps its members
	// (default broker.PresenceExpiry).
	Expiry time.Duration
	// LeaderTTL is how long a leader's claim lasts without renewal
	// (default 3s).
	LeaderTTL time.Duration
	// WarmUp is how long a new replica listens before it campaigns
	// (default broker.PresenceHeartbeat + 1s).
	WarmUp time.Duration
}

// Service is a running presence replica.
type Service struct {
	nc   *nats.Conn
	kv   jetstream.KeyValue
	svc  micro.Service
	sub  *nats.Subscription
	opts Options
	log  *slog.Logger
	id   string

	mu    sync.Mutex
	state *State

	leader atomic.Bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// Start starts a presence replica on nc.
func Start(ctx context.Context, nc *nats.Conn, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Expiry <= 0 {
		o.Expiry = broker.PresenceExpiry
	}
	if o.LeaderTTL <= 0 {
		o.LeaderTTL = 3 * time.Second
	}
	if o.WarmUp <= 0 {
		o.WarmUp = broker.PresenceHeartbeat + time.Second
	}
	s := &Service{nc: nc, opts: o, log: o.Logger.With("service", "chat-presence"), id: broker.NewID(), state: NewState()}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	o.Replicas = services.BucketReplicas(ctx, js, nc, LeaderBucket, o.Replicas, o.ClusterSize)
	s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaderBucket,
		Description: "ChatScalable presence leader",
		TTL:         o.LeaderTTL,
		History:     1,
		Storage:     jetstream.MemoryStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("presence leader bucket: %w", err)
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
		s.close()
		return nil, fmt.Errorf("presence: members endpoint: %w", err)
	}
	if err := s.svc.AddEndpoint("counts", micro.HandlerFunc(s.counts), micro.WithEndpointSubject(broker.PresenceCountsSubject)); err != nil {
		s.close()
		return nil, fmt.Errorf("presence: counts endpoint: %w", err)
	}
	if err := nc.Flush(); err != nil {
		s.close()
		return nil, fmt.Errorf("presence: %w", err)
	}
	// Learn every live gateway's listeners now, not at their next
	// heartbeat: a gateway that dies before then would otherwise take its
	// listeners' leave events with it, should this replica lead by then.
	if err := nc.Publish(broker.PresenceSyncSubject, nil); err != nil {
		s.log.Warn("ask gateways for their presence state", "err", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(2)
	go s.expire(bg)
	go s.campaign(bg)
	s.log.Info("presence service started", "instance", s.id)
	return s, nil
}

// Leader reports whether this replica announces presence events now.
func (s *Service) Leader() bool { return s.leader.Load() }

// Stop stops the replica; a leader hands over at once.
func (s *Service) Stop() error {
	s.stop()
	s.wg.Wait()
	if s.leader.Swap(false) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.kv.Delete(ctx, "leader"); err != nil {
			s.log.Warn("hand over presence leadership", "err", err)
		}
	}
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

// announce publishes events if this replica leads; s.mu is held, so
// events go out in the order the state changed.
func (s *Service) announce(events []broker.PresenceEvent) {
	if !s.leader.Load() {
		return
	}
	for _, e := range events {
		data, _ := json.Marshal(e)
		if err := s.nc.Publish(broker.PresenceEventSubject(e.Room), data); err != nil {
			s.log.Warn("announce presence", "room", e.Room, "err", err)
		}
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

// campaign holds or seeks the leader key.
func (s *Service) campaign(ctx context.Context) {
	defer s.wg.Done()
	select {
	case <-ctx.Done():
		return
	case <-time.After(s.opts.WarmUp):
	}
	var rev uint64
	t := time.NewTicker(s.opts.LeaderTTL / 3)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, s.opts.LeaderTTL/3)
		var err error
		if s.leader.Load() {
			if rev, err = s.kv.Update(rctx, "leader", []byte(s.id), rev); err != nil {
				s.leader.Store(false)
				s.log.Warn("lost presence leadership", "err", err)
			}
		} else if rev, err = s.kv.Create(rctx, "leader", []byte(s.id)); err == nil {
			s.leader.Store(true)
			s.log.Info("leading presence", "instance", s.id)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
