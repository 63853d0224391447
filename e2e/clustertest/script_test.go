package clustertest_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// freeRun finds n consecutive free ports on 127.0.0.1.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(10000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no run of free ports")
	return 0
}

var startedLine = regexp.MustCompile(`started \S+ \(pid (\d+)\)`)

// runScript runs cluster.sh with a command (kill, start) against the
// cluster that env describes, and fails the test unless it exits 0.
func runScript(t *testing.T, env []string, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %v: %v\n%s", args, err, out)
	}
	t.Logf("cluster.sh %v: %s", args, out)
}

// TestClusterScript runs what `make cluster` and `make cluster-brokers`
// run, checks the nodes are one chat, kills node 2 and starts it again as
// the script prints (the others go on, and the restarted node catches up),
// then stops the script as Ctrl-C would: it exits 0 and leaves no process
// behind, the restarted one included.
func TestClusterScript(t *testing.T) {
	root := proctest.Root(t)
	gw := clustertest.Binary(t, clustertest.GatewayPkg)
	for _, pkg := range []string{clustertest.BrokerPkg, clustertest.PresencePkg, clustertest.RoomsPkg} {
		clustertest.Binary(t, pkg) // into the same folder
	}
	for _, mode := range []string{"mesh", "brokers"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			httpBase, natsBase, routeBase, monitorBase := freeRun(t, 3), freeRun(t, 3), freeRun(t, 3), freeRun(t, 3)
			script := filepath.Join(root, "deployments/local/cluster.sh")
			data := t.TempDir()
			// The nodes run in sessions of their own, out of reach of the
			// script's process group: if the test fails before Ctrl-C has
			// stopped them, kill the ones the script recorded.
			t.Cleanup(func() {
				proctest.KillRecorded(filepath.Join(data, "run", "*.pid"), func(_ int, cmdline string) bool {
					return strings.HasPrefix(cmdline, filepath.Dir(gw)+"/")
				})
			})
			env := []string{
				"BIN=" + filepath.Dir(gw),
				"DATA=" + data,
				"HTTP_BASE=" + strconv.Itoa(httpBase),
				"NATS_BASE=" + strconv.Itoa(natsBase),
				"ROUTE_BASE=" + strconv.Itoa(routeBase),
				"MONITOR_BASE=" + strconv.Itoa(monitorBase),
			}
			p := proctest.StartEnv(t, "cluster.sh "+mode, env, "bash", script, mode)
			p.WaitLog(t, regexp.MustCompile(`Press Ctrl-C`), 30*time.Second)

			n := 3
			if mode == "brokers" {
				n = 2
			}
			var gws []*clustertest.Gateway
			for i := range n {
				g := &clustertest.Gateway{Name: fmt.Sprintf("gw-%d", i+1), URL: fmt.Sprintf("http://127.0.0.1:%d", httpBase+i)}
				g.WaitReady(t, 60*time.Second)
				gws = append(gws, g)
			}
			checkOneChat(t, "script", gws)
			last := ssetest.Open(t, gws[n-1].URL+"/rooms/lobby/events", nil)
			if want := map[string]int{"mesh": 3, "brokers": 8}[mode]; len(startedLine.FindAllString(p.Log(), -1)) != want {
				t.Fatalf("script started %d processes, want %d:\n%s", len(startedLine.FindAllString(p.Log(), -1)), want, p.Log())
			}

			// Node 2 dies (gw-2 of the mesh, broker-2 of the brokers): the
			// script says so and the others go on.
			node2 := map[string]string{"mesh": "gw-2", "brokers": "broker-2"}[mode]
			runScript(t, env, script, "kill", "2")
			p.WaitLog(t, regexp.MustCompile(node2+` ended; the others go on`), 30*time.Second)
			// Publishes pause while the stream elects a new leader, if node
			// 2 led it (about 1–2 s): a client tries again on a 503.
			nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
				status, err := publish(gws[0].URL, "lobby", "gw-1", "while node 2 is down")
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("status %d", status)
				}
				return err
			})
			expectTexts(t, "a listener on "+gws[n-1].Name, last, "while node 2 is down")
			// Started again with the same flags and data, it catches up.
			runScript(t, env, script, "start", "2")
			p.WaitLog(t, regexp.MustCompile(node2+` is up again`), 30*time.Second)
			if mode == "mesh" {
				gws[1].WaitReady(t, 60*time.Second)
				// The restarted node's history has the message published
				// while it was down.
				nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
					texts, err := historyTexts(gws[1].URL, "lobby")
					if err == nil && !texts["while node 2 is down"] {
						err = fmt.Errorf("gw-2's history lacks it: %v", texts)
					}
					return err
				})
			}
			mustPublish(t, gws[n-1].URL, "lobby", gws[n-1].Name, "after node 2 came back")
			expectTexts(t, "a listener on "+gws[n-1].Name, last, "after node 2 came back")

			var pids []int
			for _, m := range startedLine.FindAllStringSubmatch(p.Log(), -1) {
				pid, _ := strconv.Atoi(m[1])
				pids = append(pids, pid) // the restarted node's too
			}
			// Ctrl-C: SIGINT to the whole foreground process group.
			if err := syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if exited, err := p.Wait(75 * time.Second); !exited || err != nil {
				t.Fatalf("script after Ctrl-C: exited %v, %v\n%s", exited, err, p.Log())
			}
			for _, pid := range pids {
				if err := syscall.Kill(pid, 0); err == nil {
					t.Errorf("process %d is still running after Ctrl-C", pid)
				}
			}
			if err := last.Drain(10 * time.Second); err != ssetest.ErrClosed {
				t.Errorf("a listener's stream is still open after Ctrl-C: %v", err)
			}
		})
	}
}
