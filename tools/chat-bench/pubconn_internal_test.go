package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPubConnsKeepAliveAndClose publishes through one goroutine's
// connections to a real HTTP server: requests share one connection while
// the server keeps it, a "Connection: close" answer makes the next request
// dial again, and a connection the server dropped fails one request, not
// the next.
func TestPubConnsKeepAliveAndClose(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch string(body) {
		case "close":
			w.Header().Set("Connection", "close")
		case "hijack":
			c, _, _ := w.(http.Hijacker).Hijack()
			_ = c.Close()
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"seq":1,"echo":"`+string(body)+`"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := pubConns{}
	defer cs.close()
	send := func(text string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/rooms/x/messages", strings.NewReader(text))
		status, body, err := cs.roundTrip(ctx, req)
		return status, string(body), err
	}
	for i := range 3 {
		status, body, err := send("a")
		if err != nil || status != http.StatusCreated || body != `{"seq":1,"echo":"a"}` {
			t.Fatalf("publish %d: %d %q %v", i, status, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 publishes opened %d connections, want 1", n)
	}
	if status, _, err := send("close"); err != nil || status != http.StatusCreated {
		t.Fatalf("publish answered with Connection: close: %d %v", status, err)
	}
	if len(cs) != 0 {
		t.Fatalf("the closed connection is still kept")
	}
	if _, _, err := send("hijack"); err == nil {
		t.Fatal("a publish whose connection the server dropped did not fail")
	}
	if status, body, err := send("b"); err != nil || status != http.StatusCreated || body != `{"seq":1,"echo":"b"}` {
		t.Fatalf("publish after a dropped connection: %d %q %v", status, body, err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("opened %d connections, want 3 (first, after close, after the drop)", n)
	}
}

// TestEndedAtTheDeadline: a context past its deadline counts as ended even
// before its own timer has cancelled it.
func TestEndedAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if !ended(ctx) {
		t.Fatal("a context past its deadline is not ended")
	}
	live, stop := context.WithTimeout(context.Background(), time.Hour)
	if ended(live) {
		t.Fatal("a live context is ended")
	}
	stop()
	if !ended(live) {
		t.Fatal("a cancelled context is not ended")
	}
}
