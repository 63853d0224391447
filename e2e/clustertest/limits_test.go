package clustertest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
)

// listenFrom opens an SSE request to the gateway from the local address
// ip, with the given receive buffer (0: the default), and returns the
// connection and the response's status code.
func listenFrom(gw *clustertest.Gateway, ip string, rcvbuf int, room string) (net.Conn, int, error) {
	u, err := url.Parse(gw.URL)
	if err != nil {
		return nil, 0, err
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return errors.Join(err, serr)
		}
	}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /rooms/%s/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", room, u.Host)
	line, err := bufio.NewReader(io.LimitReader(conn, 64)).ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Time{})
	parts := strings.Fields(line)
	if len(parts) < 2 {
		conn.Close()
		return nil, 0, fmt.Errorf("status line %q", line)
	}
	code, _ := strconv.Atoi(parts[1])
	return conn, code, nil
}

// metric reads one sample from a gateway's /metrics.
func metric(t *testing.T, gw *clustertest.Gateway, sample string) float64 {
	t.Helper()
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// A flood of 10,000 connections from one address is refused beyond
// --max-conns-per-ip with 503, while another address still connects.
func TestConnectionFloodFromOneAddressIsRefused(t *testing.T) {
	t.Parallel()
	const perIP, flood = 100, 10000
	gw := clustertest.StartGateway(t, "gw-flood", "--data-dir", t.TempDir(), "--nats-listen", "off",
		"--max-conns-per-ip", strconv.Itoa(perIP))
	gw.WaitReady(t, wait)

	var (
		mu       sync.Mutex
		held     []net.Conn
		accepted atomic.Int64
		refused  atomic.Int64
		failed   atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= flood && time.Now().Before(deadline) {
				conn, code, err := listenFrom(gw, "127.0.0.1", 0, "flood")
				switch {
				case err != nil:
					failed.Add(1)
				case code == http.StatusOK:
					accepted.Add(1)
					mu.Lock()
					held = append(held, conn) // keep the place taken
					mu.Unlock()
				case code == http.StatusServiceUnavailable:
					refused.Add(1)
					conn.Close()
				default:
					failed.Add(1)
					conn.Close()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("flood: %d accepted, %d refused, %d failed", accepted.Load(), refused.Load(), failed.Load())
	if accepted.Load() != perIP {
		t.Fatalf("%d listeners from one address were accepted, want %d", accepted.Load(), perIP)
	}
	if accepted.Load()+refused.Load() != flood {
		t.Fatalf("%d of %d connections got an answer (%d failed)", accepted.Load()+refused.Load(), flood, failed.Load())
	}
	conn, code, err := listenFrom(gw, "127.0.0.2", 0, "flood")
	if err != nil || code != http.StatusOK {
		t.Fatalf("another address during the flood: %d, %v", code, err)
	}
	conn.Close()
	// (A probe from the flooded address would be answered, but counted
	// as one more refusal.)
	if v := metric(t, gw, `chat_http_connections_refused_total{reason="max_conns_per_ip"}`); v != flood-perIP+1 {
		t.Fatalf("refusals counted: %v, want %d", v, flood-perIP)
	}
}

// rss returns the resident memory of a process, in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// publishText publishes text as a JSON message to room.
func publishText(t *testing.T, gw *clustertest.Gateway, room, text string) {
	t.Helper()
	if err := postText(gw, room, text); err != nil {
		t.Fatal(err)
	}
}

// postText publishes text to room, from any goroutine.
func postText(gw *clustertest.Gateway, room, text string) error {
	b, _ := json.Marshal(map[string]string{"user": "flood", "text": text})
	resp, err := http.Post(gw.URL+"/rooms/"+room+"/messages", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("publish: %d", resp.StatusCode)
	}
	return nil
}

// trickle reads one byte every every until stop is closed or the read
// fails.
func trickle(conn net.Conn, every time.Duration, stop <-chan struct{}) {
	one := make([]byte, 1)
	for {
		select {
		case <-stop:
			return
		case <-time.After(every):
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := conn.Read(one); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// Slow readers (a 4 KB receive buffer, one byte every 2 s) are ended:
// by their byte budget when a flood would outgrow it, keeping the
// gateway's memory bounded, and by the write timeout when it would not,
// however long they keep trickling.
func TestSlowReadersAreEndedAndMemoryStaysBounded(t *testing.T) {
	t.Parallel()
	const readers, budget = 40, 1 << 20
	// Long enough that the flood, published by 8 clients at once, goes
	// over every reader's budget well before it: with 3 s and one
	// publisher a loaded machine once ended them all by the timeout.
	writeTimeout := 10 * time.Second
	gw := clustertest.StartGateway(t, "gw-slowread", "--data-dir", t.TempDir(), "--nats-listen", "off",
		"--client-buffer", strconv.Itoa(budget), "--write-timeout", writeTimeout.String())
	gw.WaitReady(t, wait)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	open := func(room string) {
		for range readers {
			conn, code, err := listenFrom(gw, "127.0.0.1", 4096, room)
			if err != nil || code != http.StatusOK {
				t.Fatalf("listen: %d %v", code, err)
			}
			t.Cleanup(func() { conn.Close() })
			go trickle(conn, 2*time.Second, stop)
		}
	}
	connections := func() float64 { return metric(t, gw, "chat_sse_connections") }
	waitConnections := func(want float64, within time.Duration) time.Duration {
		start := time.Now()
		nodetest.CheckFor(t, within, 50*time.Millisecond, func() error {
			if n := connections(); n != want {
				return fmt.Errorf("%v SSE connections, want %v", n, want)
			}
			return nil
		})
		return time.Since(start)
	}
	text := strings.Repeat("x", 4000)

	// A flood: 2,000 messages of 4 KB, 8 MB per reader, 320 MB in all
	// if nothing bounded them.
	open("flood")
	before := rss(t, gw.Proc.Cmd.Process.Pid)
	peak := before
	const publishers = 8
	failed := make(chan error, publishers)
	var done atomic.Int64
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range 2000 / publishers {
				if err := postText(gw, "flood", text); err != nil {
					failed <- err
					return
				}
				done.Add(1)
			}
		})
	}
	for sampled := int64(0); ; {
		if n := done.Load(); n >= sampled+100 || n == 2000 {
			sampled = n
			peak = max(peak, rss(t, gw.Proc.Cmd.Process.Pid))
		}
		if done.Load() == 2000 || len(failed) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(failed)
	if err := <-failed; err != nil {
		t.Fatalf("flood: %v", err)
	}
	waitConnections(0, wait)
	peak = max(peak, rss(t, gw.Proc.Cmd.Process.Pid))
	growth := peak - before
	t.Logf("gateway RSS %d MB before the flood, peak %d MB", before>>20, peak>>20)
	if limit := int64(readers*budget + 64<<20); growth > limit {
		t.Fatalf("gateway RSS grew by %d MB for %d stalled readers with a %d KB budget each", growth>>20, readers, budget>>10)
	}
	if v := metric(t, gw, "chat_slow_client_disconnects_total"); v != readers {
		t.Fatalf("%v readers cut off by their budget, want %d", v, readers)
	}

	// Under the budget: 600 KB each, more than the sockets hold; only
	// the write timeout ends them, while they go on trickling.
	open("trickle")
	for range 150 {
		publishText(t, gw, "trickle", text)
	}
	// They keep reading a byte every 2 s, which used to keep them alive
	// for ever; now the write timeout ends them. How soon after the last
	// message depends on when their sockets filled and on the machine's
	// load, so the bound is generous and the time is logged.
	took := waitConnections(0, writeTimeout+wait)
	t.Logf("trickling readers ended %s after the last message (write timeout %s)", took.Round(time.Millisecond), writeTimeout)
}
