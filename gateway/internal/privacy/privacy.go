// Package privacy keeps a gateway's view of the rooms an admin made private
// through the rooms directory: the keys private.<room> of the room settings
// bucket (broker.RoomTopicsBucket), which the rooms service writes and every
// gateway watches, so a room made private through any gateway is refused by
// all of them within moments.
//
// Until the watch has delivered the bucket's current keys, the view is not
// known and the gateway refuses rooms rather than guess (Known is false).
package privacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// Rooms is the set of rooms made private. Its methods are safe for
// concurrent use; the zero value is not: use New.
type Rooms struct {
	log *slog.Logger

	mu      sync.RWMutex
	private map[string]bool
	known   bool // the watch delivered the current keys and still runs
	cancel  context.CancelFunc
	loaded  chan struct{} // closed when the running watch has loaded
	done    chan struct{} // closed when the running watch ends
}

// New returns an empty set that is not known yet.
func New(log *slog.Logger) *Rooms {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rooms{log: log, private: map[string]bool{}}
}

// Private reports whether an admin made room private, and whether the set
// is known: false until Ensure first succeeds and while the watch is down.
func (p *Rooms) Private(room string) (private, known bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.private[room], p.known
}

// Known reports whether the set is known (see Private).
func (p *Rooms) Known() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.known
}

// Ensure makes sure the set is watched: if no watch runs, it opens the
// settings bucket (creating it with replicas when no rooms service has
// made it yet), starts a watch of its private keys, and waits, within
// ctx, until the watch has delivered them all. It returns at once while a
// watch runs. The watch follows the bucket until Stop (its ordered
// consumer survives reconnects and leader changes by itself); if it ends,
// the set is unknown until the next Ensure.
func (p *Rooms) Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	p.mu.Lock()
	loaded, done := p.loaded, p.done
	p.mu.Unlock()
	if done == nil {
		var err error
		if loaded, done, err = p.start(ctx, js, replicas); err != nil {
			return err
		}
	}
	select {
	case <-loaded:
		return nil
	case <-done:
		return errors.New("watch private rooms: the watch ended before it delivered the current keys")
	case <-ctx.Done():
		// The watch goes on and makes the set known when it has loaded.
		return fmt.Errorf("watch private rooms: %w", ctx.Err())
	}
}

// start opens the bucket and starts the watch.
func (p *Rooms) start(ctx context.Context, js jetstream.JetStream, replicas int) (loaded, done chan struct{}, err error) {
	kv, err := js.KeyValue(ctx, broker.RoomTopicsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, broker.RoomSettingsConfig(replicas))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, broker.RoomTopicsBucket) // a rooms service made it meanwhile
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("room settings bucket %s: %w", broker.RoomTopicsBucket, err)
	}
	// The watch lives until Stop, not until the end of ctx.
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.Watch(wctx, broker.PrivateRoomKeyPrefix+">")
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("watch private rooms: %w", err)
	}
	loaded, done = make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.cancel, p.loaded, p.done = cancel, loaded, done
	p.mu.Unlock()
	go p.follow(wctx, w, loaded, done)
	return loaded, done, nil
}

// follow applies the watch's updates to the set until the watch ends:
// by Stop (ctx done: the gateway stops), or on its own.
func (p *Rooms) follow(ctx context.Context, w jetstream.KeyWatcher, loaded, done chan struct{}) {
	defer func() {
		_ = w.Stop()
		p.mu.Lock()
		p.known = false
		p.loaded, p.done = nil, nil
		p.mu.Unlock()
		close(done)
	}()
	initial := map[string]bool{}
	for e := range w.Updates() {
		if e == nil { // every current key has been delivered
			p.mu.Lock()
			p.private, p.known = initial, true
			p.mu.Unlock()
			p.log.Info("private rooms loaded", "rooms", len(initial))
			initial = nil
			close(loaded)
			continue
		}
		room := strings.TrimPrefix(e.Key(), broker.PrivateRoomKeyPrefix)
		if broker.ValidateRoom(room) != nil {
			continue
		}
		private := e.Operation() == jetstream.KeyValuePut
		if initial != nil {
			if private {
				initial[room] = true
			} else {
				delete(initial, room)
			}
			continue
		}
		p.mu.Lock()
		if private {
			p.private[room] = true
		} else {
			delete(p.private, room)
		}
		p.mu.Unlock()
		p.log.Info("room privacy changed", "room", room, "private", private)
	}
	if ctx.Err() == nil { // not stopped: the watch broke
		p.log.Warn("the watch of private rooms ended; rooms are refused until it is back")
	}
}

// Stop ends the watch and waits for it.
func (p *Rooms) Stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if done != nil {
		<-done
	}
}
