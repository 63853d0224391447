// Package brokertest starts real embedded NATS nodes for tests and waits on
// conditions with deadlines.
package brokertest

import (
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

// StartNode starts an embedded JetStream node with a client listener on a
// random loopback port and data in a temporary folder; it is shut down when
// the test ends.
func StartNode(t testing.TB) *broker.Node {
	t.Helper()
	n, err := broker.StartNode(broker.NodeOptions{
		Name:         "test-" + broker.NewID()[20:],
		DataDir:      t.TempDir(),
		ClientListen: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start nats node: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

// CheckFor calls f every wait until it returns nil, and fails the test with
// f's last error when total has passed.
func CheckFor(t testing.TB, total, wait time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", total, err)
		}
		time.Sleep(wait)
	}
}
