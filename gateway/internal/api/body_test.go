package api

import (
	"testing"
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
