// Package clustertest starts real ChatScalable clusters for tests: the
// built chat-gateway and chat-broker binaries as processes on loopback
// ports, as a peer mesh of gateways or as brokers with stateless gateways.
// Every process is killed when the test ends.
package clustertest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/broker/testca"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/nats-io/nats.go"
)

// Packages of the commands, built with proctest.Build.
const (
	GatewayPkg  = "github.com/chatscalable/chatscalable/gateway/cmd/chat-gateway"
	BrokerPkg   = "github.com/chatscalable/chatscalable/broker/cmd/chat-broker"
	PresencePkg = "github.com/chatscalable/chatscalable/services/cmd/chat-presence"
	RoomsPkg    = "github.com/chatscalable/chatscalable/services/cmd/chat-rooms"
)

// StartTimeout bounds how long a process may take to print its address.
const StartTimeout = 30 * time.Second

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

// Main runs the tests of a package that uses clustertest and then removes
// the binaries it built. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// RemoveBinaries removes the binaries Binary built, for a TestMain that
// has more to do after its tests than Main does.
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
		binDir, built = "", map[string]string{}
	}
}

// Binary builds pkg once per test binary run and returns its path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	// The binaries outlive any one test, so they go to a folder of the test
	// binary's run, which Main removes.
	if binDir == "" {
		dir, err := os.MkdirTemp("", "chatscalable-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	bin := filepath.Join(binDir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil { //nolint:gosec // a test builds its own package
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, below the
// kernel's range of ephemeral ports (32768 and up): a port the kernel
// handed out for a listener and took back can next be the local port of
// some process's outgoing connection, and the node meant to listen there
// then finds it in use (seen once: a mesh node's route port).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		port := 10000 + rand.IntN(22000) //nolint:gosec // a test port, not a secret
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: try another
		}
		ls = append(ls, l) // held until all are chosen, so none repeats
		ports = append(ports, port)
	}
	if len(ports) < n {
		t.Fatalf("found %d free ports of %d below 32768", len(ports), n)
	}
	return ports
}

var (
	gatewayHTTP = regexp.MustCompile(`msg="gateway started".* http=(\S+)`)
	gatewayNATS = regexp.MustCompile(`msg="nats clients welcome" url=(\S+)`)
	brokerUp    = regexp.MustCompile(`msg="broker started".* nats=(\S+)`)
)

// Gateway is a chat-gateway process.
type Gateway struct {
	Name string
	// URL is the HTTP base URL, http://127.0.0.1:port.
	URL string
	// NATSURL is the embedded node's client URL (mesh members only).
	NATSURL string
	Proc    *proctest.Proc
	bin     string
	args    []string
}

// StartGateway starts chat-gateway named name with args (plus an HTTP
// listener on a free port) and waits until it listens. It does not wait
// for readiness: see WaitReady.
func StartGateway(t testing.TB, name string, args ...string) *Gateway {
	t.Helper()
	g := &Gateway{Name: name, bin: Binary(t, GatewayPkg)}
	g.args = append([]string{"--node-name", name, "--http-addr", "127.0.0.1:0", "--shutdown-timeout", "5s"}, args...)
	g.start(t)
	return g
}

func (g *Gateway) start(t testing.TB) {
	t.Helper()
	g.Proc = proctest.Start(t, g.Name, g.bin, g.args...)
	if strings.Contains(strings.Join(g.args, " "), "--nats-listen 127.0.0.1") {
		g.NATSURL = g.Proc.WaitLog(t, gatewayNATS, StartTimeout)[1]
	}
	g.URL = "http://" + g.Proc.WaitLog(t, gatewayHTTP, StartTimeout)[1]
}

// Restart starts the gateway again with the same arguments (and data
// folder) after it was killed or stopped; its HTTP port may change.
func (g *Gateway) Restart(t testing.TB) {
	t.Helper()
	g.Proc.Kill()
	g.start(t)
}

// WaitReady waits until /readyz answers 200.
func (g *Gateway) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	nodetest.CheckFor(t, timeout, 50*time.Millisecond, func() error { return g.Ready() })
}

// Ready returns nil when /readyz answers 200.
func (g *Gateway) Ready() error { return proctest.Ready(g.Name, g.URL) }

// StartMesh starts n gateways forming a peer mesh: each embeds a NATS node
// with a client listener on loopback (anonymous clients welcome), joined
// to the others by routes that log in with a password of the mesh's. Each
// gateway also gets args.
func StartMesh(t testing.TB, n int, args ...string) []*Gateway {
	t.Helper()
	routePassword := NewSecrets(t).Files[node.RouteUser]
	ports := FreePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	gws := make([]*Gateway, n)
	for i := range gws {
		gws[i] = StartGateway(t, fmt.Sprintf("gw-%d", i+1), append([]string{
			"--data-dir", t.TempDir(),
			"--nats-listen", "127.0.0.1:0",
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--cluster-routes", strings.Join(routes, ","),
			"--cluster-password-file", routePassword}, args...)...)
	}
	for _, g := range gws {
		g.WaitReady(t, 60*time.Second)
	}
	return gws
}

// Broker is a chat-broker process.
type Broker struct {
	Name      string
	ClientURL string
	Proc      *proctest.Proc
	bin       string
	args      []string
}

// Brokers describes a broker cluster whose ports are chosen up front, so
// gateways can be pointed at it before it runs. Its brokers require every
// client to log in by role, and their routes to log in (see Secrets).
type Brokers struct {
	Nodes []*Broker
	// URLs lists the brokers' client URLs, comma-separated, for --nats-url.
	URLs string
	// Secrets holds the password files of the roles and routes.
	Secrets *Secrets
	// TLS is the test CA of brokers planned WithTLS, nil otherwise.
	TLS *testca.Files
}

// PlanBrokers chooses ports, folders and passwords for n brokers without
// starting them (one broker is a single node, without routes). Clients log
// in with ClientArgs or Connect.
func PlanBrokers(t testing.TB, n int, opts ...BrokerOption) *Brokers {
	t.Helper()
	ports := FreePorts(t, 2*n)
	routes := make([]string, n)
	urls := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i])
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	bs := &Brokers{URLs: strings.Join(urls, ","), Secrets: NewSecrets(t)}
	for _, o := range opts {
		o(bs)
	}
	for i := range n {
		cluster := []string{"--cluster-listen", "off"} // a single broker
		if n > 1 {
			cluster = []string{"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[n+i]), "--cluster-routes", strings.Join(routes, ",")}
		}
		bs.Nodes = append(bs.Nodes, &Broker{
			Name:      fmt.Sprintf("broker-%d", i+1),
			ClientURL: urls[i],
			bin:       Binary(t, BrokerPkg),
			args: append(append(append(cluster,
				"--node-name", fmt.Sprintf("broker-%d", i+1),
				"--client-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
				"--monitor-listen", "off",
				"--lame-duck", "0s",
				"--data-dir", t.TempDir(),
			), bs.Secrets.NodeArgs()...), bs.tlsArgs()...),
		})
	}
	return bs
}

// Start starts every broker of the plan.
func (bs *Brokers) Start(t testing.TB) {
	t.Helper()
	for _, b := range bs.Nodes {
		b.Start(t)
	}
}

// StartBrokers plans and starts n brokers.
func StartBrokers(t testing.TB, n int, opts ...BrokerOption) *Brokers {
	t.Helper()
	bs := PlanBrokers(t, n, opts...)
	bs.Start(t)
	return bs
}

// Start starts (or restarts, with the same ports and data) the broker.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	if b.Proc != nil {
		b.Proc.Kill()
	}
	b.Proc = proctest.Start(t, b.Name, b.bin, b.args...)
	b.Proc.WaitLog(t, brokerUp, StartTimeout)
}

// StartService starts a service command (PresencePkg or RoomsPkg) with
// args (its NATS URL and credentials: see Brokers.StartService) and waits
// until it has started.
func StartService(t testing.TB, pkg, name string, args ...string) *proctest.Proc {
	t.Helper()
	p := proctest.Start(t, name, Binary(t, pkg), args...)
	p.WaitLog(t, serviceUp, StartTimeout)
	return p
}

var serviceUp = regexp.MustCompile(`msg="(presence|rooms) service started"`)

// Members returns the members of room (user → open connections) as the
// gateway at base reports them.
func Members(base, room string) (map[string]int, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/rooms/" + room + "/members")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("members of %s: status %d", room, resp.StatusCode)
	}
	var reply broker.MembersReply
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, m := range reply.Members {
		if !strings.HasPrefix(m.User, "probe") {
			out[m.User] = m.Connections
		}
	}
	return out, nil
}

// WaitMembers waits until the gateway at base lists exactly want as the
// members of room (probe users aside).
func WaitMembers(t testing.TB, base, room string, want map[string]int, timeout time.Duration) {
	t.Helper()
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		got, err := Members(base, room)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("members of %s on %s: %v, want %v", room, base, got, want)
		}
		return nil
	})
}

// WaitInstances waits until n instances of the NATS micro service named
// service answer a ping ($SRV.PING.<service>) through natsURL.
func WaitInstances(t testing.TB, natsURL, service string, n int, timeout time.Duration) {
	t.Helper()
	nc := nodetest.Connect(t, natsURL)
	defer nc.Close()
	nodetest.CheckFor(t, timeout, 200*time.Millisecond, func() error {
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := nc.PublishRequest("$SRV.PING."+service, inbox, nil); err != nil {
			return err
		}
		seen := 0
		for {
			if _, err := sub.NextMsg(300 * time.Millisecond); err != nil {
				break // no more answers
			}
			seen++
		}
		if seen < n {
			return fmt.Errorf("%d instances of %s answer, want %d", seen, service, n)
		}
		return nil
	})
}
