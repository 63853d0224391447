package hoststest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", upstream)
	})
	t.Cleanup(p.Close)
	return p
}

// The proxy delays each direction by the delay, give or take the jitter,
// and keeps the bytes in order however the jitter falls.
func TestProxyDelaysBothWaysInOrder(t *testing.T) {
	t.Parallel()
	p := startProxy(t, echoServer(t))
	p.SetDelay(40*time.Millisecond, 10*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	start := time.Now()
	if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 60*time.Millisecond || rtt > 2*time.Second {
		t.Fatalf("round trip %s through a 40±10 ms proxy, want 60 ms or more (and not seconds)", rtt)
	}
	// Many small writes, each read apart so each gets its own jitter.
	const n = 200
	go func() {
		for i := range n {
			_, _ = fmt.Fprintf(c, "%d\n", i)
			time.Sleep(time.Millisecond) // pacing of the writes
		}
	}()
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != fmt.Sprintf("%d\n", i) {
			t.Fatalf("line %d: got %q: the proxy reordered bytes", i, line)
		}
	}

	// Without delay it forwards at once.
	p.SetDelay(0, 0)
	start = time.Now()
	if _, err := fmt.Fprintf(c, "pong\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	t.Logf("round trip without delay: %s", time.Since(start))
}

// Close ends the connections it forwards, and a failed upstream ends the
// client's connection rather than leaving it open.
func TestProxyCloseEndsConnections(t *testing.T) {
	t.Parallel()
	p := startProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "x\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	p.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read after Close: %v, want the connection closed", err)
	}

	dead := startProxy(t, "127.0.0.1:1") // nothing listens there
	c2, err := net.Dial("tcp", dead.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read through a proxy whose upstream refuses: %v, want the connection closed", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
