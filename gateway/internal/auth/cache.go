package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// A client sends the same token with every request: a publisher with each
// message, a page with each reconnect. Checking its signature every time
// is most of what auth costs (an RS256 verification takes longer than the
// rest of a publish's work in the gateway), so tokens that passed are
// remembered, keyed by a SHA-256 of the whole token, until they expire or
// for at most cacheFor, whichever is first: a key withdrawn from a JWKS
// stops being honoured within cacheFor.
const (
	cacheFor     = time.Minute
	cacheEntries = 10000
)

type verifiedEntry struct {
	val   any // what the token verified to: an Identity, or another protocol's claims
	until time.Time
}

// verified is the cache of tokens that passed verification.
type verified struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedEntry
}

// get returns what a token verified before, and still valid at now,
// verified to (a value: the caller gets a copy).
func (c *verified) get(token string, now time.Time) (any, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.val, true
}

// put remembers what a verified token verified to (a value, not a
// pointer) until until (bounded by cacheFor). When the cache is full the
// expired entries go first, then arbitrary ones: a cache miss only costs a
// verification.
func (c *verified) put(token string, val any, now, until time.Time) {
	key := sha256.Sum256([]byte(token))
	until = minTime(until, now.Add(cacheFor))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[32]byte]verifiedEntry)
	}
	if len(c.m) >= cacheEntries {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < cacheEntries*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = verifiedEntry{val: val, until: until}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
