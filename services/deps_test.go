package services_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The chat services are clients of the bus: their commands must not link
// the NATS server, which lives apart in broker/node.
func TestServiceCommandsDoNotLinkTheNATSServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/chat-presence", "./cmd/chat-rooms").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/nats-io/nats-server/") {
			t.Fatalf("a service command links %s", pkg)
		}
	}
}
