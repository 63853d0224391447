// Package defaults names every default of chat-gateway in one place: the
// flag parser offers them, and each package falls back to the same
// constant when its caller leaves a setting zero. A reader looking for a
// default finds it here, whichever layer applies it.
package defaults

import "time"

// Flags of chat-gateway (README, "Configuration").
const (
	HTTPAddr        = ":8080"
	DataDir         = "./data"
	NATSListen      = "127.0.0.1:4222"
	ClusterName     = "chat"
	ElectionTimeout = time.Second
	MaxMessageBytes = 4096
	HistoryMaxMsgs  = 1000
	HistoryMaxAge   = 168 * time.Hour
	MaxReplay       = 1000
	ClientQueue     = 256
	ClientBuffer    = 1 << 20
	WriteTimeout    = 10 * time.Second
	Heartbeat       = 15 * time.Second
	SSEWriter       = "loop" // gateway.SSEWriterLoop
	SSECoalesce     = 10 * time.Millisecond
	ShutdownTimeout = 10 * time.Second
	Services        = "auto" // gateway.ServicesAuto
	Auth            = "off"  // gateway.AuthOff
	PublishBurst    = 20
	LogLevel        = "info"
	LogFormat       = "text"
)

// Settings without a flag.
const (
	// BodyTimeout bounds the arrival of a request body.
	BodyTimeout = 10 * time.Second
	// PublishTimeout bounds storing a message and reading history.
	PublishTimeout = 5 * time.Second
	// ServiceTimeout bounds waiting for a chat service's answer.
	ServiceTimeout = 2 * time.Second
	// Retry is the reconnect delay hinted to SSE clients.
	Retry = 2 * time.Second
	// ShutdownRetry is the reconnect delay hinted to SSE clients that a
	// stopping gateway sends away.
	ShutdownRetry = 250 * time.Millisecond
	// ReservedFiles are the open files kept beyond HTTP connections when
	// --max-conns is derived from the file limit.
	ReservedFiles = 512
	// SendBuffer is the kernel send buffer of a stream's socket.
	SendBuffer = 128 << 10
	// BehindAfter is how long the stream loop's queue may stay non-empty
	// before the loop counts as behind and coalesces writes.
	BehindAfter = 2 * time.Millisecond
	// MaxBackfill bounds the messages read to fill one hole in a room's
	// live feed.
	MaxBackfill = 10000
	// CatchUpTimeout bounds filling a hole (a lagging replica, a leader
	// election).
	CatchUpTimeout = 5 * time.Second
	// AuthExpiringNotice is how long before its token expires a stream
	// gets an auth-expiring event (at most half the token's time left).
	AuthExpiringNotice = 30 * time.Second
	// ActivateTimeout bounds subscribing to a room and learning its
	// position.
	ActivateTimeout = 5 * time.Second
	// MercureCookie is the cookie that may carry a Mercure token, as on
	// a Mercure hub.
	MercureCookie = "mercureAuthorization"
	// MercureMaxReplay bounds the updates one Mercure connection replays.
	MercureMaxReplay = 1000
)
