//go:build linux

package delivery

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A stream handed over while the loop is stopping (the gateway shuts down
// between the stream's replay and its hand-over) still gets its goodbye.
func TestHandOverToAStoppedLoopSaysGoodbye(t *testing.T) {
	loop, err := NewLoop(LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loop.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(Listener{Queue: 8})
	c.end(ErrClosed) // the hub closed: the gateway is stopping
	lw := &loopWriter{st: loop.NewStream(), timeout: time.Second, conn: server}
	s := lw.session()
	s.client, s.goodbye = c, []byte("retry: 250\n\n")
	ended := make(chan error, 1)
	lw.live(s, func(err error) { ended <- err })
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the stream ended without a reason")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "retry: 250") {
		t.Fatalf("read %q, %v; want the goodbye", line, err)
	}
}
