// Package nodetest starts real embedded NATS nodes for tests and waits on
// conditions with deadlines. It sits beside package node as httptest sits
// beside net/http: the unit tests of the broker, services and gateway
// modules use it, so it lives in the broker module.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/nats-io/nats.go"
)

// StartNode starts an embedded JetStream node with a client listener on a
// random loopback port and data in a temporary folder; it is shut down when
// the test ends.
func StartNode(t testing.TB) *node.Node {
	t.Helper()
	n, err := node.Start(node.Options{
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

// Connect connects to a NATS server at url; the connection is closed when
// the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// SubscribeSync subscribes nc to subject and waits until the server has
// registered the subscription; it is removed when the test ends.
func SubscribeSync(t testing.TB, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush after subscribing to %s: %v", subject, err)
	}
	return sub
}

// StartHistory starts a node, connects to it and ensures the history
// stream with its default limits; everything ends with the test.
func StartHistory(t testing.TB) (*nats.Conn, *broker.History) {
	t.Helper()
	n := StartNode(t)
	nc := Connect(t, n.ClientURL())
	h, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.Ensure(ctx, broker.HistoryConfig{}); err != nil {
		t.Fatalf("ensure the history stream: %v", err)
	}
	return nc, h
}
