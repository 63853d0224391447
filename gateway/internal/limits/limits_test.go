package limits_test

import (
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/gateway/internal/limits"
)

func TestRateAllowsABurstThenRefusesWithAWait(t *testing.T) {
	r := limits.NewRate(2, 3) // 2 per second, bursts of 3
	for i := range 3 {
		if ok, _ := r.Allow("user:ana"); !ok {
			t.Fatalf("event %d of the burst refused", i+1)
		}
	}
	ok, wait := r.Allow("user:ana")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("fourth event: allowed %v, wait %s; want a refusal and a wait of at most 0.5 s", ok, wait)
	}
	// A refusal takes nothing: the wait does not grow with retries.
	if _, again := r.Allow("user:ana"); again > wait {
		t.Fatalf("a refused retry lengthened the wait from %s to %s", wait, again)
	}
	if ok, _ := r.Allow("user:bo"); !ok {
		t.Fatal("another key was refused")
	}
}

func TestRateForgetsFullBuckets(t *testing.T) {
	r := limits.NewRate(1000, 2) // full again 2 ms after its last event
	for _, k := range []string{"ip:a", "ip:b", "ip:c"} {
		r.Allow(k)
	}
	if n := r.Keys(); n != 3 {
		t.Fatalf("%d keys tracked, want 3", n)
	}
	// Buckets idle for their refill time (plus a second) are dropped by
	// the next event's sweep.
	deadline := time.Now().Add(5 * time.Second)
	for r.Keys() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys still tracked after 5 s", r.Keys())
		}
		time.Sleep(50 * time.Millisecond)
		r.Allow("ip:d")
	}
}

func TestNoLimit(t *testing.T) {
	r := limits.NewRate(0, 10)
	for range 1000 {
		if ok, _ := r.Allow("x"); !ok {
			t.Fatal("a rate of 0 refused an event")
		}
	}
	c := limits.NewCount(0)
	for range 1000 {
		if _, ok := c.Acquire("x"); !ok {
			t.Fatal("a count of 0 refused")
		}
	}
}

func TestCount(t *testing.T) {
	c := limits.NewCount(2)
	r1, ok1 := c.Acquire("user:ana")
	_, ok2 := c.Acquire("user:ana")
	_, ok3 := c.Acquire("user:ana")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquires: %v %v %v; want true true false", ok1, ok2, ok3)
	}
	if _, ok := c.Acquire("user:bo"); !ok {
		t.Fatal("another user was refused")
	}
	r1()
	r1() // a second release frees nothing more
	if _, ok := c.Acquire("user:ana"); !ok {
		t.Fatal("refused after a release")
	}
	if _, ok := c.Acquire("user:ana"); ok {
		t.Fatal("a double release freed two")
	}
}
