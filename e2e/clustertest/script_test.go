package clustertest_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

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

// TestClusterScript runs what `make cluster` and `make cluster-brokers`
// run, checks the nodes are one chat, then stops the script as Ctrl-C
// would and checks no process is left behind.
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
			p := proctest.StartEnv(t, "cluster.sh "+mode, []string{
				"BIN=" + filepath.Dir(gw),
				"DATA=" + t.TempDir(),
				"HTTP_BASE=" + strconv.Itoa(httpBase),
				"NATS_BASE=" + strconv.Itoa(natsBase),
				"ROUTE_BASE=" + strconv.Itoa(routeBase),
				"MONITOR_BASE=" + strconv.Itoa(monitorBase),
			}, "bash", filepath.Join(root, "deployments/local/cluster.sh"), mode)
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

			var pids []int
			for _, m := range startedLine.FindAllStringSubmatch(p.Log(), -1) {
				pid, _ := strconv.Atoi(m[1])
				pids = append(pids, pid)
			}
			if want := map[string]int{"mesh": 3, "brokers": 8}[mode]; len(pids) != want {
				t.Fatalf("script started %d processes, want %d:\n%s", len(pids), want, p.Log())
			}
			// Ctrl-C: SIGINT to the whole foreground process group.
			if err := syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if exited, err := p.Wait(30 * time.Second); !exited || err != nil {
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
