package broker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

// AppendJSON gives exactly json.Marshal's bytes (a time json.Marshal refuses is never published).
func TestMessageAppendJSON(t *testing.T) {
	ts := time.Date(2026, 11, 30, 13, 0, 0, 123456789, time.UTC)
	texts := []string{
		"hello", "", `quote " and \ backslash`, "line\nbreak\r\ttab\b\f\x00\x1f\x7f",
		"<script>&amp;</script>", "caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff utf-8 \xe2\x82",
	}
	var msgs []broker.Message
	for _, s := range texts {
		msgs = append(msgs, broker.Message{ID: "01J", Room: "lobby", User: s, Text: s, TS: ts, Node: s})
	}
	msgs = append(msgs,
		broker.Message{Seq: 42, ID: broker.NewID(), Room: "r", User: "u", Text: "t", TS: ts.In(time.FixedZone("x", 3600))},
		broker.Message{},
		broker.Message{Text: "far", TS: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)},
	)
	for _, m := range msgs {
		want, wantErr := json.Marshal(m)
		got := m.AppendJSON([]byte("prefix"))
		if wantErr != nil {
			continue // a year past 9999: json.Marshal refuses it, and so is never stored
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("AppendJSON(%+v) =\n  %s\nwant\n  %s", m, got[len("prefix"):], want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"a", "\"\\<>&", "\u2028\xff", "\x00\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := broker.AppendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
