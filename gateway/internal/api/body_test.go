package api

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzSimpleBody: whatever decodeSimpleBody accepts, encoding/json decodes
// without error to the same fields.
func FuzzSimpleBody(f *testing.F) {
	for _, s := range []string{
		`{"user":"ana","text":"hi"}`, ` { "text" : "a" , "id":"x-1" } `, `{}`, `{"text":"a","text":"b"}`,
		`{"Text":"a"}`, `{"text":"a\n"}`, `{"text":null}`, `{"text":"a"}}`, `{"text":"a"} x`, `{"text":"é"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // decodePublishBody refuses it first
		}
		fast, ok := decodeSimpleBody(body)
		if !ok {
			return
		}
		var slow publishBody
		if aerr := decodeJSONBody(body, &slow); aerr != nil {
			t.Fatalf("decodeSimpleBody accepted %q, encoding/json refuses it: %s", body, aerr.message)
		}
		for _, f := range []struct {
			name       string
			fast, slow *string
		}{{"id", fast.ID, slow.ID}, {"user", fast.User, slow.User}, {"text", fast.Text, slow.Text}} {
			if (f.fast == nil) != (f.slow == nil) || f.fast != nil && *f.fast != *f.slow {
				t.Fatalf("%q: %s = %v, encoding/json gives %v", body, f.name, deref(f.fast), deref(f.slow))
			}
		}
	})
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// readAll reads what io.ReadAll reads, whatever length was announced.
func TestReadAll(t *testing.T) {
	body := strings.Repeat("0123456789", 30)
	for _, c := range []struct {
		length int64
		limit  int
	}{{300, 1000}, {-1, 1000}, {10, 1000}, {299, 1000}, {0, 1000}, {5000, 1000}, {300, 300}} {
		got, err := readAll(iotest.OneByteReader(strings.NewReader(body)), c.length, c.limit)
		if err != nil || string(got) != body {
			t.Errorf("readAll(length %d, limit %d) = %d bytes, %v; want the %d bytes", c.length, c.limit, len(got), err, len(body))
		}
	}
	if _, err := readAll(iotest.ErrReader(io.ErrUnexpectedEOF), 10, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("readAll of a failing reader: %v, want %v", err, io.ErrUnexpectedEOF)
	}
}
