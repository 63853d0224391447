package delivery

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name      string
		id, event string
		data      string
		want      string
	}{
		{"simple", "1-2-3", "message", `{"text":"hi"}`, "id: 1-2-3\nevent: message\ndata: {\"text\":\"hi\"}\n\n"},
		{"no id", "", "message", "x", "event: message\ndata: x\n\n"},
		{"no event", "7", "", "x", "id: 7\ndata: x\n\n"},
		{"data only", "", "", "x", "data: x\n\n"},
		{"empty data", "", "", "", "data: \n\n"},
		{"LF", "", "", "a\nb", "data: a\ndata: b\n\n"},
		{"CRLF", "", "", "a\r\nb", "data: a\ndata: b\n\n"},
		{"CR", "", "", "a\rb", "data: a\ndata: b\n\n"},
		{"mixed breaks", "", "", "a\nb\r\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"blank lines kept", "", "", "a\n\nb", "data: a\ndata: \ndata: b\n\n"},
		{"CR CR is two breaks", "", "", "a\r\rb", "data: a\ndata: \ndata: b\n\n"},
		{"LF CR is two breaks", "", "", "a\n\rb", "data: a\ndata: \ndata: b\n\n"},
		{"trailing LF", "", "", "a\n", "data: a\ndata: \n\n"},
		{"trailing CRLF", "", "", "a\r\n", "data: a\ndata: \n\n"},
		{"injected data field", "", "", "a\ndata: b\nid: evil", "data: a\ndata: data: b\ndata: id: evil\n\n"},
		{"id with LF", "1\nevent: evil", "message", "x", "id: 1event: evil\nevent: message\ndata: x\n\n"},
		{"id with CR", "1\rretry: 1", "", "x", "id: 1retry: 1\ndata: x\n\n"},
		{"id with CRLF and NUL", "1\r\n\x002", "", "x", "id: 12\ndata: x\n\n"},
		{"event with CRLF", "", "message\r\nid: evil", "x", "event: messageid: evil\ndata: x\n\n"},
		{"event with NUL", "", "mes\x00sage", "x", "event: message\ndata: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendEvent(nil, tt.id, tt.event, []byte(tt.data)))
			if got != tt.want {
				t.Fatalf("AppendEvent(%q, %q, %q) =\n  %q\nwant\n  %q", tt.id, tt.event, tt.data, got, tt.want)
			}
		})
	}
}

func TestAppendEventAppends(t *testing.T) {
	buf := []byte("prefix\n\n")
	got := string(appendEvent(buf, "1", "message", []byte("x")))
	if want := "prefix\n\nid: 1\nevent: message\ndata: x\n\n"; got != want {
		t.Fatalf("AppendEvent onto a buffer = %q, want %q", got, want)
	}
}

func TestAppendRetry(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{2 * time.Second, "retry: 2000\n\n"},
		{1500 * time.Millisecond, "retry: 1500\n\n"},
		{0, "retry: 0\n\n"},
		{1500 * time.Microsecond, "retry: 1\n\n"},
	}
	for _, tt := range tests {
		if got := string(appendRetry([]byte(nil), tt.d)); got != tt.want {
			t.Errorf("AppendRetry(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got, want := string(appendRetry([]byte(": x\n\n"), time.Second)), ": x\n\nretry: 1000\n\n"; got != want {
		t.Errorf("AppendRetry onto a buffer = %q, want %q", got, want)
	}
}

func TestAppendComment(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"heartbeat", ": heartbeat\n\n"},
		{"", ": \n\n"},
		{"a\nb", ": ab\n\n"},
		{"a\r\ndata: evil\x00", ": adata: evil\n\n"},
	}
	for _, tt := range tests {
		if got := string(appendComment(nil, tt.text)); got != tt.want {
			t.Errorf("AppendComment(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	setSSEHeaders(h)
	want := map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("1-2-3", "message", []byte(`{"text":"hi"}`))
	f.Add("", "", []byte(""))
	f.Add("1\nevent: x", "m\r\nid: 2", []byte("a\r\nb\rc\nd"))
	f.Add("\x00", "\r", []byte("\n\n\r\r\n"))
	f.Add("id: 1", "event: 2", []byte("id: 3\nevent: 4\r\ndata: 5\rretry: 6"))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		out := appendEvent(nil, id, event, data)
		if !bytes.HasSuffix(out, []byte("\n\n")) {
			t.Fatalf("AppendEvent(%q, %q, %q) = %q does not end with a blank line", id, event, data, out)
		}
		// An SSE reader ends lines at CR, LF or CRLF; only LF may appear.
		if bytes.IndexByte(out, '\r') >= 0 {
			t.Fatalf("AppendEvent(%q, %q, %q) = %q contains CR", id, event, data, out)
		}
		lines := strings.Split(string(out[:len(out)-2]), "\n")
		i := 0
		if id != "" {
			if !strings.HasPrefix(lines[i], "id: ") || strings.IndexByte(lines[i], 0) >= 0 {
				t.Fatalf("line %d = %q, want the id line without NUL", i, lines[i])
			}
			i++
		}
		if event != "" {
			if !strings.HasPrefix(lines[i], "event: ") {
				t.Fatalf("line %d = %q, want the event line", i, lines[i])
			}
			i++
		}
		var got []string
		for j, line := range lines[i:] {
			// Every other line is a data line: no injected id:, event:,
			// retry: or blank (dispatching) line.
			value, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				t.Fatalf("AppendEvent(%q, %q, %q): line %d = %q, want a data line", id, event, data, i+j, line)
			}
			got = append(got, value)
		}
		for j, line := range lines {
			if j >= i && (strings.HasPrefix(line, "id:") || strings.HasPrefix(line, "event:")) {
				t.Fatalf("AppendEvent(%q, %q, %q): line %d = %q injects a field", id, event, data, j, line)
			}
		}
		// The data lines join back into the data, line breaks as LF.
		want := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
		if joined := strings.Join(got, "\n"); joined != want {
			t.Fatalf("AppendEvent(%q, %q, %q): data lines join to %q, want %q", id, event, data, joined, want)
		}
	})
}
