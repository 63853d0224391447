//go:build centrifugo

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// centrifugoEnv names a Centrifugo v6 binary (make tools/bin/centrifugo)
// to run TestAgainstARealCentrifugo with. The test is built only with the
// centrifugo build tag (go test -tags centrifugo), because the binary
// takes minutes to build and is not part of the workspace.
const centrifugoEnv = "CHAT_BENCH_CENTRIFUGO"

// startCentrifugo runs the binary of CHAT_BENCH_CENTRIFUGO on a free
// loopback port with the config bench-peers.sh writes (memory engine, no
// history, uni_sse on) and returns its URL, its pid and the config's path.
func startCentrifugo(t *testing.T) (base string, pid int, config string) {
	t.Helper()
	bin := os.Getenv(centrifugoEnv)
	if bin == "" {
		t.Fatalf("set %s to a Centrifugo v6 binary (make tools/bin/centrifugo) to run the tests of the centrifugo build tag", centrifugoEnv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	config = filepath.Join(t.TempDir(), "centrifugo.json")
	conf := fmt.Sprintf(`{"log":{"level":"error"},"http_server":{"address":"127.0.0.1","port":%d},"engine":{"type":"memory"},
"client":{"token":{"hmac_secret_key":%q}},"http_api":{"key":"the-api-key"},"uni_sse":{"enabled":true},"health":{"enabled":true},"usage_stats":{"disabled":true}}`, port, testSecret)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", config) //nolint:gosec // the binary the operator names
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("centrifugo's output:\n%s", logs.String())
		}
	})
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	nodetest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(base + "/health") //nolint:noctx // a probe with the client's default
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %d", resp.StatusCode)
		}
		return nil
	})
	return base, cmd.Process.Pid, config
}

// TestAgainstARealCentrifugo checks the marker against a real uni_sse
// stream (once per publication, never in the connect push), a refused
// publish, and every mode of chat-bench --centrifugo.
func TestAgainstARealCentrifugo(t *testing.T) {
	base, pid, config := startCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys, err := readCentrifugoKeys(config, "", "")
	if err != nil {
		t.Fatal(err)
	}
	token, err := centrifugoToken(keys.secret, "bench", []string{"live"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ep := centrifugoEndpoint("live", "hello", token, keys.apiKey)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ep.eventsURL(base), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	r := bufio.NewReader(resp.Body)
	var first string
	for !strings.Contains(first, centrifugoReady) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("before the connect push %q: %v", first, err)
		}
		first += line
	}
	if strings.Contains(first, centrifugoMarker) {
		t.Fatalf("the stream up to the connect push %q holds the marker", first)
	}
	p := &publisher{urls: []string{base}, ep: ep}
	const n = 3
	for i := range n {
		p.publishOne(ctx, pubConns{}, int64(i))
	}
	if p.stored.Load() != n || p.failures.Load() != 0 {
		t.Fatalf("published %d, failed %d", p.stored.Load(), p.failures.Load())
	}
	var stream bytes.Buffer
	stream.WriteString(first)
	for bytes.Count(stream.Bytes(), []byte(centrifugoMarker)) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", stream.String(), err)
		}
		stream.WriteString(line)
	}
	if got := bytes.Count(stream.Bytes(), []byte(`"ts":"`)); got != n {
		t.Errorf("stream %q: %d stamps, want %d", stream.String(), got, n)
	}
	t.Logf("uni_sse stream: %q", stream.String())

	// A refused command: 200 with an error object, counted as a failure.
	bad := &publisher{urls: []string{base}, ep: centrifugoEndpoint("ns:none", "x", token, keys.apiKey)}
	bad.publishOne(ctx, pubConns{}, 0)
	wrongKey := &publisher{urls: []string{base}, ep: centrifugoEndpoint("live", "x", token, "not-the-key")}
	wrongKey.publishOne(ctx, pubConns{}, 0)
	if bad.stored.Load() != 0 || bad.failures.Load() != 1 || wrongKey.stored.Load() != 0 || wrongKey.failures.Load() != 1 {
		t.Errorf("unknown namespace: stored %d; wrong API key: stored %d", bad.stored.Load(), wrongKey.stored.Load())
	}

	bin := proctest.Build(t, ".")
	runBench := func(args ...string) Result {
		t.Helper()
		args = append(args, "--urls", base, "--centrifugo", "--centrifugo-config", config, "--pid", strconv.Itoa(pid))
		out, err := exec.CommandContext(ctx, bin, args...).Output() //nolint:gosec // the binary just built
		if err != nil {
			t.Fatalf("chat-bench %v: %v\n%s", args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res Result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("chat-bench %v: %v\n%s", args, err, out)
		}
		return res
	}
	res := runBench("fanout", "--subs", "20", "--rate", "50", "--duration", "1s")
	if !res.Centrifugo || res.Published != 50 || res.Delivered != 1000 || res.Lost != 0 || res.Errors != 0 || res.P50ms <= 0 || res.CPUPerOpUS <= 0 {
		t.Errorf("fanout: %+v", res)
	}
	res = runBench("fanout", "--subs", "20", "--rooms", "5", "--rate", "50", "--duration", "1s")
	if res.Published != 50 || res.Expected != 200 || res.Delivered != 200 || res.Lost != 0 || res.Errors != 0 {
		t.Errorf("fanout --rooms 5: %+v", res)
	}
	res = runBench("latency", "--duration", "1s")
	if res.Published != 200 || res.Delivered != 200 || res.Lost != 0 || res.P50ms <= 0 {
		t.Errorf("latency: %+v", res)
	}
	res = runBench("publish", "--concurrency", "4", "--duration", "1s")
	if res.Published == 0 || res.Errors != 0 || res.CPUPerOpUS <= 0 {
		t.Errorf("publish: %+v", res)
	}
	res = runBench("idle", "--conns", "100", "--workers", "2", "--settle", "200ms")
	if res.Conns != 100 || res.Errors != 0 || res.RSSAfterKB == 0 {
		t.Errorf("idle: %+v", res)
	}
}
