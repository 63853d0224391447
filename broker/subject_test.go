package broker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/broker"
)

func TestValidateRoom(t *testing.T) {
	tests := []struct {
		name string
		room string
		ok   bool
	}{
		{"lobby", "lobby", true},
		{"one char", "a", true},
		{"mixed", "A-b_9", true},
		{"64 chars", strings.Repeat("x", broker.MaxRoomLen), true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("x", broker.MaxRoomLen+1), false},
		{"dot", "a.b", false},
		{"star", "a*", false},
		{"gt", ">", false},
		{"space", "a b", false},
		{"non-ascii", "é", false},
		{"nul", "a\x00", false},
		{"slash", "a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := broker.ValidateRoom(tt.room)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateRoom(%q) = %v, want nil", tt.room, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateRoom(%q) = nil, want an error", tt.room)
			}
			if !errors.Is(err, broker.ErrInvalidRoom) {
				t.Fatalf("ValidateRoom(%q) = %v, want errors.Is ErrInvalidRoom", tt.room, err)
			}
		})
	}
}

func TestRoomAndLiveSubject(t *testing.T) {
	if got, want := broker.RoomSubject("lobby"), "chat.room.lobby"; got != want {
		t.Errorf("RoomSubject(lobby) = %q, want %q", got, want)
	}
	if got, want := broker.LiveSubject("lobby"), "chat.live.lobby"; got != want {
		t.Errorf("LiveSubject(lobby) = %q, want %q", got, want)
	}
	for _, room := range []string{"a", "A-b_9", strings.Repeat("z", broker.MaxRoomLen)} {
		for _, subj := range []string{broker.RoomSubject(room), broker.LiveSubject(room)} {
			got, ok := broker.RoomFromSubject(subj)
			if !ok || got != room {
				t.Errorf("RoomFromSubject(%q) = %q, %v; want %q, true", subj, got, ok, room)
			}
		}
	}
}

func TestRoomFromSubject(t *testing.T) {
	tests := []struct {
		subject string
		room    string
		ok      bool
	}{
		{"chat.room.x", "x", true},
		{"chat.live.x", "x", true},
		{"chat.room.A-b_9", "A-b_9", true},
		{"chat.other.x", "", false},
		{"chat.rooms.x", "", false},
		{"xchat.room.x", "", false},
		{"room.x", "", false},
		{"", "", false},
		{"chat.room.a.b", "", false},
		{"chat.room.*", "", false},
		{"chat.live.>", "", false},
		{"chat.room." + strings.Repeat("x", broker.MaxRoomLen+1), "", false},
		{"chat.room.", "", false},
		{"chat.live.", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			room, ok := broker.RoomFromSubject(tt.subject)
			if room != tt.room || ok != tt.ok {
				t.Fatalf("RoomFromSubject(%q) = %q, %v; want %q, %v", tt.subject, room, ok, tt.room, tt.ok)
			}
		})
	}
}
