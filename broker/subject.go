package broker

import (
	"errors"
	"fmt"
	"strings"
)

// Subject prefixes of the chat bus.
const (
	// RoomSubjectPrefix starts the subject a room's messages are published on.
	RoomSubjectPrefix = "chat.room."
	// LiveSubjectPrefix starts the subject the history stream re-publishes
	// stored messages on, with their stream sequence in headers.
	LiveSubjectPrefix = "chat.live."
	// MaxRoomLen is the longest valid room name, in bytes.
	MaxRoomLen = 64
)

// Inbox prefixes of the bus's own clients. Replies to a gateway's and to a
// service's requests (JetStream acknowledgements, history reads, service
// answers) come to these, not to nats.go's default _INBOX, so a client of
// the reader role, which may subscribe to _INBOX.> for its own replies,
// never sees them.
const (
	GatewayInboxPrefix = "_INBOX_GATEWAY"
	ServiceInboxPrefix = "_INBOX_SERVICE"
)

// ErrInvalidRoom is returned for a room name outside [A-Za-z0-9_-]{1,64}.
var ErrInvalidRoom = errors.New("invalid room name")

// ValidateRoom reports whether room is a valid room name. Valid names are
// 1 to 64 characters of ASCII letters, digits, '_' and '-', so subject
// tokens such as '.', '*' and '>' can never reach a subject.
func ValidateRoom(room string) error {
	if room == "" {
		return fmt.Errorf("%w: the name is empty", ErrInvalidRoom)
	}
	if len(room) > MaxRoomLen {
		return fmt.Errorf("%w: the name is %d characters; the limit is %d", ErrInvalidRoom, len(room), MaxRoomLen)
	}
	for i := 0; i < len(room); i++ {
		if !roomByte(room[i]) {
			return fmt.Errorf("%w: only letters, digits, '_' and '-' are allowed", ErrInvalidRoom)
		}
	}
	return nil
}

func roomByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// RoomSubject returns the subject of room's messages. The room must be valid.
func RoomSubject(room string) string { return RoomSubjectPrefix + room }

// LiveSubject returns the subject stored messages of room are re-published on.
func LiveSubject(room string) string { return LiveSubjectPrefix + room }

// RoomFromSubject returns the room of a chat.room.<room> or chat.live.<room>
// subject, and false for any other subject or an invalid room.
func RoomFromSubject(subject string) (string, bool) {
	var room string
	switch {
	case strings.HasPrefix(subject, RoomSubjectPrefix):
		room = subject[len(RoomSubjectPrefix):]
	case strings.HasPrefix(subject, LiveSubjectPrefix):
		room = subject[len(LiveSubjectPrefix):]
	default:
		return "", false
	}
	if ValidateRoom(room) != nil {
		return "", false
	}
	return room, true
}
