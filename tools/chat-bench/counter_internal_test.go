package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunk encodes body with HTTP/1.1 chunked framing, in chunks of the
// given sizes (cycled), with an extension on some size lines, and the
// last chunk and an empty trailer.
func chunk(body []byte, sizes []int) []byte {
	var b bytes.Buffer
	for i := 0; len(body) > 0; i++ {
		k := min(sizes[i%len(sizes)], len(body))
		if i%3 == 2 {
			fmt.Fprintf(&b, "%X;ext=1\r\n", k)
		} else {
			fmt.Fprintf(&b, "%x\r\n", k)
		}
		b.Write(body[:k])
		b.WriteString("\r\n")
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// feedIn feeds raw to c in blocks of the given sizes (cycled) and returns
// the total counted.
func feedIn(c *streamCounter, raw []byte, sizes []int) int64 {
	var n int64
	for i := 0; len(raw) > 0; i++ {
		k := min(sizes[i%len(sizes)], len(raw))
		n += c.feed(raw[:k])
		raw = raw[k:]
	}
	if n != c.n {
		panic("feed's returns do not add up")
	}
	return n
}

// TestStreamCounterCountsEachMarkerOnce splits streams of room events and
// of Mercure updates at every size of block and of chunk, so markers fall
// across reads, across chunk boundaries and across chunk-size lines, and
// checks every marker is counted exactly once.
func TestStreamCounterCountsEachMarkerOnce(t *testing.T) {
	for _, tc := range []struct {
		marker, event string
		inLine        bool
	}{
		// Text that looks like most of a marker, and a data line holding
		// one not at a line start, must not count.
		{"event: message\n", "id: 7\nevent: message\ndata: {\"text\":\"event: messag event: message\"}\n\n", false},
		{"id: ", "id: urn:uuid:1\ndata: {\"ts\":\"2026\",\"text\":\"xid\"}\n\n", false},
		// Centrifugo's marker is inside the data line.
		{centrifugoMarker, "data: {\"channel\":\"live\",\"pub\":{\"data\":{\"text\":\"pub\"}}}\n\n", true},
	} {
		const events = 40
		body := []byte("retry: 2000\n\n" + strings.Repeat(tc.event, events))
		want := int64(bytes.Count(body, []byte(tc.marker)))
		for block := 1; block <= 2*len(tc.event); block++ {
			c := newStreamCounter([]byte(tc.marker), !tc.inLine, false)
			if got := feedIn(c, body, []int{block}); got != want || !c.lines {
				t.Fatalf("%q unchunked in blocks of %d: counted %d, want %d (lines %v)", tc.marker, block, got, want, c.lines)
			}
			for size := 1; size <= len(tc.event)+1; size += 1 + size/4 {
				raw := chunk(body, []int{size, size + 3})
				c := newStreamCounter([]byte(tc.marker), !tc.inLine, true)
				if got := feedIn(c, raw, []int{block, block + 5}); got != want || c.sizeErr {
					t.Fatalf("%q in chunks of %d, blocks of %d: counted %d, want %d (size error %v)", tc.marker, size, block, got, want, c.sizeErr)
				}
			}
		}
		// Random cuts of both.
		r := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			sizes := []int{1 + r.IntN(40), 1 + r.IntN(400), 1 + r.IntN(7)}
			c := newStreamCounter([]byte(tc.marker), !tc.inLine, true)
			if got := feedIn(c, chunk(body, sizes), []int{1 + r.IntN(50), 1 + r.IntN(3)}); got != want {
				t.Fatalf("%q random cuts %v: counted %d, want %d", tc.marker, sizes, got, want)
			}
		}
	}
}

// TestStreamCounterWithoutFramingWouldMiss shows why chunk framing is
// stripped: a chunk boundary inside a marker puts a size line between its
// halves, and the raw bytes no longer hold it.
func TestStreamCounterWithoutFramingWouldMiss(t *testing.T) {
	body := []byte("event: message\ndata: x\n\n")
	raw := chunk(body, []int{5})
	if bytes.Count(raw, []byte("event: message\n")) != 0 {
		t.Fatalf("the framed bytes still hold the marker: %q", raw)
	}
	if got := newStreamCounter([]byte("event: message\n"), true, true).feed(raw); got != 1 {
		t.Errorf("counted %d, want 1", got)
	}
}
