package delivery_test

import (
	"errors"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
)

// tag is the room tag Encode writes, in base 36.
func tag(room string) string {
	h := fnv.New32a()
	h.Write([]byte(room))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

func TestEncodeParseRoundTrip(t *testing.T) {
	tests := []struct {
		epoch, seq uint64
		room       string
	}{
		{0, 1, "lobby"},
		{1, 1, "a"},
		{1_700_000_000_123_456_789, 42, "lobby"},
		{math.MaxUint64, math.MaxUint64, strings.Repeat("z", 64)},
		{12345, 1 << 40, "A-b_9"},
	}
	for _, tt := range tests {
		s := delivery.EncodeCursor(tt.epoch, tt.seq, tt.room)
		want := strconv.FormatUint(tt.epoch, 36) + "-" + strconv.FormatUint(tt.seq, 36) + "-" + tag(tt.room)
		if s != want {
			t.Errorf("Encode(%d, %d, %q) = %q, want %q", tt.epoch, tt.seq, tt.room, s, want)
		}
		c, err := delivery.ParseCursor(s, tt.room)
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", s, tt.room, err)
			continue
		}
		if c != (delivery.Cursor{Epoch: tt.epoch, Seq: tt.seq}) {
			t.Errorf("Parse(%q, %q) = %+v, want epoch %d seq %d", s, tt.room, c, tt.epoch, tt.seq)
		}
	}
}

func TestParseOtherRoom(t *testing.T) {
	s := delivery.EncodeCursor(99, 7, "lobby")
	for _, room := range []string{"lobby2", "Lobby", "a", ""} {
		if _, err := delivery.ParseCursor(s, room); !errors.Is(err, delivery.ErrCursorOtherRoom) {
			t.Errorf("Parse(cursor of lobby, %q) = %v, want ErrOtherRoom", room, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	const room = "lobby"
	tg := tag(room)
	long := strings.Repeat("1", 13) + "-" + strings.Repeat("1", 13) + "-" + strings.Repeat("1", 13) // 41: the limit
	tests := []struct {
		name, s string
	}{
		{"empty", ""},
		{"two parts", "a-b"},
		{"two numbers", "1-2"},
		{"seq 0", "1-0-" + tg},
		{"seq 0 bad tag", "1-0-x"},
		{"uppercase epoch", "A-1-" + tg},
		{"uppercase seq", "1-Z-" + tg},
		{"uppercase tag", "1-1-" + strings.ToUpper(tg)},
		{"plus sign", "+1-1-" + tg},
		{"plus everywhere", "+1-+1-+1"},
		{"minus sign", "1--1-" + tg},
		{"too long", long + "1"},
		{"too long padded", strings.Repeat("0", 40) + "1-1-" + tg},
		{"epoch overflows uint64", "3w5e11264sgsg-1-" + tg},
		{"seq overflows uint64", "1-3w5e11264sgsg-" + tg},
		{"tag over 32 bits", "1-1-1z141z4"},
		{"non base36", "1-1-" + tg + "!"},
		{"space", "1- 1-" + tg},
		{"underscore", "1-1_0-" + tg},
		{"non-ascii", "1-é-" + tg},
		{"extra dashes", "1-1-1-" + tg},
		{"leading dash", "-1-1-" + tg},
		{"trailing dash", "1-1-" + tg + "-"},
		{"empty epoch", "-1-" + tg},
		{"empty tag", "1-1-"},
		{"only dashes", "--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := delivery.ParseCursor(tt.s, room)
			if !errors.Is(err, delivery.ErrMalformedCursor) {
				t.Fatalf("Parse(%q) = %+v, %v; want ErrMalformed", tt.s, c, err)
			}
		})
	}
	// The longest valid cursor must still be accepted at the length limit.
	s := delivery.EncodeCursor(math.MaxUint64, math.MaxUint64, room)
	if _, err := delivery.ParseCursor(s, room); err != nil {
		t.Fatalf("Parse(%q) (%d bytes): %v", s, len(s), err)
	}
}

// TestParseRejectsLeadingZeros checks that a cursor has one spelling: Parse
// must not accept zero-padded numbers that Encode never writes.
func TestParseRejectsLeadingZeros(t *testing.T) {
	tg := tag("lobby")
	for _, s := range []string{"01-1-" + tg, "1-01-" + tg, "1-1-0" + tg, "00-1-" + tg} {
		if _, err := delivery.ParseCursor(s, "lobby"); !errors.Is(err, delivery.ErrMalformedCursor) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", s, err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	rooms := []string{"lobby", "a", "A-b_9"}
	for _, room := range rooms {
		f.Add(delivery.EncodeCursor(1_700_000_000_123_456_789, 42, room), room)
		f.Add(delivery.EncodeCursor(0, 1, room), room)
		f.Add(delivery.EncodeCursor(math.MaxUint64, math.MaxUint64, room), room)
	}
	for _, s := range []string{"", "-", "--", "a-b", "1-2", "1-0-x", "+1-1-1", "A-1-1", "1-1-1-1", "3w5e11264sgsg-1-1", strings.Repeat("z", 50)} {
		f.Add(s, "lobby")
	}
	f.Fuzz(func(t *testing.T, s, room string) {
		checkParse(t, s, room)
		// Random input rarely carries room's tag; try it with the right tag
		// too, so the epoch and sequence parts are explored past the tag check.
		if i := strings.LastIndexByte(s, '-'); i >= 0 {
			checkParse(t, s[:i+1]+tag(room), room)
		}
	})
}

// checkParse checks that Parse(s, room) does not panic, fails only with its
// errors, and accepts only what Encode writes.
func checkParse(t *testing.T, s, room string) {
	t.Helper()
	c, err := delivery.ParseCursor(s, room)
	if err != nil {
		if !errors.Is(err, delivery.ErrMalformedCursor) && !errors.Is(err, delivery.ErrCursorOtherRoom) {
			t.Fatalf("Parse(%q, %q) = %v, want ErrMalformed or ErrOtherRoom", s, room, err)
		}
		return
	}
	if c.Seq == 0 {
		t.Fatalf("Parse(%q, %q) accepted sequence 0", s, room)
	}
	again := delivery.EncodeCursor(c.Epoch, c.Seq, room)
	if again != s {
		t.Fatalf("Parse(%q, %q) = %+v, which re-encodes to %q", s, room, c, again)
	}
}
