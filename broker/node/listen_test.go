package node_test

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node"
)

// TestStartNamesAListenerInUse: a node whose port another process holds
// fails at once, naming the address and the flag that sets it, instead of
// waiting ReadyTimeout and saying only that it did not become ready.
func TestStartNamesAListenerInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	addr := taken.Addr().String()
	for _, c := range []struct {
		name, flag string
		o          node.Options
	}{
		{"client", "--nats-listen", node.Options{ClientListen: addr}},
		{"cluster", "--cluster-listen", node.Options{ClusterListen: addr, Auth: node.Auth{RoutePassword: "route-secret"}}},
		{"monitor", "--monitor-listen", node.Options{MonitorListen: addr}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.DataDir = filepath.Join(t.TempDir(), "data")
			o.ReadyTimeout = time.Minute
			o.ListenFlags = node.ListenFlags{Client: "--nats-listen", Cluster: "--cluster-listen", Monitor: "--monitor-listen"}
			start := time.Now()
			n, err := node.Start(o)
			if err == nil {
				n.Shutdown()
				t.Fatalf("a node on %s, which is in use, started", addr)
			}
			if errors.Is(err, node.ErrNotReady) || time.Since(start) > 10*time.Second {
				t.Fatalf("waited %s for readiness instead of naming the cause: %v", time.Since(start), err)
			}
			for _, want := range []string{addr, c.flag, "address already in use"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
