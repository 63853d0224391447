//go:build linux

package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A loop whose poller stops while the loop runs says so through Err, which
// the gateway's /readyz reports; a loop shut down on purpose does not.
func TestLoopReportsAStoppedPoller(t *testing.T) {
	l, err := NewLoop(LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	if err := l.Err(); err != nil {
		t.Fatalf("a running loop reports %v", err)
	}
	l.poller.close() // the poller's goroutine returns, as when epoll fails
	deadline := time.Now().Add(10 * time.Second)
	for l.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the loop does not report its stopped poller")
		}
		time.Sleep(5 * time.Millisecond)
	}

	healthy, err := NewLoop(LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := healthy.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := healthy.Err(); err != nil {
		t.Fatal(fmt.Errorf("a loop shut down on purpose reports %w", err))
	}
}
