package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/golang-jwt/jwt/v5"
)

type result struct {
	Mode          string
	Mercure       bool
	Published     int64
	Delivered     int64
	Expected      int64
	Lost          int64
	Errors        int64
	Conns         int
	DeliveriesSec float64 `json:"deliveries_per_sec"`
	PublishesSec  float64 `json:"publishes_per_sec"`
	P50ms         float64 `json:"p50_ms"`
	KBPerConn     float64 `json:"kb_per_conn"`
	CPUPerOpUS    float64 `json:"cpu_us_per_op"`
	PeakRSSKB     int64   `json:"peak_rss_kb"`
}

// TestEveryModeAgainstATwoGatewayCluster runs each mode briefly against two
// gateways sharing a NATS node, through rooms and through the Mercure hub,
// and checks nothing is lost at a low rate.
func TestEveryModeAgainstATwoGatewayCluster(t *testing.T) {
	bin := proctest.Build(t, ".")
	node := nodetest.StartNode(t)
	secret := filepath.Join(t.TempDir(), "mercure.secret")
	if err := os.WriteFile(secret, []byte("a Mercure secret of at least 32 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range 2 {
		g, err := gateway.Start(context.Background(), gateway.Options{
			HTTPAddr: "127.0.0.1:0", NodeName: fmt.Sprintf("gw-%d", i+1), NATSURL: node.ClientURL(),
			Mercure: gateway.MercureOptions{Enabled: true, Keys: gateway.AuthOptions{SecretFile: secret}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g.Shutdown(ctx)
		})
		nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, g.Ready)
		urls = append(urls, g.URL())
	}
	all := strings.Join(urls, ",")
	runBench := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			t.Fatalf("chat-bench %v: %v\n%s", args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var r result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatalf("chat-bench %v: last line is not JSON: %v\n%s", args, err, out)
		}
		if len(lines) < 3 {
			t.Errorf("chat-bench %v printed no table:\n%s", args, out)
		}
		return r
	}

	r := runBench("fanout", "--urls", all, "--subs", "20", "--rate", "50", "--duration", "1s", "--pid", strconv.Itoa(os.Getpid()))
	if r.Published != 50 || r.Expected != 1000 || r.Delivered != r.Expected || r.Lost != 0 || r.Errors != 0 || r.P50ms <= 0 || r.CPUPerOpUS <= 0 || r.PeakRSSKB <= 0 {
		t.Errorf("fanout: %+v", r)
	}
	// Many rooms: 20 subscribers over 5 rooms, each message to its room's 4.
	r = runBench("fanout", "--urls", all, "--subs", "20", "--rooms", "5", "--rate", "50", "--duration", "1s")
	if r.Published != 50 || r.Expected != 200 || r.Delivered != r.Expected || r.Lost != 0 || r.Errors != 0 || r.P50ms <= 0 {
		t.Errorf("fanout --rooms 5: %+v", r)
	}
	// A sweep of two steps, read back from its JSON lines, the plot's input.
	jsonl := filepath.Join(t.TempDir(), "sweep.jsonl")
	runBench("sweep", "--urls", all, "--subs", "20", "--steps", "1000,2000", "--step-duration", "1s",
		"--system", "under-test", "--jsonl", jsonl, "--pid", strconv.Itoa(os.Getpid()))
	b, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	steps := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, line := range steps {
		var st map[string]any
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatalf("sweep step %d: %v: %s", i, err, line)
		}
		for _, f := range []string{"target_deliveries_per_sec", "deliveries_per_sec", "p50_ms", "p99_ms", "lost", "sustained", "reason", "server_cpu_pct", "server_rss_kb", "subscribers", "rate"} {
			if _, ok := st[f]; !ok {
				t.Errorf("sweep step %d has no %q: %s", i, f, line)
			}
		}
		if st["system"] != "under-test" || st["mode"] != "sweep" || st["lost"] != 0.0 || st["sustained"] != true ||
			st["rate"] != float64(50*(i+1)) || st["server_rss_kb"].(float64) <= 0 {
			t.Errorf("sweep step %d: %s", i, line)
		}
	}
	if len(steps) != 2 {
		t.Errorf("sweep wrote %d steps, want 2", len(steps))
	}
	// Over 5 rooms a message reaches its room's 4 listeners: 200
	// deliveries/s are 50 msg/s, and each is expected 4 times.
	rooms := filepath.Join(t.TempDir(), "rooms.jsonl")
	runBench("sweep", "--urls", all, "--subs", "20", "--rooms", "5", "--steps", "200", "--step-duration", "1s",
		"--system", "rooms", "--jsonl", rooms)
	if b, err = os.ReadFile(rooms); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("sweep over rooms: %v: %s", err, b)
	}
	if st["rate"] != 50.0 || st["expected"] != 4*st["published"].(float64) || st["lost"] != 0.0 || st["sustained"] != true {
		t.Errorf("sweep over 5 rooms: %s", b)
	}
	r = runBench("latency", "--urls", all, "--duration", "1s")
	if r.Published != 200 || r.Lost != 0 || r.Delivered != 200 || r.P50ms <= 0 {
		t.Errorf("latency: %+v", r)
	}
	// Latency from the publisher's clock, carried in the text.
	r = runBench("latency", "--urls", all, "--duration", "1s", "--client-ts")
	if r.Published != 200 || r.Lost != 0 || r.Delivered != 200 || r.P50ms <= 0 {
		t.Errorf("latency --client-ts: %+v", r)
	}
	// The test process is the gateway here: its CPU time is read.
	r = runBench("publish", "--urls", urls[0], "--concurrency", "4", "--duration", "1s", "--pid", strconv.Itoa(os.Getpid()))
	if r.Published == 0 || r.PublishesSec <= 0 || r.Errors != 0 || r.CPUPerOpUS <= 0 {
		t.Errorf("publish: %+v", r)
	}
	r = runBench("idle", "--urls", all, "--conns", "100", "--workers", "2", "--pid", strconv.Itoa(os.Getpid()), "--settle", "100ms")
	if r.Conns != 100 || r.Errors != 0 || r.KBPerConn == 0 {
		t.Errorf("idle: %+v", r)
	}

	// The same through the Mercure hub: a token signed from the secret,
	// or one read from a file; subscribers need it (no --mercure-anonymous).
	mercure := []string{"--mercure", "--mercure-secret-file", secret}
	r = runBench(append([]string{"fanout", "--urls", all, "--subs", "20", "--rate", "50", "--duration", "1s"}, mercure...)...)
	if !r.Mercure || r.Published != 50 || r.Expected != 1000 || r.Delivered != r.Expected || r.Lost != 0 || r.Errors != 0 || r.P50ms <= 0 {
		t.Errorf("fanout --mercure: %+v", r)
	}
	// Subscribers of a URI template receive the topics it matches.
	r = runBench(append([]string{"fanout", "--urls", all, "--subs", "4", "--rate", "50", "--duration", "1s",
		"--mercure-topic", "https://example.com/books/1", "--mercure-selector", "https://example.com/books/{id}"}, mercure...)...)
	if r.Published != 50 || r.Delivered != 200 || r.Lost != 0 || r.Errors != 0 {
		t.Errorf("fanout --mercure with a template selector: %+v", r)
	}
	token := filepath.Join(t.TempDir(), "mercure.token")
	mint := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": map[string][]string{"publish": {"*"}}})
	signed, err := mint.SignedString([]byte("a Mercure secret of at least 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(signed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBench("latency", "--urls", all, "--duration", "1s", "--mercure", "--mercure-token-file", token)
	if r.Published != 200 || r.Lost != 0 || r.Delivered != 200 || r.P50ms <= 0 {
		t.Errorf("latency --mercure: %+v", r)
	}
	r = runBench(append([]string{"publish", "--urls", urls[0], "--concurrency", "4", "--duration", "1s"}, mercure...)...)
	if r.Published == 0 || r.Errors != 0 {
		t.Errorf("publish --mercure: %+v", r)
	}
	r = runBench(append([]string{"idle", "--urls", all, "--conns", "100", "--workers", "2", "--settle", "100ms"}, mercure...)...)
	if r.Conns != 100 || r.Errors != 0 {
		t.Errorf("idle --mercure: %+v", r)
	}
}
