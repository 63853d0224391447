package broker

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects and message shapes of the chat services (presence and the rooms
// directory). Requests and replies are JSON; errors come back as NATS
// micro errors (headers Nats-Service-Error-Code and Nats-Service-Error)
// with an HTTP-like code: 400 for bad input, 500 otherwise.
const (
	// PresenceReportPrefix starts the subject a gateway reports its
	// listeners on: chat.presence.report.<gateway>.
	PresenceReportPrefix = "chat.presence.report."
	// PresenceSyncSubject asks every gateway to report its whole state at
	// once; a presence replica publishes on it when it starts, so it does
	// not have to wait a heartbeat to know who is online.
	PresenceSyncSubject = "chat.presence.sync"
	// PresenceEventPrefix starts the subject presence changes of a room are
	// announced on: chat.presence.room.<room>. The presence stream
	// re-publishes here each change it stored once.
	PresenceEventPrefix = "chat.presence.room."
	// PresenceAnnouncePrefix starts the subject presence replicas publish
	// a room's changes on, chat.presence.announce.<room>, each with a
	// Nats-Msg-Id derived from the change, into PresenceStream, which
	// keeps one copy of each and re-publishes it on PresenceEventPrefix.
	PresenceAnnouncePrefix = "chat.presence.announce."
	// PresenceStream is the JetStream stream of presence changes.
	PresenceStream = "CHAT_PRESENCE"
	// RoomTopicsBucket is the key-value bucket of room settings, written
	// by the rooms service: a room's topic under the room's name, and the
	// key PrivateRoomKeyPrefix+<room> for a room an admin made private
	// (its stream is KV_CHAT_ROOM_TOPICS). Gateways watch the private keys.
	RoomTopicsBucket = "CHAT_ROOM_TOPICS"
	// PrivateRoomKeyPrefix starts the settings key of a private room. A
	// room name has no '.', so it never collides with a topic's key.
	PrivateRoomKeyPrefix = "private."
	// PresenceMembersSubject answers MembersRequest with MembersReply.
	PresenceMembersSubject = "chat.presence.members"
	// PresenceCountsSubject answers CountsRequest (or anything that is not
	// JSON, taken as every room) with CountsReply.
	PresenceCountsSubject = "chat.presence.counts"

	// RoomsListSubject answers RoomsListRequest (or anything that is not
	// JSON, taken as the first page) with one page of RoomsReply.
	RoomsListSubject = "chat.rooms.list"
	// RoomsGetSubject answers RoomRequest with RoomInfo.
	RoomsGetSubject = "chat.rooms.get"
	// RoomsTopicSubject answers TopicRequest with RoomInfo.
	RoomsTopicSubject = "chat.rooms.topic"
	// RoomsPrivateSubject answers PrivateRequest with RoomInfo.
	RoomsPrivateSubject = "chat.rooms.private"

	// MaxTopicLen is the longest room topic, in characters.
	MaxTopicLen = 200

	// DefaultRoomsPage is how many rooms a directory page holds when the
	// request does not say.
	DefaultRoomsPage = 100
	// MaxRoomsPage is the largest directory page a request may ask for.
	MaxRoomsPage = 1000
)

// PresenceEventSubject returns the subject of room's presence changes.
func PresenceEventSubject(room string) string { return PresenceEventPrefix + room }

// PresenceAnnounceSubject returns the subject presence replicas publish
// room's changes on.
func PresenceAnnounceSubject(room string) string { return PresenceAnnouncePrefix + room }

// Kinds of PresenceReport.
const (
	ReportJoin    = "join"    // a listener connected
	ReportLeave   = "leave"   // a listener disconnected
	ReportState   = "state"   // every listener the gateway holds (heartbeat)
	ReportGoodbye = "goodbye" // the gateway stops; all its listeners are gone
)

// PresenceConn is one listener connection held by a gateway. Meta, for a
// Mercure subscriber (Room MercurePresenceRoom), is its subscription:
// MercureSubscriberMeta as JSON.
type PresenceConn struct {
	ID   string          `json:"id"`
	Room string          `json:"room"`
	User string          `json:"user"`
	Meta json.RawMessage `json:"meta,omitempty"`
}

// MercurePresenceRoom is the presence room of Mercure subscribers: each is
// a member (its subscriber id as user, its subscription as Meta), so the
// presence service announces its arrival and its departure, a crashed
// gateway's included, once, and gateways turn those announcements into
// Mercure's subscription events. No chat room has this name (a ':').
const MercurePresenceRoom = "mercure:subscriptions"

// MercureSubscriberMeta is a Mercure subscriber's presence metadata.
type MercureSubscriberMeta struct {
	Topics  []string        `json:"topics"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// ValidPresenceRoom reports whether presence tracks room: a chat room, or
// MercurePresenceRoom.
func ValidPresenceRoom(room string) bool {
	return room == MercurePresenceRoom || ValidateRoom(room) == nil
}

// PresenceReport is what a gateway publishes on
// chat.presence.report.<gateway>: one join or leave (Conn), or its whole
// state (Conns), which it sends every PresenceHeartbeat.
//
// A state too large for one NATS message is sent in Chunks messages, each
// with the same Report id and its Chunk index (0 to Chunks-1), one after
// the other. The state replaces what a replica knew of the gateway only
// once every chunk of one report has arrived; a report missing a chunk is
// dropped, and the next one repairs. Chunks 0 (or 1) is a state in one
// message.
type PresenceReport struct {
	Type    string         `json:"type"`
	Gateway string         `json:"gateway"`
	Conn    *PresenceConn  `json:"conn,omitempty"`
	Conns   []PresenceConn `json:"conns,omitempty"`
	Report  string         `json:"report,omitempty"`
	Chunk   int            `json:"chunk,omitempty"`
	Chunks  int            `json:"chunks,omitempty"`
}

// Presence timing: gateways report their state every PresenceHeartbeat; a
// gateway silent for PresenceExpiry is taken for dead and its listeners
// leave.
const (
	PresenceHeartbeat = 4 * time.Second
	PresenceExpiry    = 10 * time.Second
)

// PresenceEvent announces that a user joined (first connection) or left
// (last connection closed) a room. Gateways deliver it to the room's
// listeners as an SSE event named presence.
type PresenceEvent struct {
	Type string `json:"type"` // join or leave
	User string `json:"user"`
	Room string `json:"room"`
	// Meta is the connection's (a Mercure subscriber's subscription).
	Meta json.RawMessage `json:"meta,omitempty"`
}

// MembersRequest asks for the members of a room.
type MembersRequest struct {
	Room string `json:"room"`
}

// Member is a user in a room with how many connections they have open.
type Member struct {
	User        string `json:"user"`
	Connections int    `json:"connections"`
}

// MembersReply lists a room's members, sorted by user name.
type MembersReply struct {
	Room    string   `json:"room"`
	Members []Member `json:"members"`
}

// CountsRequest asks for the member counts of Rooms, or of every room with
// members when Rooms is empty.
type CountsRequest struct {
	Rooms []string `json:"rooms,omitempty"`
}

// CountsReply gives the member count of every room with members.
type CountsReply struct {
	Rooms map[string]int `json:"rooms"`
}

// RoomRequest names a room.
type RoomRequest struct {
	Room string `json:"room"`
}

// TopicRequest sets a room's topic; an empty topic clears it.
type TopicRequest struct {
	Room  string `json:"room"`
	Topic string `json:"topic"`
}

// PrivateRequest makes a room private (listened to, read and published to
// only with a subscribe grant for it) or public again.
type PrivateRequest struct {
	Room    string `json:"room"`
	Private bool   `json:"private"`
}

// PrivateRoomKey returns the settings key that marks room private.
func PrivateRoomKey(room string) string { return PrivateRoomKeyPrefix + room }

// RoomSettingsConfig is the configuration of the RoomTopicsBucket with
// the given replicas. The rooms service creates or updates the bucket;
// a gateway creates it when it is missing, so it can watch the private
// rooms before any rooms service has run.
func RoomSettingsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       RoomTopicsBucket,
		Description:  "ChatScalable room settings: topics and private rooms, by room",
		History:      1,
		MaxValueSize: int32(4 * MaxTopicLen), // UTF-8: at most 4 bytes a character
		Storage:      jetstream.FileStorage,
		Replicas:     replicas,
	}
}

// RoomInfo describes a room in the directory.
type RoomInfo struct {
	Room string `json:"room"`
	// Messages is how many messages the room's history holds.
	Messages uint64 `json:"messages"`
	// LastActivity is when its newest message was stored.
	LastActivity *time.Time `json:"last_activity,omitempty"`
	// LastSeq is the history sequence of its newest message: a client
	// that follows the room adds the messages it sees after it to
	// Messages, and so keeps the count without asking again.
	LastSeq uint64 `json:"last_seq,omitempty"`
	// Members is how many users are in the room now; omitted when the
	// presence service did not answer.
	Members *int   `json:"members,omitempty"`
	Topic   string `json:"topic,omitempty"`
	// Private says an admin made the room private through the directory
	// (rooms private by a gateway's --private-rooms patterns are not
	// marked: the directory does not know the gateways' flags).
	Private bool `json:"private,omitempty"`
}

// RoomsListRequest asks for one page of the rooms directory: at most Limit
// rooms (0 means DefaultRoomsPage; at most MaxRoomsPage) after the cursor
// After, which is the Next of the previous page ("" for the first page).
type RoomsListRequest struct {
	Limit int    `json:"limit,omitempty"`
	After string `json:"after,omitempty"`
}

// RoomsReply is one page of the rooms directory, most recently active
// first (rooms without messages last, by name). Next is the cursor of the
// following page, empty on the last one. A page may hold fewer rooms than
// asked for, so it fits in one NATS message: follow Next until it is
// empty.
type RoomsReply struct {
	Rooms []RoomInfo `json:"rooms"`
	Next  string     `json:"next,omitempty"`
}

// ErrInvalidTopic is returned for a topic ValidateTopic rejects.
var ErrInvalidTopic = errors.New("invalid topic")

// ValidateTopic checks a room topic: valid UTF-8, at most MaxTopicLen
// characters, one line without control characters.
func ValidateTopic(topic string) error {
	return validateLine(topic, MaxTopicLen, ErrInvalidTopic, "topic")
}
