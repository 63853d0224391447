// Package hoststest runs ChatScalable across hosts on one Linux machine:
// each node in a network namespace of its own, with its own address on a
// bridge the harness creates, so that partitions (iptables rules inside
// the namespaces) and latency (a delaying TCP proxy on the routes) act on
// real connections between real processes. It needs root; a test skips,
// saying why, only when the machine cannot create a network namespace,
// and fails instead under CI=true.
//
// Everything it creates is named with a "cs" prefix and removed when the
// test ends: bridge csbr<N> with the subnet 10.231.<N>.0/24, namespaces
// cs<N>-<host>, veth pairs csv<N>h<i> and an ACCEPT rule for the bridge in
// the root namespace's FORWARD chain (the Docker engine sets its policy to
// DROP). Faults only ever target addresses the harness created.
package hoststest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// Net is a bridge in the root namespace and the hosts attached to it.
type Net struct {
	// N numbers the bridge: csbr<N>, subnet 10.231.<N>.0/24.
	N int
	// Bridge is the bridge's interface name.
	Bridge string
	// HostIP is the root namespace's address on the bridge: the test
	// process reaches the hosts from it.
	HostIP string
	// Hosts are the namespaces, in the order they were named.
	Hosts []*Host

	t       testing.TB
	faultMu sync.Mutex
	blocked map[[2]*Host]bool
}

// Host is one network namespace with one address on the bridge.
type Host struct {
	// Name is the host's short name (n1, b2, g1, …).
	Name string
	// NS is the namespace's name, cs<N>-<Name>.
	NS string
	// IP is the host's address on the bridge.
	IP  string
	net *Net
}

// The first bridge number tests try; deployments/local/hosts.sh uses 250.
const firstNet = 1

var (
	netMu   sync.Mutex
	nextNet = firstNet
)

var (
	probeOnce sync.Once
	probeErr  string
)

// RequireNetns ends the test unless this machine can create a network
// namespace: it tries once per test binary, with a throwaway name. Under
// CI=true it fails the test instead of skipping it.
func RequireNetns(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() {
		name := fmt.Sprintf("cs-probe-%d", os.Getpid())
		out, err := run("ip", "netns", "add", name)
		if err == nil {
			_, _ = run("ip", "netns", "del", name)
			if _, err = exec.LookPath("iptables-restore"); err == nil {
				return
			}
			out = []byte("iptables-restore is not installed")
		}
		probeErr = fmt.Sprintf("cannot create a network namespace (ip netns add: %v: %s)", err, strings.TrimSpace(string(out)))
	})
	if probeErr == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(probeErr)
	}
	t.Skip("SKIPPING MULTI-HOST TESTS: " + probeErr)
}

// NewNet creates a bridge and one namespace per name, each with loopback
// up and an address on the bridge; everything is removed when the test
// ends, even when it fails.
func NewNet(t testing.TB, names ...string) *Net {
	t.Helper()
	RequireNetns(t)
	n := &Net{t: t, blocked: map[[2]*Host]bool{}}
	n.claim(t)
	t.Cleanup(n.remove)
	n.HostIP = fmt.Sprintf("10.231.%d.1", n.N)
	must(t, "ip", "addr", "add", n.HostIP+"/24", "dev", n.Bridge)
	must(t, "ip", "link", "set", n.Bridge, "up")
	must(t, "iptables", n.forwardRule("-I")...)
	for i, name := range names {
		h := &Host{Name: name, NS: fmt.Sprintf("cs%d-%s", n.N, name), IP: fmt.Sprintf("10.231.%d.%d", n.N, 11+i), net: n}
		n.Hosts = append(n.Hosts, h)
		outside, inside := fmt.Sprintf("csv%dh%d", n.N, i), fmt.Sprintf("csp%dh%d", n.N, i)
		must(t, "ip", "netns", "add", h.NS)
		must(t, "ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
		must(t, "ip", "link", "set", inside, "netns", h.NS)
		must(t, "ip", "link", "set", outside, "master", n.Bridge, "up")
		for _, args := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "link", "set", inside, "name", "eth0"},
			{"ip", "addr", "add", h.IP + "/24", "dev", "eth0"},
			{"ip", "link", "set", "eth0", "up"},
		} {
			must(t, "ip", append([]string{"netns", "exec", h.NS}, args...)...)
		}
	}
	return n
}

// claim takes the first free bridge number: one whose bridge, namespaces
// and subnet do not exist yet. Creating the bridge is the claim, so two
// test processes never share one.
func (n *Net) claim(t testing.TB) {
	t.Helper()
	netMu.Lock()
	defer netMu.Unlock()
	for ; nextNet < 250; nextNet++ {
		n.N, n.Bridge = nextNet, fmt.Sprintf("csbr%d", nextNet)
		if inUse(n.N) {
			continue
		}
		if out, err := run("ip", "link", "add", n.Bridge, "type", "bridge"); err != nil {
			if bytes.Contains(out, []byte("exists")) {
				continue
			}
			t.Fatalf("ip link add %s: %v: %s", n.Bridge, err, out)
		}
		nextNet++
		return
	}
	t.Fatal("no free bridge number below 250 (csbr*); remove stale ones with ip link del")
}

// inUse reports whether the subnet, a veth or a namespace of bridge
// number i exists already (a namespace's removal ends its links a moment
// later, in the background).
func inUse(i int) bool {
	addrs, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	if bytes.Contains(addrs, fmt.Appendf(nil, " 10.231.%d.", i)) {
		return true
	}
	links, _ := exec.Command("ip", "-o", "link").Output()
	if bytes.Contains(links, fmt.Appendf(nil, ": csv%dh", i)) {
		return true
	}
	nss, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(nss), "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("cs%d-", i)) {
			return true
		}
	}
	return false
}

func (n *Net) forwardRule(op string) []string {
	return []string{op, "FORWARD", "-i", n.Bridge, "-o", n.Bridge, "-m", "comment", "--comment", "chatscalable hoststest", "-j", "ACCEPT"}
}

// remove deletes the veth pairs, the namespaces, the bridge and the
// FORWARD rule, logging what it could not remove. Deleting a veth at once
// (rather than with its namespace, which the kernel finishes in the
// background) frees its name for the next test.
func (n *Net) remove() {
	for i, h := range n.Hosts {
		if out, err := run("ip", "link", "del", fmt.Sprintf("csv%dh%d", n.N, i)); err != nil {
			n.t.Logf("ip link del: %v: %s", err, out)
		}
		if out, err := run("ip", "netns", "del", h.NS); err != nil {
			n.t.Logf("ip netns del %s: %v: %s", h.NS, err, out)
		}
	}
	if out, err := run("ip", "link", "del", n.Bridge); err != nil {
		n.t.Logf("ip link del %s: %v: %s", n.Bridge, err, out)
	}
	if out, err := run("iptables", n.forwardRule("-D")...); err != nil {
		n.t.Logf("iptables -D FORWARD: %v: %s", err, out)
	}
}

// Host returns the host named name; it fails the test if there is none.
func (n *Net) Host(name string) *Host {
	for _, h := range n.Hosts {
		if h.Name == name {
			return h
		}
	}
	n.t.Fatalf("no host %s", name)
	return nil
}

// Start runs bin with args inside the host's namespace, as a process of
// proctest (its log is kept and shown if the test fails; it is killed,
// by process group, when the test ends).
func (h *Host) Start(t testing.TB, name, bin string, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, name, "ip", append([]string{"netns", "exec", h.NS, bin}, args...)...)
}

// Exec runs a command inside the host's namespace and returns its output.
func (h *Host) Exec(stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...) //nolint:gosec // the harness runs its own commands
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), h.NS, err, out)
	}
	return string(out), nil
}

// run runs a command of the harness and returns its combined output.
func run(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput() //nolint:gosec // ip and iptables with arguments the harness built
}

func must(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := run(name, args...); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// Split drops every packet between each host of a and each host of b, in
// both directions, by rules inside the hosts' namespaces; packets to and
// from the root namespace (the test's clients) still pass. Splits add up
// until Heal.
func (n *Net) Split(a, b []*Host) {
	n.t.Helper()
	n.faultMu.Lock()
	defer n.faultMu.Unlock()
	touched := map[*Host]bool{}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue
			}
			n.blocked[[2]*Host{x, y}], n.blocked[[2]*Host{y, x}] = true, true
			touched[x], touched[y] = true, true
		}
	}
	for _, h := range n.Hosts {
		if touched[h] {
			n.apply(h)
		}
	}
}

// Partition cuts a from b.
func (n *Net) Partition(a, b *Host) { n.Split([]*Host{a}, []*Host{b}) }

// Isolate cuts h from every other host (not from the test's clients).
func (n *Net) Isolate(h *Host) { n.Split([]*Host{h}, n.Hosts) }

// Heal lifts every rule Split has made.
func (n *Net) Heal() {
	n.t.Helper()
	n.faultMu.Lock()
	defer n.faultMu.Unlock()
	n.blocked = map[[2]*Host]bool{}
	for _, h := range n.Hosts {
		n.apply(h)
	}
}

// apply replaces the filter table of h's namespace with the rules of the
// blocked pairs that involve it, in one iptables-restore.
func (n *Net) apply(h *Host) {
	n.t.Helper()
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, other := range n.Hosts {
		if n.blocked[[2]*Host{h, other}] {
			fmt.Fprintf(&b, "-A INPUT -s %s/32 -j DROP\n-A OUTPUT -d %s/32 -j DROP\n", other.IP, other.IP)
		}
	}
	b.WriteString("COMMIT\n")
	if _, err := h.Exec(b.String(), "iptables-restore"); err != nil {
		n.t.Error(err) // Error, not Fatal: Flap runs on a goroutine of its own
	}
}

// Flap splits a from b and heals again, cycles times: split for down,
// healed for up. It returns when done or when stop is closed, healed.
func (n *Net) Flap(a, b []*Host, down, up time.Duration, cycles int, stop <-chan struct{}) {
	n.t.Helper()
	defer n.Heal()
	for range cycles {
		n.Split(a, b)
		select {
		case <-stop:
			return
		case <-time.After(down): // the schedule of the fault, not a wait for a condition
		}
		n.Heal()
		select {
		case <-stop:
			return
		case <-time.After(up):
		}
	}
}
