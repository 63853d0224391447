// Package cursor encodes and parses the resumable position of a message in
// a room's history, sent as the SSE event id.
//
// A cursor carries the history stream's epoch (its creation time), the
// message's stream sequence and a tag of the room, in base 36:
// "<epoch>-<seq>-<room tag>". Clients treat it as opaque. The epoch makes a
// cursor from a recreated stream detectable; the room tag makes a cursor of
// another room detectable.
package cursor

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

// Errors of Parse; callers compare with errors.Is.
var (
	ErrMalformed = errors.New("malformed cursor")
	ErrOtherRoom = errors.New("cursor belongs to another room")
)

// maxLen bounds what Parse looks at: three base-36 uint64s and two dashes.
const maxLen = 3*13 + 2

// Encode returns the cursor of sequence seq in room, for a stream of epoch.
func Encode(epoch, seq uint64, room string) string {
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, epoch, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(roomTag(room)), 36)
	return string(b)
}

// Parse reads a cursor made by Encode for room.
func Parse(s, room string) (Cursor, error) {
	if len(s) > maxLen {
		return Cursor{}, ErrMalformed
	}
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return Cursor{}, ErrMalformed
	}
	var n [3]uint64
	for i, p := range parts {
		if p == "" || strings.ToLower(p) != p || p[0] == '+' || len(p) > 1 && p[0] == '0' {
			return Cursor{}, ErrMalformed
		}
		v, err := strconv.ParseUint(p, 36, 64)
		if err != nil {
			return Cursor{}, ErrMalformed
		}
		n[i] = v
	}
	if n[1] == 0 || n[2] > 0xffffffff {
		return Cursor{}, ErrMalformed
	}
	if uint32(n[2]) != roomTag(room) { //nolint:gosec // checked to fit 32 bits above
		return Cursor{}, ErrOtherRoom
	}
	return Cursor{Epoch: n[0], Seq: n[1]}, nil
}

func roomTag(room string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room)) // a hash never fails
	return h.Sum32()
}
