package commands_test

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
)

const roomsPkg = "github.com/chatscalable/chatscalable/services/cmd/chat-rooms"

// TestRoomsRun runs chat-rooms before NATS is up (configured from the
// environment), then starts a node on its URL: it starts the service,
// answers, and exits 0 on SIGTERM.
func TestRoomsRun(t *testing.T) {
	bin := proctest.Build(t, roomsPkg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	healthFile := filepath.Join(t.TempDir(), "healthy")
	healthy := func() bool {
		h := proctest.StartEnv(t, "healthcheck", []string{"CHAT_HEALTH_FILE=" + healthFile}, bin, "healthcheck")
		exited, err := h.Wait(10 * time.Second)
		return exited && err == nil
	}
	p := proctest.StartEnv(t, "chat-rooms", []string{"CHAT_NATS_URL=nats://" + addr, "CHAT_LOG_LEVEL=debug", "CHAT_HEALTH_FILE=" + healthFile}, bin)
	p.WaitLog(t, regexp.MustCompile(`not started yet`), 20*time.Second)

	n, err := node.Start(node.Options{Name: "rooms-cmd-test", DataDir: t.TempDir(), ClientListen: addr})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(n.Shutdown)
	p.WaitLog(t, regexp.MustCompile(`msg="rooms service started"`), 20*time.Second)
	nodetest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !healthy() {
			return fmt.Errorf("healthcheck fails while the service runs")
		}
		return nil
	})

	nc := nodetest.Connect(t, n.ClientURL())
	msg, err := nc.Request(broker.RoomsGetSubject, []byte(`{"room":"lobby"}`), 5*time.Second)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var info broker.RoomInfo
	if err := json.Unmarshal(msg.Data, &info); err != nil || info.Room != "lobby" {
		t.Fatalf("get reply %q: %v", msg.Data, err)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := p.Wait(15 * time.Second)
	if !exited {
		t.Fatal("still running 15s after SIGTERM")
	}
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Log())
	}
	if !strings.Contains(p.Log(), `msg=stopped`) {
		t.Errorf("no stop line in log:\n%s", p.Log())
	}
	if healthy() {
		t.Errorf("healthcheck passes after the service stopped")
	}
	nodetest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, err := nc.Request(broker.RoomsGetSubject, []byte(`{"room":"lobby"}`), time.Second); err == nil {
			return fmt.Errorf("the service still answers after exiting")
		}
		return nil
	})
}
