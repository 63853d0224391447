package rooms

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go/micro"
)

// decodeList reads a list request. Anything that is not JSON (as list
// took before it had pages) asks for the first page; JSON that is not a
// valid RoomsListRequest gets a 400.
func decodeList(req micro.Request) (broker.RoomsListRequest, bool) {
	var in broker.RoomsListRequest
	if data := req.Data(); json.Valid(data) {
		if err := json.Unmarshal(data, &in); err != nil {
			badRequest(req, "malformed JSON request: "+err.Error())
			return in, false
		}
	}
	switch {
	case in.Limit == 0:
		in.Limit = broker.DefaultRoomsPage
	case in.Limit < 0 || in.Limit > broker.MaxRoomsPage:
		badRequest(req, fmt.Sprintf("limit must be from 1 to %d", broker.MaxRoomsPage))
		return in, false
	}
	return in, true
}

// maxReply is the size a reply must stay within: half the server's
// maximum payload, leaving room for headers.
func (s *Service) maxReply() int {
	if n := s.nc.MaxPayload(); n > 0 {
		return int(n / 2)
	}
	return 512 << 10
}

// encodePage encodes a directory page in at most limit bytes: the rooms
// that do not fit are left for the next page, whose cursor follows the
// last room that did.
func encodePage(rooms []broker.RoomInfo, more bool, limit int) ([]byte, error) {
	const tail = len(`],"next":""}`) + maxCursorLen
	var b bytes.Buffer
	b.WriteString(`{"rooms":[`)
	n := 0
	for i, r := range rooms {
		data, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode room %s: %w", r.Room, err)
		}
		if i > 0 && b.Len()+1+len(data)+tail > limit {
			more = true
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(data)
		n++
	}
	b.WriteByte(']')
	if more && n > 0 {
		b.WriteString(`,"next":"` + keyOf(rooms[n-1]).String() + `"`)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// roomKey is a room's place in the directory's order: most recently
// active first (nanos since 1970, 0 for no messages), then by name.
type roomKey struct {
	nanos int64
	room  string
}

func keyOf(r broker.RoomInfo) roomKey {
	k := roomKey{room: r.Room}
	if r.LastActivity != nil {
		k.nanos = r.LastActivity.UnixNano()
	}
	return k
}

// before reports whether k comes before o in the directory.
func (k roomKey) before(o roomKey) bool {
	if k.nanos != o.nanos {
		return k.nanos > o.nanos
	}
	return k.room < o.room
}

// maxCursorLen bounds an encoded cursor: base64 of a 64-bit number, a
// colon and a room name.
const maxCursorLen = (20 + 1 + broker.MaxRoomLen + 2) * 4 / 3

// String is the key as an opaque cursor.
func (k roomKey) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.nanos, 10) + ":" + k.room))
}

// noCursor comes before every room: the first page.
var noCursor = roomKey{nanos: math.MaxInt64}

// parseCursor reads a cursor made by roomKey.String; "" is the start.
func parseCursor(cursor string) (roomKey, error) {
	if cursor == "" {
		return noCursor, nil
	}
	bad := errors.New("after is not a cursor of the rooms directory")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(cursor) > maxCursorLen {
		return roomKey{}, bad
	}
	nanos, room, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil || n < 0 || broker.ValidateRoom(room) != nil {
		return roomKey{}, bad
	}
	return roomKey{nanos: n, room: room}, nil
}
