package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

func TestClientsMustLogIn(t *testing.T) {
	n := nodetest.StartSecureNode(t)
	if nc, err := nats.Connect(n.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous client: %v, want an authorization violation", err)
	}
	for _, role := range node.Roles {
		if nc, err := nats.Connect(n.ClientURL(), nats.UserInfo(string(role), "wrong")); err == nil {
			nc.Close()
			t.Errorf("%s with a wrong password was let in", role)
		}
		nc := n.ConnectAs(t, role)
		if err := nc.Flush(); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}
	// The node's own in-process connection needs no password.
	nc, err := n.Connect()
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	nc.Close()
}

func TestBcryptPasswords(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(node.Options{
		Name: "bcrypt", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0",
		Auth: node.Auth{Passwords: map[node.Role]string{node.RoleReader: string(hash)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	nc, err := nats.Connect(n.ClientURL(), nats.UserInfo("reader", "s3cret"))
	if err != nil {
		t.Fatalf("a password whose hash the node holds: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(n.ClientURL(), nats.UserInfo("reader", string(hash))); err == nil {
		nc.Close()
		t.Error("the hash itself was taken as the password")
	}
}

func TestStartRefusesAnOpenNode(t *testing.T) {
	for _, c := range []struct {
		name string
		o    node.Options
		want error
	}{
		{"anonymous clients off loopback", node.Options{ClientListen: "0.0.0.0:4222"}, node.ErrAnonymousListener},
		{"anonymous clients on every interface", node.Options{ClientListen: ":4222"}, node.ErrAnonymousListener},
		{"routes without a password", node.Options{ClientListen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0"}, node.ErrAnonymousRoutes},
		{"routes without a password, clients with", node.Options{
			ClusterListen: "127.0.0.1:0",
			Auth:          node.Auth{Passwords: map[node.Role]string{node.RoleAdmin: "x"}},
		}, node.ErrAnonymousRoutes},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Name, c.o.DataDir = "open", t.TempDir()
			n, err := node.Start(c.o)
			if err == nil {
				n.Shutdown()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Start: %v, want %v", err, c.want)
			}
		})
	}
	// Loopback stays open for the quickstart; no-auth opens anything.
	for _, o := range []node.Options{
		{ClientListen: "127.0.0.1:0"},
		{ClientListen: "localhost:0"},
		selfRouted(t, node.Options{ClientListen: "127.0.0.1:0", Auth: node.Auth{NoAuth: true}}),
	} {
		o.Name, o.DataDir = "loopback", t.TempDir()
		n, err := node.Start(o)
		if err != nil {
			t.Fatalf("Start(%+v): %v", o, err)
		}
		n.Shutdown()
	}
}

// TestRolePermissions checks each role's rights on the wire: what its
// programs do is allowed, and nothing that would let it forge positions,
// speak for another role or change the history stream is.
func TestRolePermissions(t *testing.T) {
	n := nodetest.StartSecureNode(t)
	allow, deny := true, false
	type check struct {
		op, subject string // op: pub or sub
		allowed     bool
	}
	forgeries := []check{
		{"pub", "chat.live.lobby", deny},
		{"pub", "mercure.live.abc.h", deny},
		{"pub", "chat.presence.room.lobby", deny},
		{"pub", "$JS.API.STREAM.DELETE." + broker.StreamName, deny},
		{"pub", "$JS.API.STREAM.PURGE." + broker.StreamName, deny},
		{"pub", "$JS.API.CONSUMER.CREATE." + broker.StreamName, deny},
		{"pub", "$JS.API.CONSUMER.CREATE." + broker.StreamName + ".x.chat.room.lobby", deny},
	}
	table := map[node.Role][]check{
		node.RoleGateway: append([]check{
			{"pub", "chat.room.lobby", allow},
			{"pub", "chat.presence.report.gw-1", allow},
			{"pub", "chat.presence.members", allow},
			{"pub", "chat.rooms.list", allow},
			{"pub", "$JS.API.STREAM.UPDATE." + broker.StreamName, allow},
			{"pub", "$JS.API.DIRECT.GET." + broker.StreamName, allow},
			{"pub", "chat.rooms.private", allow},
			{"pub", "mercure.update.abc.h", allow},
			{"sub", "mercure.live.*.*", allow},
			{"pub", "$JS.API.DIRECT.GET." + broker.MercureStream, allow},
			{"pub", "$JS.API.STREAM.PURGE." + broker.MercureStream, deny},
			{"pub", "$JS.API.CONSUMER.CREATE.KV_" + broker.RoomTopicsBucket + ".c.$KV." + broker.RoomTopicsBucket + ".private.>", allow},
			{"pub", "$KV." + broker.RoomTopicsBucket + ".private.lobby", deny},
			{"pub", "$JS.API.STREAM.UPDATE.KV_" + broker.RoomTopicsBucket, deny},
			{"pub", "$JS.API.STREAM.PURGE.KV_" + broker.RoomTopicsBucket, deny},
			{"pub", "chat.presence.announce.lobby", deny},
			{"pub", "chat.presence.sync", deny},
			{"pub", "$JS.API.STREAM.UPDATE." + broker.PresenceStream, deny},
			{"sub", "chat.live.lobby", allow},
			{"sub", "chat.presence.room.lobby", allow},
			{"sub", "_INBOX_GATEWAY.abc", allow},
			{"sub", "_INBOX.abc", deny},
			{"sub", "chat.presence.report.>", deny},
		}, forgeries...),
		node.RoleService: append([]check{
			{"pub", "chat.presence.announce.lobby", allow},
			{"pub", "chat.presence.sync", allow},
			{"pub", "$KV." + broker.RoomTopicsBucket + ".lobby", allow},
			{"pub", "chat.room.lobby", deny},
			{"pub", "chat.presence.report.gw-1", deny},
			{"pub", "$JS.API.STREAM.UPDATE." + broker.StreamName, deny},
			{"sub", "chat.presence.report.>", allow},
			{"sub", "$SRV.PING", allow},
			{"sub", "_INBOX_SERVICE.abc", allow},
			{"sub", "chat.live.lobby", deny},
			{"sub", "_INBOX_GATEWAY.>", deny},
		}, forgeries...),
		node.RoleReader: append([]check{
			{"pub", "$JS.API.STREAM.INFO." + broker.StreamName, allow},
			{"pub", "$JS.API.DIRECT.GET." + broker.StreamName + ".chat.room.lobby", allow},
			{"pub", "chat.room.lobby", deny},
			{"pub", "chat.presence.report.gw-1", deny},
			{"pub", "chat.rooms.topic", deny},
			{"pub", "$SRV.PING", deny},
			{"sub", "chat.room.>", allow},
			{"sub", "mercure.update.>", allow},
			{"pub", "mercure.update.abc.h", deny},
			{"sub", "mercure.live.>", deny},
			{"sub", "_INBOX.abc", allow},
			{"sub", "chat.live.>", deny},
			{"sub", "chat.presence.report.>", deny},
			{"sub", "_INBOX_GATEWAY.>", deny},
			{"sub", "_INBOX_SERVICE.>", deny},
		}, forgeries...),
		node.RoleAdmin: {
			{"pub", "chat.live.lobby", allow},
			{"sub", ">", allow},
		},
	}
	for role, checks := range table {
		for _, c := range checks {
			t.Run(fmt.Sprintf("%s %s %s", role, c.op, c.subject), func(t *testing.T) {
				// A connection per check: a refusal is the connection's last
				// error, which the flush after the operation has read.
				nc := n.ConnectAs(t, role)
				var err error
				if c.op == "pub" {
					err = nc.Publish(c.subject, []byte("x"))
				} else {
					_, err = nc.SubscribeSync(c.subject)
				}
				if err == nil {
					err = nc.Flush()
				}
				if err != nil {
					t.Fatal(err)
				}
				refused := errors.Is(nc.LastError(), nats.ErrPermissionViolation)
				if refused == c.allowed {
					t.Errorf("allowed %v, want %v (last error: %v)", !refused, c.allowed, nc.LastError())
				}
			})
		}
	}
}

// selfRouted gives o a route listener on a free loopback port and a route
// to itself: a clustered JetStream node needs a route to start.
func selfRouted(t *testing.T, o node.Options) node.Options {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o.ClusterListen, o.Routes = addr, []string{"nats://" + addr}
	return o
}

// routeCount returns the routes a node's monitoring endpoint reports.
func routeCount(t *testing.T, monitor string) int {
	t.Helper()
	resp, err := http.Get(monitor + "/routez")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rz struct {
		NumRoutes int `json:"num_routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
		t.Fatal(err)
	}
	return rz.NumRoutes
}

func TestRoutesMustLogIn(t *testing.T) {
	rec := &nodetest.LogRecorder{}
	a, err := node.Start(selfRouted(t, node.Options{
		Name: "route-a", DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", MonitorListen: "127.0.0.1:0",
		Auth: node.Auth{RoutePassword: "r0ute"}, Logger: slog.New(rec),
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	joiner := func(name string, auth node.Auth) *node.Node {
		n, err := node.Start(node.Options{
			Name: name, DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0",
			Routes: []string{a.ClusterURL()}, Auth: auth, Logger: slog.New(rec),
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name string
		auth node.Auth
	}{
		{"no credentials", node.Auth{NoAuth: true}},
		{"a wrong password", node.Auth{RoutePassword: "wrong"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.Matching("Authentication Failure"))
			n := joiner("route-"+strings.ReplaceAll(c.name, " ", "-"), c.auth)
			defer n.Shutdown()
			nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				if len(rec.Matching("Authentication Failure")) == before {
					return errors.New("the node has not refused the route yet")
				}
				return nil
			})
			if got := routeCount(t, a.MonitorURL()); got != 0 {
				t.Fatalf("%d routes joined", got)
			}
		})
	}
	good := joiner("route-good", node.Auth{RoutePassword: "r0ute"})
	defer good.Shutdown()
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := routeCount(t, a.MonitorURL()); got == 0 {
			return errors.New("the route with the password has not joined")
		}
		return nil
	})
	// The password travels in the route URLs; the logs show none.
	if leaked := rec.Matching("r0ute"); len(leaked) > 0 {
		t.Errorf("the route password is in the log: %q", leaked)
	}
}
