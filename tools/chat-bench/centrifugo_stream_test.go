package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// replay serves the bytes of a recorded HTTP response, headers and
// chunked body as Centrifugo wrote them, to each connection, a few bytes
// per write so that markers and chunk headers fall across reads, then
// closes it.
func replay(t *testing.T, recorded []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				for b := recorded; len(b) > 0; b = b[min(5, len(b)):] {
					if _, err := c.Write(b[:min(5, len(b))]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestMarkerCountsRecordedUniSSE counts the publications of a uni_sse
// stream recorded from Centrifugo v6.9.1 (testdata: a connection
// subscribed to the channel "pub", two publications, then a ping): the
// connect push lists the channel as "pub":{} and must not count, nor
// must the ping (data: {}).
func TestMarkerCountsRecordedUniSSE(t *testing.T) {
	recorded, err := os.ReadFile("testdata/centrifugo-uni-sse.http")
	if err != nil {
		t.Fatal(err)
	}
	// A reader that counts the marker in every byte after the headers,
	// the connect push included, finds each publication once.
	if n := bytes.Count(recorded, []byte(centrifugoMarker)); n != 2 {
		t.Errorf("the marker occurs %d times in the recorded response, want 2", n)
	}
	base := replay(t, recorded)
	ep := centrifugoEndpoint("pub", "x", "token", "key")
	for _, probe := range []bool{false, true} {
		s := &subscriber{}
		opened := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.subscribe(ctx, ep, base, probe, func(err error) { opened <- err })
		cancel()
		if err := <-opened; err != nil {
			t.Fatalf("probe %v: %v", probe, err)
		}
		if n := s.count.Load(); n != 2 {
			t.Errorf("probe %v: counted %d publications, want 2", probe, n)
		}
		if probe && len(s.lat) != 2 {
			t.Errorf("the probe read %d stamps, want 2", len(s.lat))
		}
	}
}
