// Package sse writes Server-Sent Events frames.
package sse

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetHeaders sets the response headers of an event stream.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
}

// AppendRetry appends a retry field telling the client how long to wait
// before it reconnects.
func AppendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// AppendComment appends a comment line, such as a heartbeat.
func AppendComment(b []byte, text string) []byte {
	b = append(b, ": "...)
	b = append(b, clean(text)...)
	return append(b, "\n\n"...)
}

// AppendEvent appends one event. CR, LF and NUL are removed from id and
// event so no field can be injected; data is split into one data line per
// line of text.
func AppendEvent(b []byte, id, event string, data []byte) []byte {
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, clean(id)...)
		b = append(b, '\n')
	}
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, clean(event)...)
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

func clean(s string) string {
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
