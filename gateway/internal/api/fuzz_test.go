package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatscalable/chatscalable/broker"
)

// FuzzPublishInput feeds arbitrary bodies, rooms and user names through the
// publish input parsing and validation. Whatever comes in, nothing panics,
// and anything accepted is a message the bus contract allows.
func FuzzPublishInput(f *testing.F) {
	for _, seed := range []struct{ body, room string }{
		{`{"user":"ana","text":"hi"}`, "lobby"},
		{`{"text":"line\r\nbreak","id":"a-1"}`, "dev"},
		{`{"text":"\u0000"}`, "x"},
		{`{"text":"a"} {"text":"b"}`, "lobby"},
		{`["x"]`, "lobby"},
		{"{\"text\":\"\xff\"}", "lobby"},
		{`{"user":"` + strings.Repeat("u", 70) + `","text":"x"}`, "a.b"},
		{`{"text":42}`, ">"},
		{``, ""},
	} {
		f.Add([]byte(seed.body), seed.room)
	}
	s, err := New(Config{MaxMessageBytes: 64})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, room string) {
		in, aerr := decodePublishBody(body)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 || aerr.code == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		user := ""
		if in.User != nil {
			user = *in.User
		}
		m, aerr := s.newMessage(room, user, *in.Text)
		if aerr != nil {
			if aerr.status != 400 && aerr.status != 413 {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		if broker.ValidateRoom(m.Room) != nil || strings.ContainsAny(m.Room, ".*> ") {
			t.Fatalf("accepted room %q", m.Room)
		}
		if !utf8.ValidString(m.Text) || len(m.Text) > 64 || strings.TrimSpace(m.Text) == "" || strings.ContainsRune(m.Text, '\r') {
			t.Fatalf("accepted text %q", m.Text)
		}
		if broker.ValidateText(m.Text, 64) != nil || broker.ValidateUser(m.User) != nil || m.User == "" {
			t.Fatalf("accepted %+v", m)
		}
	})
}
