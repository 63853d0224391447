package clustertest_test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/clustertest"
)

var (
	logLevel  = regexp.MustCompile(`level=(WARN|ERROR)`)
	logBanner = regexp.MustCompile(`_ ___ _____|docs\.nats\.io|--- JETSTREAM ---|  Version:`)
)

// TestQuietLogs starts a 3-node mesh, uses it and stops it, as an operator
// would, and reads the logs: a healthy start and a chat write no WARN but
// the auth-off notice and no ERROR, the NATS start-up banner is one
// structured line, and a clean stop logs no error, no warning of the
// gateway's own and no "err=<nil>".
func TestQuietLogs(t *testing.T) {
	gws := clustertest.StartMesh(t, 3)
	checkOneChat(t, "quiet", gws)
	for _, g := range gws {
		log := g.Proc.Log()
		for _, line := range strings.Split(log, "\n") {
			if logLevel.MatchString(line) && !strings.Contains(line, "auth is off") {
				t.Errorf("%s logged on a healthy start: %s", g.Name, line)
			}
			if logBanner.MatchString(line) {
				t.Errorf("%s logged the NATS banner: %s", g.Name, line)
			}
		}
		if !strings.Contains(log, `msg="nats node ready"`) {
			t.Errorf("%s did not log the NATS node's one start-up line:\n%s", g.Name, log)
		}
	}
	for _, g := range gws {
		if err := g.Proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if exited, err := g.Proc.Wait(30 * time.Second); !exited || err != nil {
			t.Fatalf("%s after SIGTERM: exited %v, %v", g.Name, exited, err)
		}
	}
	for _, g := range gws {
		for _, line := range strings.Split(g.Proc.Log(), "\n") {
			// A node that stops sees its peers go: NATS may warn of it;
			// the gateway itself has nothing to warn of.
			ours := logLevel.MatchString(line) && !strings.Contains(line, "component=nats") && !strings.Contains(line, "auth is off")
			if ours || strings.Contains(line, "level=ERROR") || strings.Contains(line, "err=<nil>") {
				t.Errorf("%s logged on a clean stop: %s", g.Name, line)
			}
		}
	}
}
