package node_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/broker/testca"
	"github.com/nats-io/nats.go"
)

func makeCA(t *testing.T) testca.Files {
	t.Helper()
	f, err := testca.Write(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// connectTLS connects as the admin with the client TLS of files.
func connectTLS(url, password string, files broker.TLSFiles) (*nats.Conn, error) {
	opts := []nats.Option{nats.UserInfo("admin", password), nats.Timeout(5 * time.Second)}
	cfg, err := files.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, nats.Secure(cfg))
	}
	return nats.Connect(url, opts...)
}

func TestClientTLS(t *testing.T) {
	ca, other := makeCA(t), makeCA(t)
	for _, verify := range []bool{false, true} {
		n, err := node.Start(node.Options{
			Name: "tls", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0",
			Auth:          node.Auth{Passwords: map[node.Role]string{node.RoleAdmin: "pw"}},
			TLS:           broker.TLSFiles{Cert: ca.NodeCert, Key: ca.NodeKey, CA: ca.CA},
			VerifyClients: verify,
		})
		if err != nil {
			t.Fatal(err)
		}
		withCert := broker.TLSFiles{CA: ca.CA, Cert: ca.ClientCert, Key: ca.ClientKey}
		for _, c := range []struct {
			name  string
			files broker.TLSFiles
			ok    bool
		}{
			{"plain", broker.TLSFiles{}, false},
			{"the node's CA", broker.TLSFiles{CA: ca.CA}, !verify},
			{"the node's CA and a client certificate", withCert, true},
			{"another CA", broker.TLSFiles{CA: other.CA}, false},
			// Without verification no certificate is asked for.
			{"a client certificate of another CA", broker.TLSFiles{CA: ca.CA, Cert: other.ClientCert, Key: other.ClientKey}, !verify},
		} {
			nc, err := connectTLS(n.ClientURL(), "pw", c.files)
			if err == nil {
				err = nc.Flush()
				nc.Close()
			}
			if (err == nil) != c.ok {
				t.Errorf("verify clients %v, %s: connected %v (%v), want %v", verify, c.name, err == nil, err, c.ok)
			}
		}
		// In-process connections need no TLS.
		nc, err := n.Connect()
		if err != nil {
			t.Errorf("in-process: %v", err)
		} else {
			nc.Close()
		}
		n.Shutdown()
	}
}

func TestRoutesTLS(t *testing.T) {
	ca := makeCA(t)
	files := broker.TLSFiles{Cert: ca.NodeCert, Key: ca.NodeKey, CA: ca.CA}
	rec := &nodetest.LogRecorder{}
	a, err := node.Start(selfRouted(t, node.Options{
		Name: "tls-a", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", MonitorListen: "127.0.0.1:0",
		Auth: node.Auth{RoutePassword: "r0ute"}, TLS: files, Logger: slog.New(rec),
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	// A node without TLS is not let in, password or not.
	before := len(rec.Matching("TLS"))
	plain, err := node.Start(node.Options{
		Name: "tls-plain", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0",
		Routes: []string{a.ClusterURL()}, Auth: node.Auth{RoutePassword: "r0ute"},
	})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if len(rec.Matching("TLS")) == before {
			return errors.New("the node has not refused the plain route yet")
		}
		return nil
	})
	if got := routeCount(t, a.MonitorURL()); got != 0 {
		t.Fatalf("%d routes joined without TLS", got)
	}
	plain.Shutdown()
	b, err := node.Start(node.Options{
		Name: "tls-b", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0",
		Routes: []string{a.ClusterURL()}, Auth: node.Auth{RoutePassword: "r0ute"}, TLS: files,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if routeCount(t, a.MonitorURL()) == 0 {
			return fmt.Errorf("the TLS route has not joined: %q", rec.Matching("rror"))
		}
		return nil
	})
}

func TestTLSFilesErrors(t *testing.T) {
	ca := makeCA(t)
	for _, c := range []struct {
		name  string
		files broker.TLSFiles
	}{
		{"a certificate without its key", broker.TLSFiles{Cert: ca.NodeCert}},
		{"a key without its certificate", broker.TLSFiles{Key: ca.NodeKey}},
		{"a missing CA", broker.TLSFiles{CA: ca.CA + ".missing"}},
		{"a CA that is no certificate", broker.TLSFiles{CA: ca.NodeKey}},
		{"a key of another certificate", broker.TLSFiles{Cert: ca.NodeCert, Key: ca.ClientKey}},
	} {
		if err := c.files.Check(); !errors.Is(err, broker.ErrTLSFiles) {
			t.Errorf("%s: Check() = %v, want an ErrTLSFiles", c.name, err)
		}
	}
	_, err := node.Start(node.Options{Name: "tls", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0",
		TLS: broker.TLSFiles{CA: ca.CA}})
	if !errors.Is(err, broker.ErrTLSFiles) {
		t.Errorf("a node with a CA and no certificate: %v", err)
	}
}
