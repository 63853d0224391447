package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names used on chat subjects.
const (
	// HeaderUser names the sender of a plain-text (non-envelope) message.
	HeaderUser = "Chat-User"
	// DefaultPlainUser is the sender of a plain-text message without HeaderUser.
	DefaultPlainUser = "nats"
	// MaxUserLen is the longest valid user name, in characters.
	MaxUserLen = 64
)

// Message is the chat message envelope: the JSON payload on chat.room.<room>.
// Seq is the room history position; it is not part of what publishers send
// and is filled in from the stream when a message is read back.
type Message struct {
	Seq  uint64    `json:"seq,omitempty"`
	ID   string    `json:"id"`
	Room string    `json:"room"`
	User string    `json:"user"`
	Text string    `json:"text"`
	TS   time.Time `json:"ts"`
	Node string    `json:"node,omitempty"`
}

// Validation errors for message fields; callers compare with errors.Is.
var (
	ErrEmptyText       = errors.New("text is empty")
	ErrTextTooLarge    = errors.New("text is too large")
	ErrInvalidUTF8     = errors.New("text is not valid UTF-8")
	ErrControlChars    = errors.New("text contains control characters")
	ErrInvalidUser     = errors.New("invalid user name")
	ErrPayloadNotValid = errors.New("payload is not a message envelope")
)

// NormalizeText turns CRLF and lone CR line breaks into LF, so text typed in
// a browser's textarea (sent as CRLF) is stored with plain newlines.
func NormalizeText(text string) string {
	if !strings.Contains(text, "\r") {
		return text
	}
	return strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
}

// ValidateText checks message text: valid UTF-8, not blank, at most maxBytes
// bytes, and no control characters other than newline and tab.
func ValidateText(text string, maxBytes int) error {
	if !utf8.ValidString(text) {
		return ErrInvalidUTF8
	}
	if len(text) > maxBytes {
		return fmt.Errorf("%w: text is %d bytes; the limit is %d", ErrTextTooLarge, len(text), maxBytes)
	}
	if strings.TrimSpace(text) == "" {
		return ErrEmptyText
	}
	for _, r := range text {
		if r == '\n' || r == '\t' {
			continue
		}
		if isControl(r) {
			return fmt.Errorf("%w: U+%04X is not allowed", ErrControlChars, r)
		}
	}
	return nil
}

// Limits of the fields a publisher chooses besides the text.
const (
	// MaxIDLen is the longest valid message id, in characters.
	MaxIDLen = 128
	// MaxNodeLen is the longest valid node name, in characters.
	MaxNodeLen = 128
)

// ErrInvalidField is wrapped by ValidateStored for a bad id or node name.
var ErrInvalidField = errors.New("invalid message field")

// ValidateStored checks a message read back from history by the rules every
// publisher through the gateway meets (ValidateText with maxTextBytes, and
// one-line id and node fields). Anything can be published on a room's
// subject with NATS directly, so readers check what they hand to
// listeners; DecodeMessage has already replaced a bad user name.
func ValidateStored(m Message, maxTextBytes int) error {
	if err := ValidateText(m.Text, maxTextBytes); err != nil {
		return err
	}
	if err := validateLine(m.ID, MaxIDLen, ErrInvalidField, "id"); err != nil {
		return err
	}
	return validateLine(m.Node, MaxNodeLen, ErrInvalidField, "node name")
}

// MaxPayloadBytes is the largest envelope a message of at most
// maxTextBytes of text takes: JSON escapes a byte of text in at most six
// bytes, and the other fields are bounded. The history stream refuses
// larger payloads.
func MaxPayloadBytes(maxTextBytes int) int {
	return 6*maxTextBytes + 6*(MaxIDLen+MaxNodeLen+4*MaxUserLen) + 512
}

// ValidateUser checks a user name: valid UTF-8, at most MaxUserLen
// characters, no control characters. The empty name is valid; callers
// substitute their default.
func ValidateUser(user string) error {
	return validateLine(user, MaxUserLen, ErrInvalidUser, "name")
}

// validateLine checks a one-line field: valid UTF-8, at most max
// characters, no control characters; errors wrap base and name the field.
func validateLine(v string, max int, base error, field string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: the %s is not valid UTF-8", base, field)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fmt.Errorf("%w: the %s is %d characters; the limit is %d", base, field, n, max)
	}
	for _, r := range v {
		if isControl(r) {
			return fmt.Errorf("%w: U+%04X is not allowed", base, r)
		}
	}
	return nil
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029
}

// DecodeMessage turns a payload published on a room's subject into a
// Message. A JSON object with a string "text" field is an envelope; anything
// else is a plain-text message whose text is the payload (invalid UTF-8
// replaced) and whose user is the Chat-User header, or "nats". The room is
// always the subject's room; Seq, TS and ID gaps are filled by the caller
// that knows the stored position.
func DecodeMessage(room string, user string, data []byte) Message {
	if m, err := decodeEnvelope(data); err == nil {
		m.Room = room
		if ValidateUser(m.User) != nil || m.User == "" {
			m.User = DefaultPlainUser
		}
		return m
	}
	if user == "" || ValidateUser(user) != nil {
		user = DefaultPlainUser
	}
	return Message{Room: room, User: user, Text: strings.ToValidUTF8(string(data), "\uFFFD")}
}

func decodeEnvelope(data []byte) (Message, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return Message{}, ErrPayloadNotValid
	}
	var raw struct {
		ID   string          `json:"id"`
		User string          `json:"user"`
		Text *string         `json:"text"`
		TS   json.RawMessage `json:"ts"`
		Node string          `json:"node"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Text == nil {
		return Message{}, ErrPayloadNotValid
	}
	m := Message{ID: raw.ID, User: raw.User, Text: *raw.Text, Node: raw.Node}
	if len(raw.TS) > 0 {
		_ = json.Unmarshal(raw.TS, &m.TS) // a bad timestamp is replaced by the stored time
	}
	return m, nil
}

// NewID returns a new message id: a ULID (48-bit millisecond time and 80
// random bits in Crockford base32), sortable by creation time.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var out [26]byte
	// 128 bits as 26 base32 digits, the first holding the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
