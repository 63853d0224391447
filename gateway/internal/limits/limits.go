// Package limits bounds what one user or one client address may take of a
// gateway: a publish rate (a token bucket per key, golang.org/x/time/rate)
// and a number of open SSE streams.
//
// Keys are "user:<sub>" for an authenticated user and "ip:<address>" for
// a client address. Memory stays bounded: a rate bucket is forgotten once
// it has been idle long enough to be full again (it then behaves exactly
// like a new one), and a stream count once it drops to zero.
package limits

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limits events per key.
type Rate struct {
	every rate.Limit
	burst int
	idle  time.Duration // a bucket idle this long is full again

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewRate returns a limiter of perSecond events per key with bursts of
// burst (at least 1); nil if perSecond is 0 (no limit).
func NewRate(perSecond float64, burst int) *Rate {
	if perSecond <= 0 {
		return nil
	}
	burst = max(burst, 1)
	return &Rate{
		every:   rate.Limit(perSecond),
		burst:   burst,
		idle:    time.Duration(math.Ceil(float64(burst)/perSecond*float64(time.Second))) + time.Second,
		buckets: map[string]*bucket{},
	}
}

// Allow takes one event for key. When the bucket is empty it returns
// false and how long until the next event would be allowed.
func (r *Rate) Allow(key string) (bool, time.Duration) {
	if r == nil {
		return true, 0
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(now)
	b := r.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(r.every, r.burst)}
		r.buckets[key] = b
	}
	b.last = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now) // refused: the token goes back
		return false, d
	}
	return true, 0
}

// sweep forgets buckets that are full again; r.mu is held. It runs at
// most once per idle period, so its cost per event stays small.
func (r *Rate) sweep(now time.Time) {
	if now.Sub(r.swept) < r.idle {
		return
	}
	r.swept = now
	for k, b := range r.buckets {
		if now.Sub(b.last) >= r.idle {
			delete(r.buckets, k)
		}
	}
}

// Keys returns how many keys are being tracked.
func (r *Rate) Keys() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buckets)
}

// Count bounds how many of something (open streams) a key holds at once.
type Count struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewCount returns a Count of at most limit per key; nil if limit is 0.
func NewCount(limit int) *Count {
	if limit <= 0 {
		return nil
	}
	return &Count{max: limit, n: map[string]int{}}
}

// Acquire takes one for key, or returns false if key holds the limit;
// each true is undone by one call of the returned release.
func (c *Count) Acquire(key string) (release func(), ok bool) {
	if c == nil {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return nil, false
	}
	c.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[key]--; c.n[key] <= 0 {
				delete(c.n, key)
			}
		})
	}, true
}
