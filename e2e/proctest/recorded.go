package proctest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillRecorded kills, with SIGKILL, each process whose pid is in one of
// the pid files matching pattern (cluster.sh's DATA/run/*.pid, its own
// supervisor.pid left out) and that still runs, if mine says it is one of
// the test's: a pid whose process ended may since name another. Nodes
// that cluster.sh starts run in sessions of their own, out of reach of the
// script's process group, so a test that fails before the script stopped
// them stops them this way.
func KillRecorded(pattern string, mine func(pid int, cmdline string) bool) {
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		if filepath.Base(f) == "supervisor.pid" {
			continue
		}
		b, err := os.ReadFile(f) //nolint:gosec // the test's own temporary folder
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || pid <= 0 {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && mine(pid, string(cmdline)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Ready returns nil when base's /readyz answers 200 within 2 s; name
// names the server in the error.
func Ready(name, base string) error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: /readyz %d", name, resp.StatusCode)
	}
	return nil
}
