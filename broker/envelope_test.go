package broker_test

import (
	"errors"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

func TestValidateText(t *testing.T) {
	const max = 16
	tests := []struct {
		name string
		text string
		want error // nil: valid
	}{
		{"ok", "hello", nil},
		{"tab and newline", "a\tb\nc", nil},
		{"exactly max bytes", strings.Repeat("x", max), nil},
		{"multibyte at max", strings.Repeat("é", max/2), nil},
		{"empty", "", broker.ErrEmptyText},
		{"spaces", "   ", broker.ErrEmptyText},
		{"whitespace only", " \t\n \n", broker.ErrEmptyText},
		{"over max bytes", strings.Repeat("x", max+1), broker.ErrTextTooLarge},
		{"multibyte over max bytes", strings.Repeat("é", max/2+1), broker.ErrTextTooLarge},
		{"invalid utf-8", "a\xffb", broker.ErrInvalidUTF8},
		{"truncated utf-8", "\xc3", broker.ErrInvalidUTF8},
		{"SOH", "a\x01b", broker.ErrControlChars},
		{"DEL", "a\x7fb", broker.ErrControlChars},
		{"NEL", "a\u0085b", broker.ErrControlChars},
		{"unnormalized CR", "a\rb", broker.ErrControlChars},
		{"CRLF unnormalized", "a\r\nb", broker.ErrControlChars},
		{"NUL", "a\x00b", broker.ErrControlChars},
		{"line separator", "a\u2028b", broker.ErrControlChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := broker.ValidateText(tt.text, max)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateText(%q) = %v, want nil", tt.text, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidateText(%q) = %v, want errors.Is %v", tt.text, err, tt.want)
			}
		})
	}
}

func TestNormalizeText(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain", "plain"},
		{"a\nb", "a\nb"},
		{"a\r\nb", "a\nb"},
		{"a\rb", "a\nb"},
		{"a\r\n\r\nb\r", "a\n\nb\n"},
		{"a\r\rb", "a\n\nb"},
		{"a\n\rb", "a\n\nb"},
		{"\r\n", "\n"},
	}
	for _, tt := range tests {
		got := broker.NormalizeText(tt.in)
		if got != tt.want {
			t.Errorf("NormalizeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := broker.ValidateText(got, 100); errors.Is(err, broker.ErrControlChars) {
			t.Errorf("ValidateText(NormalizeText(%q)) = %v; normalized text must have no CR", tt.in, err)
		}
	}
}

func TestValidateUser(t *testing.T) {
	tests := []struct {
		name string
		user string
		ok   bool
	}{
		{"empty", "", true},
		{"ascii", "alice", true},
		{"64 multibyte runes", strings.Repeat("é", broker.MaxUserLen), true},
		{"64 four-byte runes", strings.Repeat("😀", broker.MaxUserLen), true},
		{"65 multibyte runes", strings.Repeat("é", broker.MaxUserLen+1), false},
		{"newline", "bob\n", false},
		{"NUL", "b\x00b", false},
		{"DEL", "b\x7fb", false},
		{"C1 control", "b\u0085b", false},
		{"invalid utf-8", "b\xffb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := broker.ValidateUser(tt.user)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateUser(%q) = %v, want nil", tt.user, err)
				}
				return
			}
			if !errors.Is(err, broker.ErrInvalidUser) {
				t.Fatalf("ValidateUser(%q) = %v, want errors.Is ErrInvalidUser", tt.user, err)
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	tests := []struct {
		name       string
		room, user string
		data       string
		want       broker.Message
	}{
		{
			name: "full envelope",
			room: "lobby",
			data: `{"id":"01HX0000000000000000000000","room":"lobby","user":"alice","text":"hi there","ts":"2024-05-06T07:08:09.123456789Z","node":"gw-1"}`,
			want: broker.Message{ID: "01HX0000000000000000000000", Room: "lobby", User: "alice", Text: "hi there", TS: ts, Node: "gw-1"},
		},
		{
			name: "envelope room is ignored",
			room: "lobby",
			user: "header-user",
			data: `{"id":"x1","room":"secret","user":"alice","text":"hi"}`,
			want: broker.Message{ID: "x1", Room: "lobby", User: "alice", Text: "hi"},
		},
		{
			name: "envelope with surrounding whitespace",
			room: "r",
			data: " \n{\"user\":\"carol\",\"text\":\"yo\"}\n",
			want: broker.Message{Room: "r", User: "carol", Text: "yo"},
		},
		{
			name: "envelope with empty user",
			room: "r",
			data: `{"user":"","text":"yo"}`,
			want: broker.Message{Room: "r", User: "nats", Text: "yo"},
		},
		{
			name: "envelope with too long user",
			room: "r",
			data: `{"user":"` + strings.Repeat("u", 100) + `","text":"yo"}`,
			want: broker.Message{Room: "r", User: "nats", Text: "yo"},
		},
		{
			name: "envelope with bad ts keeps zero ts",
			room: "r",
			data: `{"user":"dan","text":"yo","ts":"yesterday"}`,
			want: broker.Message{Room: "r", User: "dan", Text: "yo"},
		},
		{
			name: "plain text without user header",
			room: "lobby",
			data: "hi",
			want: broker.Message{Room: "lobby", User: "nats", Text: "hi"},
		},
		{
			name: "plain text with user header",
			room: "lobby",
			user: "bob",
			data: "hi",
			want: broker.Message{Room: "lobby", User: "bob", Text: "hi"},
		},
		{
			name: "plain text with invalid user header",
			room: "lobby",
			user: "bo\nb",
			data: "hi",
			want: broker.Message{Room: "lobby", User: "nats", Text: "hi"},
		},
		{
			name: "invalid utf-8 payload",
			room: "lobby",
			data: "a\xffb",
			want: broker.Message{Room: "lobby", User: "nats", Text: "a\uFFFDb"},
		},
		{
			name: "json without text is plain text",
			room: "lobby",
			user: "bob",
			data: `{"user":"alice","msg":"hi"}`,
			want: broker.Message{Room: "lobby", User: "bob", Text: `{"user":"alice","msg":"hi"}`},
		},
		{
			name: "json with non-string text is plain text",
			room: "lobby",
			data: `{"text":42}`,
			want: broker.Message{Room: "lobby", User: "nats", Text: `{"text":42}`},
		},
		{
			name: "broken json is plain text",
			room: "lobby",
			data: `{"text":"hi"`,
			want: broker.Message{Room: "lobby", User: "nats", Text: `{"text":"hi"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := broker.DecodeMessage(tt.room, tt.user, []byte(tt.data))
			if !got.TS.Equal(tt.want.TS) {
				t.Errorf("TS = %v, want %v", got.TS, tt.want.TS)
			}
			got.TS, tt.want.TS = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("DecodeMessage(%q, %q, %q) =\n  %+v\nwant\n  %+v", tt.room, tt.user, tt.data, got, tt.want)
			}
		})
	}
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idMillis decodes the 48-bit millisecond time of a ULID.
func idMillis(t *testing.T, id string) int64 {
	t.Helper()
	var ms int64
	for _, c := range id[:10] {
		i := strings.IndexRune(crockford, c)
		if i < 0 {
			t.Fatalf("id %q: %q is not a Crockford base32 digit", id, c)
		}
		ms = ms<<5 | int64(i)
	}
	return ms
}

func TestNewIDFormat(t *testing.T) {
	before := time.Now().UnixMilli()
	id := broker.NewID()
	after := time.Now().UnixMilli()
	if len(id) != 26 {
		t.Fatalf("len(NewID()) = %d (%q), want 26", len(id), id)
	}
	for _, c := range id {
		if !strings.ContainsRune(crockford, c) {
			t.Fatalf("NewID() = %q: %q is not in the Crockford alphabet", id, c)
		}
	}
	// 26 digits hold 130 bits; the first digit holds the top 3 of the 128.
	if id[0] > '7' {
		t.Fatalf("NewID() = %q: first digit must be 0-7", id)
	}
	if ms := idMillis(t, id); ms < before || ms > after {
		t.Fatalf("NewID() = %q encodes time %d, want within [%d, %d]", id, ms, before, after)
	}
}

func TestNewIDUnique(t *testing.T) {
	seen := make(map[string]bool, 1000)
	for range 1000 {
		id := broker.NewID()
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func TestNewIDSortsByCreation(t *testing.T) {
	ids := make([]string, 10)
	for i := range ids {
		if i > 0 {
			// Let the clock move on 2ms: ids of one millisecond are in random order.
			start := time.Now()
			for time.Since(start) < 2*time.Millisecond {
				runtime.Gosched()
			}
		}
		ids[i] = broker.NewID()
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids created 2ms apart are not sorted: %q", ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] == ids[i] {
			t.Fatalf("duplicate id %q", ids[i])
		}
	}
}
