package nodetest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/nats-io/nats.go"
)

// SecureNode is a node whose clients log in with the roles' passwords,
// and which records its log to report permission violations.
type SecureNode struct {
	*node.Node
	// Passwords holds each role's password.
	Passwords map[node.Role]string
	Log       *LogRecorder
}

// StartSecureNode starts a node like StartNode whose clients must log in
// as one of the roles, each with a password of its own.
func StartSecureNode(t testing.TB) *SecureNode {
	t.Helper()
	passwords := map[node.Role]string{}
	for _, r := range node.Roles {
		passwords[r] = string(r) + "-" + broker.NewID()
	}
	rec := &LogRecorder{}
	n, err := node.Start(node.Options{
		Name:         "secure-" + broker.NewID()[20:],
		DataDir:      t.TempDir(),
		ClientListen: "127.0.0.1:0",
		Auth:         node.Auth{Passwords: passwords},
		Logger:       slog.New(rec),
	})
	if err != nil {
		t.Fatalf("start nats node: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return &SecureNode{Node: n, Passwords: passwords, Log: rec}
}

// ConnectAs connects to the node's client listener as role, with the
// inbox prefix the role's programs use; the connection is closed when the
// test ends.
func (s *SecureNode) ConnectAs(t testing.TB, role node.Role, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{
		nats.UserInfo(string(role), s.Passwords[role]),
		// Refusals are what tests look for, in LastError; the default
		// handler would print each.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}, opts...)
	switch role {
	case node.RoleGateway:
		opts = append(opts, nats.CustomInboxPrefix(broker.GatewayInboxPrefix))
	case node.RoleService:
		opts = append(opts, nats.CustomInboxPrefix(broker.ServiceInboxPrefix))
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// NoViolations fails the test if the node has logged a permission
// violation: a role was refused something its program does.
func (s *SecureNode) NoViolations(t testing.TB) {
	t.Helper()
	if v := s.Log.Matching("Violation"); len(v) > 0 {
		t.Errorf("the node refused %d operations of its clients:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// LogRecorder is a slog.Handler that keeps every message.
type LogRecorder struct {
	mu    sync.Mutex
	lines []string
}

// Enabled implements slog.Handler: every level is kept.
func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, rec.Message)
	return nil
}

// WithAttrs implements slog.Handler; attributes are dropped.
func (r *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup implements slog.Handler.
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Matching returns the messages that contain s.
func (r *LogRecorder) Matching(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
