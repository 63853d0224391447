package broker

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends m as JSON to b: the same bytes json.Marshal gives for
// m, written without reflection since every publish encodes a message and
// every answer to one encodes it again.
func (m Message) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if m.Seq != 0 {
		b = append(b, `"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
		b = append(b, ',')
	}
	b = append(b, `"id":`...)
	b = AppendJSONString(b, m.ID)
	b = append(b, `,"room":`...)
	b = AppendJSONString(b, m.Room)
	b = append(b, `,"user":`...)
	b = AppendJSONString(b, m.User)
	b = append(b, `,"text":`...)
	b = AppendJSONString(b, m.Text)
	b = append(b, `,"ts":`...)
	b = appendJSONTime(b, m.TS)
	if m.Node != "" {
		b = append(b, `,"node":`...)
		b = AppendJSONString(b, m.Node)
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does; a time it
// refuses (a year outside 0-9999, which no publish has) is written null.
func appendJSONTime(b []byte, t time.Time) []byte {
	if !encodableTime(t) {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// encodableTime reports whether json.Marshal can encode t.
func encodableTime(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters, U+2028 and U+2029 included; invalid UTF-8
// becomes U+FFFD).
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
