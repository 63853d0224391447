// Server-Sent Events framing.

package delivery

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// setSSEHeaders sets the response headers of an event stream (a
// Cache-Control the caller set is kept).
func setSSEHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
}

// appendRetry appends a retry field telling the client how long to wait
// before it reconnects.
func appendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// appendComment appends a comment line, such as a heartbeat.
func appendComment(b []byte, text string) []byte {
	b = append(b, ": "...)
	b = append(b, cleanField(text)...)
	return append(b, "\n\n"...)
}

// appendEvent appends one event. CR, LF and NUL are removed from id and
// event so no field can be injected; data is split into one data line per
// line of text.
func appendEvent(b []byte, id, event string, data []byte) []byte {
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, cleanField(id)...)
		b = append(b, '\n')
	}
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, cleanField(event)...)
		b = append(b, '\n')
	}
	for {
		line := data
		i := bytes.IndexAny(data, "\r\n")
		if i >= 0 {
			line = data[:i]
		}
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
		if i < 0 {
			break
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(b, '\n')
}

func cleanField(s string) string {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}
