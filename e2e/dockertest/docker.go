// Package dockertest runs ChatScalable's container deployments on the real
// Docker engine for tests: it builds the images, brings compose projects
// and swarm stacks up and removes everything it made, even on failure.
// Without a reachable engine the tests skip with a message, except under
// CI=true, where that fails them.
package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// RequireDocker ends the test unless a Docker engine answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("no Docker engine reachable (%v: %s)", err, strings.TrimSpace(string(out)))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING DOCKER TESTS: " + msg)
}

// Root returns the workspace root (the folder holding go.work).
func Root(t testing.TB) string {
	t.Helper()
	return proctest.Root(t)
}

// Run runs a command with extra environment and returns its combined
// output; it fails the test on error.
func Run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := Try(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command and returns its output and error, bounded to 10 min.
func Try(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // a test runs docker with its own arguments
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	imagesOnce sync.Once
	imageTag   string
	imagesErr  error
	imagesOut  string
)

// ImageNames are the images `make images` builds (chatscalable/<name>):
// one per command, and caddy, the compose deployment's entry point.
var ImageNames = []string{"chat-gateway", "chat-signin", "chat-broker", "chat-presence", "chat-rooms", "caddy"}

// Images builds the images once per test binary run, under a tag of their
// own (never :latest), and returns the tag. RemoveImages removes them.
func Images(t testing.TB) string {
	t.Helper()
	imagesOnce.Do(func() {
		imageTag = fmt.Sprintf("cstest-%d", rand.IntN(1<<30)) //nolint:gosec // a tag, not a secret
		imagesOut, imagesErr = Try(nil, "make", "-C", Root(t), "images", "IMAGE_TAG="+imageTag, "IMAGE_LATEST=0")
	})
	if imagesErr != nil {
		t.Fatalf("make images: %v\n%s", imagesErr, imagesOut)
	}
	return imageTag
}

// RemoveImages removes the images Images built; call it from TestMain.
func RemoveImages() {
	if imageTag == "" {
		return
	}
	for _, name := range ImageNames {
		_, _ = Try(nil, "docker", "rmi", "-f", "chatscalable/"+name+":"+imageTag)
	}
}

// Secrets makes the NATS secrets of a deployment in a folder of the test,
// as `make secrets` does: a password per role and for the routes, and a test
// CA with a certificate for broker-1..3.
func Secrets(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	Run(t, nil, "bash", Root(t)+"/deployments/local/secrets.sh", dir, "--tls", "broker-1,broker-2,broker-3")
	return dir
}

// NoViolations fails the test if broker logs hold a permission violation:
// a client's role was refused what its program does.
func NoViolations(t testing.TB, logs string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "Violation") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 {
		t.Errorf("the brokers refused %d operations:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}
