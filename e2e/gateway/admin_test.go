package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/gateway"
)

// With an admin listener, metrics and the node's details are served there
// only; the public listener names the node and nothing more.
func TestAdminListener(t *testing.T) {
	g := startGateway(t, "gw-admin", "", func(o *gateway.Options) { o.AdminAddr = "127.0.0.1:0" })
	if g.AdminURL() == "" {
		t.Fatal("no admin URL")
	}
	if r := do(t, http.MethodGet, g.URL()+"/metrics", "", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("public /metrics: %d", r.status)
	}
	if r := do(t, http.MethodGet, g.URL()+"/node", "", nil, nil); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"node":"gw-admin"}` {
		t.Fatalf("public /node: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.AdminURL()+"/metrics", "", nil, nil); r.status != 200 || !strings.Contains(string(r.body), "chat_sse_connections") {
		t.Fatalf("admin /metrics: %d", r.status)
	}
	if r := do(t, http.MethodGet, g.AdminURL()+"/node", "", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"nats":"embedded"`) {
		t.Fatalf("admin /node: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.AdminURL()+"/readyz", "", nil, nil); r.status != 200 {
		t.Fatalf("admin /readyz: %d %s", r.status, r.body)
	}
}
