package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// maxRooms bounds --rooms.
const maxRooms = 20000

// spread returns an endpoint that takes turns over eps: each call of its
// eventsURL gives the next endpoint's, so n subscribers split evenly
// over them (n/len(eps) each when it divides), and each publish goes to
// the next endpoint in turn. The endpoints differ only in where they
// subscribe and publish; the first one's marker, stamp, auth and statuses
// stand for all.
func spread(eps []*endpoint) *endpoint {
	if len(eps) == 1 {
		return eps[0]
	}
	var sub, pub atomic.Uint64
	at := func(n *atomic.Uint64) *endpoint { return eps[(n.Add(1)-1)%uint64(len(eps))] }
	e := *eps[0]
	e.eventsURL = func(base string) string { return at(&sub).eventsURL(base) }
	e.publish = func(ctx context.Context, base string, now time.Time) *http.Request {
		return at(&pub).publish(ctx, base, now)
	}
	return &e
}

// roomEndpoints returns the endpoint of each of o's rooms: o.room itself
// with one room, else o.room-1 … o.room-N (their Mercure topics and
// Centrifugo channels named the same way, each Centrifugo room with a
// token for its own channel).
func (o options) roomEndpoints() ([]*endpoint, error) {
	if o.rooms <= 1 {
		return []*endpoint{o.endpoint()}, nil
	}
	eps := make([]*endpoint, o.rooms)
	for r := range eps {
		c := o
		suffix := fmt.Sprintf("-%d", r+1)
		c.room += suffix
		c.topic += suffix
		c.selector = c.topic
		if o.centrifugo {
			c.channel += suffix
			t, err := centrifugoToken(o.centrifugoKeys.secret, "bench", []string{c.channel}, maxDuration+time.Hour)
			if err != nil {
				return nil, fmt.Errorf("centrifugo token: %w", err)
			}
			c.centrifugoToken = t
		}
		eps[r] = c.endpoint()
	}
	return eps, nil
}

// roomsEndpoint returns one endpoint taking turns over all of o's rooms
// (spread over roomEndpoints) and how many rooms those are.
func (o options) roomsEndpoint() (*endpoint, int, error) {
	eps, err := o.roomEndpoints()
	if err != nil {
		return nil, 0, err
	}
	return spread(eps), len(eps), nil
}
