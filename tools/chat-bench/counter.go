package main

import "bytes"

// streamCounter counts the markers in the body of one HTTP response read
// as raw bytes, in blocks of any size. A marker split between two blocks
// is counted once: the counter carries the last len(marker)-1 bytes of
// the body over to the next block, as the goroutine subscriber's loop
// does. With chunked transfer encoding (a server writing an event stream
// through net/http without hijacking, as Centrifugo does) it strips the
// chunk framing first: a chunk boundary may fall anywhere, inside a
// marker too, with the chunk-size line between the marker's halves, so
// counting the raw bytes would miss that marker (or, in theory, count
// one a size line completes).
//
// Two of the markers searched ("\nevent: message\n", "\nid: ") never
// overlap, so counting each block and each seam separately counts each
// once: "\nid: " has no border (no proper prefix that is also a suffix),
// and "\nevent: message\n" only its line end, shared by two such lines
// in a row, which no stream writes (an event line is followed by the
// event's data).
type streamCounter struct {
	marker []byte
	carry  []byte // the body's last bytes, fewer than a marker
	seam   []byte // scratch: carry followed by the next block's start
	// n is how many markers have been counted; lines whether the body
	// has held a line end yet (the stream's first line has arrived).
	n     int64
	lines bool

	chunked bool
	state   chunkState
	left    int64 // data bytes left in the current chunk
	sizeErr bool  // a chunk-size line was not hexadecimal
}

type chunkState uint8

const (
	chunkSize    chunkState = iota // reading the hexadecimal size
	chunkExt                       // skipping a chunk extension up to the line end
	chunkData                      // inside a chunk's data
	chunkDataEnd                   // the CRLF after a chunk's data
	chunkTrailer                   // after the last chunk: trailer lines, ignored
)

func newStreamCounter(marker []byte, lineStart, chunked bool) *streamCounter {
	// A marker that starts a line (rooms, Mercure) is looked for after a
	// line end: searching for '\n', a few per event, finds candidates far
	// less often than searching for the marker's first letter in the text
	// ('e' of "event: message" comes back a dozen times per event), and
	// that search was a fifth of the load generator's CPU. The body is
	// taken as following a line end, so a marker at its very start counts.
	// A marker inside a line (Centrifugo's) is looked for as it is.
	m := marker
	if lineStart {
		m = append([]byte{'\n'}, marker...)
	}
	c := &streamCounter{marker: m, chunked: chunked,
		carry: make([]byte, 0, len(m)), seam: make([]byte, 0, 2*len(m))}
	if lineStart {
		c.carry = append(c.carry, '\n')
	}
	return c
}

// feed counts the markers in the next block of the response body, chunk
// framing included when the response is chunked, and returns how many it
// found in this block.
func (c *streamCounter) feed(b []byte) int64 {
	before := c.n
	if !c.chunked {
		c.body(b)
		return c.n - before
	}
	for len(b) > 0 {
		switch c.state {
		case chunkSize:
			i := 0
			for ; i < len(b); i++ {
				d := hexDigit(b[i])
				if d < 0 {
					break
				}
				c.left = c.left<<4 | int64(d)
			}
			b = b[i:]
			if len(b) > 0 {
				switch b[0] {
				case ';', '\r', ' ', '\t':
					c.state = chunkExt
				case '\n':
					c.state, b = c.afterSize(), b[1:]
				default:
					c.sizeErr, c.state = true, chunkExt
				}
			}
		case chunkExt:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return c.n - before
			}
			c.state, b = c.afterSize(), b[i+1:]
		case chunkData:
			k := int(min(int64(len(b)), c.left))
			c.body(b[:k])
			c.left -= int64(k)
			b = b[k:]
			if c.left == 0 {
				c.state = chunkDataEnd
			}
		case chunkDataEnd:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return c.n - before
			}
			c.state, b = chunkSize, b[i+1:]
		case chunkTrailer:
			return c.n - before
		}
	}
	return c.n - before
}

// afterSize is the state after a chunk-size line: its data, or the
// trailer after the last (zero-size) chunk.
func (c *streamCounter) afterSize() chunkState {
	if c.left == 0 {
		return chunkTrailer
	}
	return chunkData
}

func hexDigit(b byte) int {
	switch {
	case b >= '0' && b <= '9':
		return int(b - '0')
	case b >= 'a' && b <= 'f':
		return int(b-'a') + 10
	case b >= 'A' && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}

// body counts the markers in b, a piece of the body (chunk framing
// removed), and those across the seam with the carried bytes before it.
func (c *streamCounter) body(b []byte) {
	if len(b) == 0 {
		return
	}
	if !c.lines && bytes.IndexByte(b, '\n') >= 0 {
		c.lines = true
	}
	m := len(c.marker)
	if len(c.carry) > 0 {
		// Every marker found here crosses the seam: the carry and the
		// head of b are each shorter than a marker.
		c.seam = append(append(c.seam[:0], c.carry...), b[:min(len(b), m-1)]...)
		c.n += int64(bytes.Count(c.seam, c.marker))
	}
	c.n += int64(bytes.Count(b, c.marker))
	// Carry the body's last m-1 bytes: those of b, with the carry before
	// them when b is shorter. The searched marker starts with a line end
	// and holds no other but its last byte, so bytes before the last line
	// end cannot begin one and are dropped.
	if len(b) >= m-1 {
		c.carry = append(c.carry[:0], b[len(b)-(m-1):]...)
	} else {
		c.seam = append(append(c.seam[:0], c.carry...), b...)
		c.carry = append(c.carry[:0], c.seam[max(0, len(c.seam)-(m-1)):]...)
	}
	if i := bytes.LastIndexByte(c.carry, '\n'); i > 0 {
		c.carry = append(c.carry[:0], c.carry[i:]...)
	}
}
