package clustertest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// natsCLI returns the natscli binary: $CHAT_NATS_CLI, tools/bin/nats of
// the workspace (installed by `make tools`), or nats on the PATH.
func natsCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHAT_NATS_CLI"); p != "" {
		return p
	}
	if p := filepath.Join(proctest.Root(t), "tools", "bin", "nats"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	t.Fatal("natscli is not installed: run `make tools` (or `make test`, which installs it) or set CHAT_NATS_CLI")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestNATSCLIInterop(t *testing.T) {
	t.Parallel()
	cli := natsCLI(t)
	gws := clustertest.StartMesh(t, 3)
	listeners := make([]*ssetest.Stream, len(gws))
	for i, g := range gws {
		listeners[i] = ssetest.Open(t, g.URL+"/rooms/lobby/events", nil)
	}

	// nats sub on node 2 sees what is published over HTTP on node 1.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, cli, "sub", "chat.room.>", "-s", gws[1].NATSURL, "--raw")
	var subOut lockedBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// The subscription is live once the CLI has registered it with node 2:
	// probe with plain messages on a private subject until one is seen.
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		if out, err := exec.Command(cli, "pub", "chat.room.probe", "probe", "-s", gws[1].NATSURL).CombinedOutput(); err != nil {
			return fmt.Errorf("nats pub: %v: %s", err, out)
		}
		if !strings.Contains(subOut.String(), "probe") {
			return fmt.Errorf("nats sub has not received the probe yet: %q", subOut.String())
		}
		return nil
	})
	mustPublish(t, gws[0].URL, "lobby", "ana", "from http on gw-1")
	// Several probes may arrive before it; wait for the envelope itself.
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if !strings.Contains(subOut.String(), `"text":"from http on gw-1"`) || !strings.Contains(subOut.String(), `"user":"ana"`) {
			return fmt.Errorf("nats sub output lacks the envelope:\n%s", subOut.String())
		}
		return nil
	})
	cancel() // stop nats sub
	_ = sub.Wait()

	// nats pub on node 3 reaches the listeners of every node.
	out, err := exec.Command(cli, "pub", "chat.room.lobby", "hi from cli", "-s", gws[2].NATSURL).CombinedOutput()
	if err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	for i, l := range listeners {
		expectTexts(t, "listener on "+gws[i].Name, l, "from http on gw-1", "hi from cli")
	}

	// The chat services are NATS micro services: listed, described and
	// callable with the CLI. Every mesh node runs a replica of each.
	nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
		out, err := exec.Command(cli, "micro", "ls", "-s", gws[0].NATSURL).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nats micro ls: %v: %s", err, out)
		}
		for _, name := range []string{"chat-presence", "chat-rooms"} {
			if !strings.Contains(string(out), name) {
				return fmt.Errorf("nats micro ls does not list %s:\n%s", name, out)
			}
		}
		return nil
	})
	out, err = exec.Command(cli, "micro", "info", "chat-rooms", "-s", gws[1].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chat.rooms.list") {
		t.Errorf("nats micro info chat-rooms: %v\n%s", err, out)
	}
	out, err = exec.Command(cli, "micro", "info", "chat-presence", "-s", gws[1].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chat.presence.members") {
		t.Errorf("nats micro info chat-presence: %v\n%s", err, out)
	}
	nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
		out, err := exec.Command(cli, "req", "chat.presence.members", `{"room":"lobby"}`, "--raw", "-s", gws[2].NATSURL).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"room":"lobby"`) || !strings.Contains(string(out), `"user":"anonymous"`) {
			return fmt.Errorf("nats req chat.presence.members: %v: %s", err, out)
		}
		return nil
	})
	out, err = exec.Command(cli, "req", "chat.rooms.list", "{}", "--raw", "-s", gws[2].NATSURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"room":"lobby"`) {
		t.Errorf("nats req chat.rooms.list: %v\n%s", err, out)
	}
}

// lockedBuffer is a bytes.Buffer safe to write from a command's output
// copier while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBrokerHealthcheckAndLameDuckStop(t *testing.T) {
	t.Parallel()
	bin := clustertest.Binary(t, clustertest.BrokerPkg)
	ports := clustertest.FreePorts(t, 2)
	monitor := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	healthy := func() bool {
		p := proctest.Start(t, "healthcheck", bin, "healthcheck", "--monitor-url", monitor, "--timeout", "2s")
		exited, err := p.Wait(10 * time.Second)
		if !exited {
			t.Fatal("healthcheck did not exit")
		}
		return err == nil
	}
	if healthy() {
		t.Fatal("healthy with no broker running")
	}
	// --no-auth: a broker open to anonymous clients, which says so.
	b := proctest.Start(t, "broker", bin, "--node-name", "solo", "--cluster-listen", "off", "--no-auth",
		"--client-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--monitor-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--data-dir", t.TempDir(), "--lame-duck", "1s")
	b.WaitLog(t, regexp.MustCompile(`level=WARN msg="NATS AUTHENTICATION IS OFF`), wait)
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		if !healthy() {
			return fmt.Errorf("not healthy yet")
		}
		return nil
	})
	// A gateway on the single broker: lame-duck mode on SIGTERM stops the
	// broker within its grace period, and the gateway reports not ready.
	g := clustertest.StartGateway(t, "gw-solo", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", ports[0]))
	g.WaitReady(t, wait)
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, err := b.Wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("broker after SIGTERM: exited %v, %v", exited, err)
	}
	if !strings.Contains(b.Log(), "lame duck") && !strings.Contains(b.Log(), "Lame Duck") {
		t.Errorf("broker did not enter lame-duck mode:\n%s", b.Log())
	}
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		if g.Ready() == nil {
			return fmt.Errorf("gateway still ready without its broker")
		}
		return nil
	})
}
