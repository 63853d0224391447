// Cursors: the resumable position of a message in a room's history, sent
// as the SSE event id.
//
// A cursor carries the history stream's epoch (its creation time), the
// message's stream sequence and a tag of the room, in base 36:
// "<epoch>-<seq>-<room tag>". Clients treat it as opaque. The epoch makes a
// cursor from a recreated stream detectable; the room tag makes a cursor of
// another room detectable.

package delivery

import (
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
)

// Cursor is a position in a room's history.
type Cursor struct {
	Epoch uint64
	Seq   uint64
}

// Errors of ParseCursor; callers compare with errors.Is.
var (
	ErrMalformedCursor = errors.New("malformed cursor")
	ErrCursorOtherRoom = errors.New("cursor belongs to another room")
)

// maxCursorLen bounds what ParseCursor looks at: three base-36 uint64s and two dashes.
const maxCursorLen = 3*13 + 2

// EncodeCursor returns the cursor of sequence seq in room, for a stream of epoch.
func EncodeCursor(epoch, seq uint64, room string) string {
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, epoch, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(roomTag(room)), 36)
	return string(b)
}

// ParseCursor reads a cursor made by EncodeCursor for room.
func ParseCursor(s, room string) (Cursor, error) {
	if len(s) > maxCursorLen {
		return Cursor{}, ErrMalformedCursor
	}
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return Cursor{}, ErrMalformedCursor
	}
	var n [3]uint64
	for i, p := range parts {
		if p == "" || strings.ToLower(p) != p || p[0] == '+' || len(p) > 1 && p[0] == '0' {
			return Cursor{}, ErrMalformedCursor
		}
		v, err := strconv.ParseUint(p, 36, 64)
		if err != nil {
			return Cursor{}, ErrMalformedCursor
		}
		n[i] = v
	}
	if n[1] == 0 || n[2] > 0xffffffff {
		return Cursor{}, ErrMalformedCursor
	}
	if uint32(n[2]) != roomTag(room) { //nolint:gosec // checked to fit 32 bits above
		return Cursor{}, ErrCursorOtherRoom
	}
	return Cursor{Epoch: n[0], Seq: n[1]}, nil
}

func roomTag(room string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room)) // a hash never fails
	return h.Sum32()
}
