package clustertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/nats-io/nats.go"
)

// refused checks that connecting to url anonymously, and as role with a
// wrong password, fails with an authorization error.
func refused(t *testing.T, url string, role node.Role, opts ...nats.Option) {
	t.Helper()
	for _, c := range []struct {
		who  string
		opts []nats.Option
	}{
		{"an anonymous client", opts},
		{"a wrong password", append([]nats.Option{nats.UserInfo(string(role), "wrong")}, opts...)},
	} {
		nc, err := nats.Connect(url, c.opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s was let in at %s", c.who, url)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s at %s: %v, want an authorization violation", c.who, url, err)
		}
	}
}

// exitsWith runs bin with args and checks that it exits at once with a
// non-zero status, saying want.
func exitsWith(t *testing.T, name, bin, want string, args ...string) {
	t.Helper()
	p := proctest.Start(t, name, bin, args...)
	exited, err := p.Wait(clustertest.StartTimeout)
	if !exited || err == nil || !strings.Contains(p.Log(), want) {
		t.Errorf("%s: exited %v (%v), want a failure saying %q:\n%s", name, exited, err, want, p.Log())
	}
}

func TestBrokersRequireCredentials(t *testing.T) {
	t.Parallel()
	bs := clustertest.StartBrokers(t, 1)
	refused(t, bs.URLs, node.RoleGateway)
	for _, r := range node.Roles {
		bs.Connect(t, r) // each role logs in with its own password
	}
	good := clustertest.StartGateway(t, "gw-auth", bs.GatewayArgs()...)
	anon := clustertest.StartGateway(t, "gw-anon", "--nats-url", bs.URLs)
	// A reader's password does not make a gateway: it is refused the
	// history stream, so it never becomes ready.
	reader := clustertest.StartGateway(t, "gw-reader", bs.ClientArgs(node.RoleReader)...)
	good.WaitReady(t, wait)
	checkOneChat(t, "auth", []*clustertest.Gateway{good})
	for _, g := range []*clustertest.Gateway{anon, reader} {
		if err := g.Ready(); err == nil {
			t.Errorf("%s is ready", g.Name)
		}
	}
	anon.Proc.WaitLog(t, regexp.MustCompile(`(?i)authorization`), wait)
	reader.Proc.WaitLog(t, regexp.MustCompile(`Permissions Violation`), wait)

	// Without credentials a broker does not start at all, unless told.
	bin := clustertest.Binary(t, clustertest.BrokerPkg)
	common := []string{"--node-name", "open", "--client-listen", "127.0.0.1:0", "--monitor-listen", "off", "--data-dir", t.TempDir()}
	exitsWith(t, "broker-no-credentials", bin, "NATS clients must log in", append(common, "--cluster-listen", "off")...)
	exitsWith(t, "broker-anonymous-routes", bin, "routes must log in",
		append(common, "--cluster-listen", "127.0.0.1:0", "--reader-password-file", bs.Secrets.Files["reader"])...)
}

func TestEmbeddedNodeWithCredentials(t *testing.T) {
	t.Parallel()
	s := clustertest.NewSecrets(t)
	g := clustertest.StartGateway(t, "gw-closed", append([]string{"--data-dir", t.TempDir(), "--nats-listen", "127.0.0.1:0"}, s.NodeArgs()...)...)
	g.WaitReady(t, wait) // its own connection is in-process, without a password
	refused(t, g.NATSURL, node.RoleReader)
	nc, err := nats.Connect(g.NATSURL, nats.UserInfo("reader", s.Passwords["reader"]))
	if err != nil {
		t.Fatalf("the reader: %v", err)
	}
	defer nc.Close()
	sub := nodetest.SubscribeSync(t, nc, "chat.room.>")
	mustPublish(t, g.URL, "lobby", "ana", "to the reader")
	if msg, err := sub.NextMsg(wait); err != nil || !strings.Contains(string(msg.Data), "to the reader") {
		t.Fatalf("the reader's subscription: %v", err)
	}

	// An embedded node open to the network, or routes without a password,
	// are refused at start.
	bin := clustertest.Binary(t, clustertest.GatewayPkg)
	exitsWith(t, "gw-open", bin, "not on loopback", "--node-name", "gw-open", "--http-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--nats-listen", "0.0.0.0:0")
	exitsWith(t, "gw-open-routes", bin, "routes without credentials", "--node-name", "gw-open-routes", "--http-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--nats-listen", "off", "--cluster-listen", "127.0.0.1:0")
	// The embedded node's passwords make no sense without one.
	exitsWith(t, "gw-external", bin, "no embedded node", "--node-name", "gw-external", "--http-addr", "127.0.0.1:0",
		"--nats-url", "nats://127.0.0.1:1", "--reader-password-file", s.Files["reader"])
}

// TestPeerMeshOverTLS: the embedded nodes of a mesh serve their client and
// route listeners with TLS only, and are one chat.
func TestPeerMeshOverTLS(t *testing.T) {
	t.Parallel()
	ca := clustertest.TestCA(t)
	gws := clustertest.StartMesh(t, 3, "--nats-tls-cert", ca.NodeCert, "--nats-tls-key", ca.NodeKey, "--nats-tls-ca", ca.CA)
	checkOneChat(t, "mesh-tls", gws)
	if nc, err := nats.Connect(gws[0].NATSURL); err == nil {
		nc.Close()
		t.Error("a client without TLS was let into a mesh node")
	}
	nc, err := nats.Connect(gws[0].NATSURL, nats.RootCAs(ca.CA))
	if err != nil {
		t.Fatalf("a client with the CA: %v", err)
	}
	nc.Close()
}

// routez returns the names of the nodes whose routes a broker's monitoring
// endpoint lists.
func routez(monitor string) ([]string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(monitor + "/routez")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rz struct {
		Routes []struct {
			Name string `json:"remote_name"`
		} `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range rz.Routes {
		names = append(names, r.Name)
	}
	return names, nil
}

func TestRouteWithoutCredentialsDoesNotJoin(t *testing.T) {
	t.Parallel()
	s := clustertest.NewSecrets(t)
	bin := clustertest.Binary(t, clustertest.BrokerPkg)
	ports := clustertest.FreePorts(t, 9) // clients 0-3, routes 4-7, broker-1's monitoring 8
	route := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", ports[4+i]) }
	start := func(i int, name string, auth ...string) *proctest.Proc {
		monitor := "off"
		if i == 0 {
			monitor = fmt.Sprintf("127.0.0.1:%d", ports[8])
		}
		args := append([]string{"--node-name", name, "--data-dir", t.TempDir(), "--lame-duck", "0s",
			"--client-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[4+i]),
			"--cluster-routes", route(0) + "," + route(i),
			"--monitor-listen", monitor}, auth...)
		p := proctest.Start(t, name, bin, args...)
		p.WaitLog(t, regexp.MustCompile(`msg="broker started"`), clustertest.StartTimeout)
		return p
	}
	monitor := fmt.Sprintf("http://127.0.0.1:%d", ports[8])
	first := start(0, "broker-1", s.NodeArgs()...)
	refusals := func() int { return strings.Count(first.Log(), "Authentication Failure") }
	for i, c := range []struct {
		name string
		auth []string
	}{
		{"broker-anonymous", []string{"--no-auth"}},
		{"broker-wrong", []string{"--admin-password-file", s.Files["admin"], "--cluster-password-file", s.Files["admin"]}},
	} {
		before := refusals()
		p := start(i+1, c.name, c.auth...)
		nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
			if refusals() == before {
				return fmt.Errorf("broker-1 has not refused %s's route yet", c.name)
			}
			return nil
		})
		if names, err := routez(monitor); err != nil || len(names) != 0 {
			t.Fatalf("%s: broker-1's routes %v (%v), want none", c.name, names, err)
		}
		p.Kill()
	}
	start(3, "broker-good", s.NodeArgs()...)
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		names, err := routez(monitor)
		if err != nil || len(names) == 0 || names[0] != "broker-good" {
			return fmt.Errorf("broker-1's routes %v (%v), want broker-good's", names, err)
		}
		return nil
	})
}

// TestReaderRoleWithNatsCLI: the reader role can follow every room and
// read the history with the nats CLI, and nothing else: not publish a
// message or a presence report, not delete the stream, not follow the live
// subjects whose positions gateways trust.
func TestReaderRoleWithNatsCLI(t *testing.T) {
	t.Parallel()
	cli := natsCLI(t)
	bs := clustertest.StartBrokers(t, 1)
	g := clustertest.StartGateway(t, "gw-1", bs.GatewayArgs()...)
	g.WaitReady(t, wait)
	natsAs := func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, cli, append([]string{"-s", bs.URLs, "--user", "reader",
			"--password", bs.Secrets.Passwords["reader"], "--timeout", "3s"}, args...)...) //nolint:gosec // the test's own CLI
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sub := natsAs(ctx, "sub", "chat.room.>", "--raw")
	var subOut lockedBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// The subscription is live once a message published over HTTP shows.
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		mustPublish(t, g.URL, "probe", "probe", "probe")
		if !strings.Contains(subOut.String(), `"text":"probe"`) {
			return fmt.Errorf("nats sub has not received a probe yet: %q", subOut.String())
		}
		return nil
	})
	mustPublish(t, g.URL, "lobby", "ana", "for the reader")
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if !strings.Contains(subOut.String(), `"text":"for the reader"`) {
			return fmt.Errorf("nats sub lacks the message:\n%s", subOut.String())
		}
		return nil
	})
	cancel()
	_ = sub.Wait()

	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) (string, error) {
		out, err := natsAs(ctx, args...).CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{
		{"stream", "get", broker.StreamName, "--last-for", "chat.room.lobby"},
		{"stream", "info", broker.StreamName},
	} {
		out, err := run(args...)
		if err != nil || !strings.Contains(out, "for the reader") && args[1] == "get" {
			t.Errorf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, c := range []struct {
		args    []string
		subject string
	}{
		{[]string{"pub", "chat.room.lobby", "from a reader"}, "chat.room.lobby"},
		{[]string{"pub", "chat.presence.report.gw-1", `{"type":"goodbye","gateway":"gw-1"}`}, "chat.presence.report.gw-1"},
		{[]string{"stream", "rm", broker.StreamName, "-f"}, "$JS.API.STREAM.DELETE." + broker.StreamName},
		{[]string{"sub", "chat.live.>"}, "chat.live.>"},
	} {
		out, err := run(c.args...)
		if err == nil {
			t.Errorf("nats %s succeeded:\n%s", strings.Join(c.args, " "), out)
		}
		if !strings.Contains(out, "Permissions Violation") || !strings.Contains(out, c.subject) {
			t.Errorf("nats %s does not say it was refused %s:\n%s", strings.Join(c.args, " "), c.subject, out)
		}
	}
	// The stream is still there, with only the gateway's messages.
	if out, err := run("stream", "get", broker.StreamName, "--last-for", "chat.room.lobby"); err != nil || !strings.Contains(out, "for the reader") {
		t.Errorf("the history after the refusals: %v\n%s", err, out)
	}
	if v := bs.Violations(); len(v) != 4 {
		t.Errorf("the broker refused %d operations, want the reader's 4:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// TestGatewaysToBrokersOverTLS runs 3 brokers whose client and route
// listeners speak TLS only, with certificates of a test CA made by
// tools/testca, and gateways and services that verify them: it is one
// chat with presence and the directory, no role is refused anything its
// programs do, and a client without TLS or without the CA is not let in.
func TestGatewaysToBrokersOverTLS(t *testing.T) {
	t.Parallel()
	ca := clustertest.TestCA(t)
	bs := clustertest.StartBrokers(t, 3, clustertest.WithTLS(ca))
	bs.StartService(t, clustertest.PresencePkg, "presence-1")
	bs.StartService(t, clustertest.RoomsPkg, "rooms-1")
	a := clustertest.StartGateway(t, "gw-a", bs.GatewayArgs(bs.Nodes[0].ClientURL)...)
	b := clustertest.StartGateway(t, "gw-b", bs.GatewayArgs(bs.Nodes[2].ClientURL)...)
	a.WaitReady(t, 60*time.Second)
	b.WaitReady(t, 60*time.Second)
	checkOneChat(t, "tls", []*clustertest.Gateway{a, b})

	watch := ssetest.Open(t, a.URL+"/rooms/tls-presence/events?user=watcher", nil)
	ssetest.WaitForPresence(t, b.URL+"/rooms/tls-presence/events", watch, 60*time.Second)
	ssetest.Open(t, b.URL+"/rooms/tls-presence/events?user=ana", nil)
	expectPresence(t, "watcher", watch, join("ana", "tls-presence"))
	clustertest.WaitMembers(t, a.URL, "tls-presence", map[string]int{"ana": 1, "watcher": 1}, wait)
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		client := http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(b.URL + "/rooms")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var page broker.RoomsReply
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return err
		}
		for _, r := range page.Rooms {
			if r.Room == "tls" && r.Messages == 2 {
				return nil
			}
		}
		return fmt.Errorf("the directory lacks room tls with 2 messages: %+v", page.Rooms)
	})
	if v := bs.Violations(); len(v) > 0 {
		t.Errorf("the brokers refused their clients %d operations:\n%s", len(v), strings.Join(v, "\n"))
	}

	pw := nats.UserInfo("admin", bs.Secrets.Passwords["admin"])
	for _, c := range []struct {
		name string
		opts []nats.Option
	}{
		{"without TLS", []nats.Option{pw}},
		{"without the CA", []nats.Option{pw, nats.Secure(nil)}},
	} {
		if nc, err := nats.Connect(bs.Nodes[1].ClientURL, c.opts...); err == nil {
			nc.Close()
			t.Errorf("a client %s was let in", c.name)
		}
	}
	bs.Connect(t, node.RoleAdmin, bs.Nodes[1].ClientURL) // with the CA
}
