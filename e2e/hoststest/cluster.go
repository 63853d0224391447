package hoststest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ports are the same in every namespace: each has its own network stack.
const (
	HTTPPort    = 8080
	NATSPort    = 4222
	RoutePort   = 6222
	MonitorPort = 8222
)

// Options shape a cluster.
type Options struct {
	// Latency puts a delaying proxy in front of each node's route
	// listener (see Proxy); Cluster.SetLatency sets its delay. Without it
	// the nodes' routes connect directly.
	Latency bool
	// GatewayArgs are more flags of every chat-gateway.
	GatewayArgs []string
	// GatewayBrokers, when set, lists the brokers (indexes) gateway i is
	// given as its NATS URLs; by default every broker.
	GatewayBrokers func(i int) []int
}

// Node is a chat-gateway or chat-broker process in a host of its own.
type Node struct {
	Name string
	Host *Host
	// URL is a gateway's HTTP base URL, "" for a broker.
	URL string
	// NATSURL is the NATS client URL of the node's embedded or broker
	// node, "" for a gateway of brokers.
	NATSURL string
	Proc    *proctest.Proc
	proxy   *Proxy
}

// Cluster is a ChatScalable cluster whose nodes each run in a namespace
// of Net: a peer mesh (Gateways, each with an embedded NATS node) or
// Brokers with Gateways attached to them.
type Cluster struct {
	Net      *Net
	Gateways []*Node
	Brokers  []*Node
	Secrets  *clustertest.Secrets
}

var (
	gatewayStarted = regexp.MustCompile(`msg="gateway started"`)
	brokerStarted  = regexp.MustCompile(`msg="broker started"`)
)

// gatewayArgs are the flags every gateway of the harness gets: retention
// large enough that no test's load is ever trimmed, so a message missing
// from history or from a listener is lost, not retired.
func gatewayArgs(name string, o Options) []string {
	return append([]string{"--node-name", name, "--http-addr", fmt.Sprintf("0.0.0.0:%d", HTTPPort),
		"--shutdown-timeout", "5s", "--history-max-msgs", "100000", "--max-replay", "100000"}, o.GatewayArgs...)
}

// routing returns the route flags of a node on h: its route listener (on
// loopback behind the proxy with latency, else on its address) and the
// route URLs of all nodes.
func routing(t testing.TB, h *Host, all []*Host, o Options) (listen string, routes string, p *Proxy) {
	t.Helper()
	urls := make([]string, len(all))
	for i, x := range all {
		urls[i] = fmt.Sprintf("nats://%s:%d", x.IP, RoutePort)
	}
	listen = fmt.Sprintf("%s:%d", h.IP, RoutePort)
	if o.Latency {
		// Other nodes reach the route listener only through the proxy; it
		// advertises a loopback address, which a node that hears of it
		// takes for itself and ignores, so no route bypasses the proxy.
		upstream := fmt.Sprintf("127.0.0.1:%d", RoutePort)
		ln, err := ListenIn(h.NS, listen)
		if err != nil {
			t.Fatalf("proxy on %s: %v", h.Name, err)
		}
		ns := h.NS
		p = NewProxy(ln, func(ctx context.Context) (net.Conn, error) { return DialIn(ctx, ns, upstream) })
		t.Cleanup(p.Close)
		listen = upstream
	}
	return listen, strings.Join(urls, ","), p
}

// StartMesh starts n gateways as a peer mesh, each in a host n1..nN, each
// embedding a NATS node that requires the roles' passwords and routes to
// the others; it waits until every gateway is ready.
func StartMesh(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	c := &Cluster{Net: NewNet(t, names...), Secrets: clustertest.NewSecrets(t)}
	bin := clustertest.Binary(t, clustertest.GatewayPkg)
	for i, h := range c.Net.Hosts {
		listen, routes, p := routing(t, h, c.Net.Hosts, o)
		g := &Node{Name: fmt.Sprintf("gw-%d", i+1), Host: h, proxy: p,
			URL:     fmt.Sprintf("http://%s:%d", h.IP, HTTPPort),
			NATSURL: fmt.Sprintf("nats://%s:%d", h.IP, NATSPort)}
		args := append(gatewayArgs(g.Name, o), "--data-dir", t.TempDir(),
			"--nats-listen", fmt.Sprintf("0.0.0.0:%d", NATSPort),
			"--cluster-listen", listen, "--cluster-routes", routes)
		g.Proc = h.Start(t, g.Name, bin, append(args, c.Secrets.NodeArgs()...)...)
		c.Gateways = append(c.Gateways, g)
	}
	c.waitGateways(t)
	return c
}

// StartBrokers starts brokers chat-broker nodes clustered in hosts
// b1..bN and gateways stateless gateways in hosts g1..gM, each gateway
// given every broker's URL; it waits until every gateway is ready.
func StartBrokers(t testing.TB, brokers, gateways int, o Options) *Cluster {
	t.Helper()
	var names []string
	for i := range brokers {
		names = append(names, fmt.Sprintf("b%d", i+1))
	}
	for i := range gateways {
		names = append(names, fmt.Sprintf("g%d", i+1))
	}
	c := &Cluster{Net: NewNet(t, names...), Secrets: clustertest.NewSecrets(t)}
	bhosts := c.Net.Hosts[:brokers]
	var urls []string
	bin := clustertest.Binary(t, clustertest.BrokerPkg)
	for i, h := range bhosts {
		listen, routes, p := routing(t, h, bhosts, o)
		b := &Node{Name: fmt.Sprintf("broker-%d", i+1), Host: h, proxy: p, NATSURL: fmt.Sprintf("nats://%s:%d", h.IP, NATSPort)}
		urls = append(urls, b.NATSURL)
		b.Proc = h.Start(t, b.Name, bin, append([]string{"--node-name", b.Name,
			"--client-listen", fmt.Sprintf("0.0.0.0:%d", NATSPort),
			"--cluster-listen", listen, "--cluster-routes", routes,
			"--monitor-listen", fmt.Sprintf("0.0.0.0:%d", MonitorPort),
			"--lame-duck", "0s", "--data-dir", t.TempDir()}, c.Secrets.NodeArgs()...)...)
		c.Brokers = append(c.Brokers, b)
	}
	for _, b := range c.Brokers {
		b.Proc.WaitLog(t, brokerStarted, clustertest.StartTimeout)
	}
	gbin := clustertest.Binary(t, clustertest.GatewayPkg)
	for i, h := range c.Net.Hosts[brokers:] {
		g := &Node{Name: fmt.Sprintf("gw-%d", i+1), Host: h, URL: fmt.Sprintf("http://%s:%d", h.IP, HTTPPort)}
		mine := urls
		if o.GatewayBrokers != nil {
			mine = nil
			for _, b := range o.GatewayBrokers(i) {
				mine = append(mine, urls[b])
			}
		}
		g.Proc = h.Start(t, g.Name, gbin, append(gatewayArgs(g.Name, o), "--nats-url", strings.Join(mine, ","),
			"--nats-user", string(node.RoleGateway), "--nats-password-file", c.Secrets.Files[string(node.RoleGateway)])...)
		c.Gateways = append(c.Gateways, g)
	}
	c.waitGateways(t)
	return c
}

func (c *Cluster) waitGateways(t testing.TB) {
	t.Helper()
	for _, g := range c.Gateways {
		g.Proc.WaitLog(t, gatewayStarted, clustertest.StartTimeout)
	}
	for _, g := range c.Gateways {
		nodetest.CheckFor(t, 60*time.Second, 50*time.Millisecond, g.Ready)
	}
}

// Ready returns nil when a gateway's /readyz answers 200.
func (g *Node) Ready() error { return proctest.Ready(g.Name, g.URL) }

// NATSServer returns the NATS server a gateway is connected to, as its
// /node reports it ("" when it is not connected).
func (g *Node) NATSServer() (string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(g.URL + "/node")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var n struct {
		NATSServer string `json:"nats_server"`
	}
	err = json.NewDecoder(resp.Body).Decode(&n)
	return n.NATSServer, err
}

// SetLatency sets the delay and jitter of every route (a cluster started
// with Options.Latency), with load running or not.
func (c *Cluster) SetLatency(delay, jitter time.Duration) {
	for _, n := range append(append([]*Node(nil), c.Gateways...), c.Brokers...) {
		if n.proxy != nil {
			n.proxy.SetDelay(delay, jitter)
		}
	}
}

// NATSNodes are the nodes that run NATS: the brokers, or the mesh's
// gateways.
func (c *Cluster) NATSNodes() []*Node {
	if len(c.Brokers) > 0 {
		return c.Brokers
	}
	return c.Gateways
}

// Admin connects to the NATS node of n as the admin role; the connection
// is closed when the test ends.
func (c *Cluster) Admin(t testing.TB, n *Node) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.NATSURL, nats.UserInfo(string(node.RoleAdmin), c.Secrets.Passwords[string(node.RoleAdmin)]),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s as admin: %v", n.Name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// StreamLeader returns the NATS node (Brokers or the mesh's Gateways)
// that leads the history stream, asking the JetStream API.
func (c *Cluster) StreamLeader(t testing.TB) *Node {
	t.Helper()
	js, err := jetstream.New(c.Admin(t, c.NATSNodes()[0]))
	if err != nil {
		t.Fatal(err)
	}
	var leader *Node
	nodetest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, broker.StreamName)
		if err != nil {
			return err
		}
		ci := s.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" {
			return fmt.Errorf("stream %s has no leader", broker.StreamName)
		}
		for _, n := range c.NATSNodes() {
			if n.Name == ci.Leader {
				leader = n
				return nil
			}
		}
		return fmt.Errorf("stream leader %q is none of the cluster's nodes", ci.Leader)
	})
	return leader
}

// Hosts returns the hosts of nodes.
func Hosts(nodes ...*Node) []*Host {
	hs := make([]*Host, len(nodes))
	for i, n := range nodes {
		hs[i] = n.Host
	}
	return hs
}
