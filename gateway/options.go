package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/chatscalable/chatscalable/gateway/internal/defaults"
	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// Options configures a Gateway. Start gives every setting left zero its
// default (see setBaseline); DefaultOptions returns them all, as
// chat-gateway runs without flags.
type Options struct {
	// HTTPAddr is the HTTP listen address ("127.0.0.1:0" picks a port).
	HTTPAddr string
	// NodeName names this gateway node.
	NodeName string
	// NATSURL lists external NATS servers, comma-separated; empty starts an
	// embedded node.
	NATSURL string
	// NATSUser and NATSPassword authenticate to an external NATS.
	NATSUser, NATSPassword string
	// DataDir holds the embedded node's JetStream data.
	DataDir string
	// NATSListen is the embedded node's client listener; "" or "off"
	// disables it.
	NATSListen string
	// ClusterName, ClusterListen and ClusterRoutes join the embedded node
	// to a peer mesh of gateways (see node.Options).
	ClusterName   string
	ClusterListen string
	ClusterRoutes []string
	// ElectionTimeout tunes the mesh's Raft failover (see node.Options).
	ElectionTimeout time.Duration
	// MaxMessageBytes is the largest message text accepted.
	MaxMessageBytes int
	// History holds the history stream's limits.
	History broker.HistoryConfig
	// MaxReplay bounds the messages replayed to a resuming client
	// (default 1000).
	MaxReplay int
	// ClientQueue is the number of frames queued per SSE client.
	ClientQueue int
	// ClientBuffer is the byte budget of an SSE client: queued frames and
	// output its connection has not taken (default 1 MiB).
	ClientBuffer int
	// WriteTimeout ends a response, or an SSE stream, whose client has not
	// taken what was written to it within this time (default 10s).
	WriteTimeout time.Duration
	// MaxConns bounds the open HTTP connections (default: the process's
	// open-file limit less 512); MaxConnsPerIP bounds those of one client
	// address (default: no limit). Connections beyond are refused with 503.
	MaxConns, MaxConnsPerIP int
	// Heartbeat is the SSE heartbeat interval.
	Heartbeat time.Duration
	// SSEWriter says how SSE streams are written (default SSEWriterLoop).
	SSEWriter SSEWriter
	// SSECoalesce is the stream loop's shortest time between two writes
	// to one stream (0: write each message at once).
	SSECoalesce time.Duration
	// BodyTimeout bounds reading a request body (default 10s).
	BodyTimeout time.Duration
	// Services says where the presence and rooms services run (default
	// ServicesAuto).
	Services ServicesMode
	// StartServices, if set, starts this gateway's replicas of the chat
	// services on its NATS connection, once the history stream is ready,
	// for a cluster of clusterSize servers. It returns a stop for what it
	// started (nil if nothing), which the gateway calls when it shuts
	// down, and an error if some service did not start: the gateway then
	// calls it again about a second later, and it starts only what is not
	// running yet. chat-gateway passes services/inprocess; the gateway
	// itself knows nothing of the services.
	StartServices func(ctx context.Context, nc *nats.Conn, clusterSize int) (stop func() error, err error)
	// AdminAddr, when set, is a listener of its own for operators:
	// /metrics, /node with its details and the health probes; the public
	// listener then serves no /metrics and names the node only.
	AdminAddr string
	// TLSCert and TLSKey, when set, are PEM files of the certificate and
	// key the gateway serves HTTPS with (HTTP/2 included, which lifts
	// browsers' six connections per host); read at start.
	TLSCert, TLSKey string
	// Auth says who may do what: AuthOff (anyone, as any user) or AuthJWT
	// (a token per request, verified as AuthJWT says; see package auth).
	Auth    AuthMode
	AuthJWT AuthOptions
	// AuthTokenURL is where the chat page gets its token, and a fresh one
	// before it expires: a GET with the browser's credentials that answers
	// {"token":"…"} (the application's sign-in service; CORS if it is on
	// another origin).
	AuthTokenURL string
	// AuthSignInURL is where the chat page sends a browser the sign-in
	// service does not know (its token URL answered 401): a page that
	// signs the user in and returns to the path in its next parameter.
	AuthSignInURL string
	// PublishRate is how many messages per second one authenticated user
	// may publish, and PublishRatePerIP one client address, in bursts of
	// up to PublishBurst (default 20); over it a publish gets 429 with
	// Retry-After. MaxStreamsPerUser bounds one user's open SSE streams.
	// 0: no limit.
	PublishRate, PublishRatePerIP float64
	PublishBurst                  int
	MaxStreamsPerUser             int
	// AllowedOrigins ("https://host[:port]") may post with the token
	// cookie besides the gateway's own pages; CORSOrigins may call the
	// JSON API from their pages. Any other site's browser POST or PUT
	// is refused.
	AllowedOrigins, CORSOrigins []string
	// PrivateRooms are room patterns ("team-*") that only a token with a
	// subscribe grant for the room can see; for anyone else they do not
	// exist (404, left out of the directory). With auth off nobody can.
	PrivateRooms []string
	// Mercure, when Enabled, serves a Mercure hub at /.well-known/mercure
	// (package mercure), its updates stored in the CHAT_MERCURE stream.
	Mercure MercureOptions
	// Version is reported by /node.
	Version string
	// Clock is the wall clock the gateway stamps messages with (their
	// "ts"); nil is time.Now. Order never comes from it: a room's order
	// is the history stream's sequence and a cursor names a position in
	// it, so a node whose clock is off shows odd times, nothing worse.
	// Tests set it to play a node with a skewed clock.
	Clock func() time.Time
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger

	// NATSTLS names the PEM files of NATS TLS. With NATSURL they are the
	// gateway's client TLS: CA verifies the servers and Cert, if set, is
	// presented to them. With an embedded node they are the node's: Cert
	// serves its client and route listeners, which then speak TLS only,
	// and CA verifies the other nodes of the mesh.
	NATSTLS broker.TLSFiles
	// NodeAuth says who may connect to the embedded node (see node.Auth):
	// other programs' clients by role, and the routes of a peer mesh. The
	// node refuses to start with anonymous clients on a listener off
	// loopback, or with a route listener and no route password, unless
	// NodeAuth.NoAuth. The gateway's own connection needs no password.
	NodeAuth node.Auth
}

// SSEWriter says how SSE streams are written.
type SSEWriter string

const (
	// SSEWriterLoop hands each stream, once its headers and replay are
	// out, to a stream loop: a few goroutines write every stream (Linux;
	// elsewhere the gateway falls back to SSEWriterHandler).
	SSEWriterLoop SSEWriter = "loop"
	// SSEWriterHandler keeps each stream on its own net/http handler.
	SSEWriterHandler SSEWriter = "handler"
)

// AuthMode says how requests are authenticated.
type AuthMode string

const (
	// AuthOff lets anyone publish and listen as any user: for a chat on
	// loopback or a trusted network only.
	AuthOff AuthMode = "off"
	// AuthJWT requires a JSON Web Token on every chat request.
	AuthJWT AuthMode = "jwt"
)

// MercureOptions configure the Mercure hub.
type MercureOptions struct {
	Enabled bool
	// Keys verify publishers' and subscribers' tokens (exactly one of
	// SecretFile, KeyFile and JWKSURL; tokens need no exp). Without a key
	// nobody may publish.
	Keys AuthOptions
	// Anonymous lets subscribers without a token receive public updates.
	Anonymous bool
	// Cookie is the cookie that may carry a token (default
	// mercureAuthorization); PublishOrigins may publish with it ("*": any).
	Cookie         string
	PublishOrigins []string
	// MaxAge, MaxMsgs and MaxBytes bound the updates kept for resuming
	// (defaults 168h, 1,000,000 and 1 GiB); Replicas as History's.
	MaxAge            time.Duration
	MaxMsgs, MaxBytes int64
	Replicas          int
	// MaxReplay bounds the updates one connection replays (default 1000);
	// the client then resumes from the last one.
	MaxReplay int
	// Subscriptions turns on subscription events and the subscriptions
	// API, cluster-wide.
	Subscriptions bool
}

// keyed reports whether a key is configured.
func (m MercureOptions) keyed() bool {
	return m.Keys.SecretFile != "" || m.Keys.KeyFile != "" || m.Keys.JWKSURL != ""
}

// AuthOptions are the keys and checks of AuthJWT: exactly one of
// SecretFile (HS256), KeyFile (a PEM public key) and JWKSURL; Issuer and
// Audience checked when set; where tokens may come from besides the
// Authorization header (Cookie, QueryToken).
type AuthOptions = auth.Options

// ServicesMode says where the presence and rooms services run.
type ServicesMode string

const (
	// ServicesAuto runs them in-process with an embedded NATS node, when
	// StartServices is set, and elsewhere otherwise.
	ServicesAuto ServicesMode = "auto"
	// ServicesInProcess runs a replica of each here, with StartServices.
	ServicesInProcess ServicesMode = "in-process"
	// ServicesOff leaves them to processes of their own.
	ServicesOff ServicesMode = "off"
)

// DefaultOptions returns the options chat-gateway runs with when no flag
// or variable says otherwise; each default is a named constant of package
// defaults. The flag parser starts from them, so --help shows them.
func DefaultOptions() Options {
	host, _ := os.Hostname()
	o := Options{
		HTTPAddr:        defaults.HTTPAddr,
		NodeName:        host,
		DataDir:         defaults.DataDir,
		NATSListen:      defaults.NATSListen,
		ElectionTimeout: defaults.ElectionTimeout,
		SSECoalesce:     defaults.SSECoalesce,
	}
	o.setBaseline()
	return o
}

// setBaseline gives every setting left zero, where zero means "the
// default", its default. Start calls it, so a program sets only what it
// changes. Zero keeps its meaning where it is a choice: NATSURL (an
// embedded node), NATSListen (no client listener), ClusterListen (a
// standalone node), ElectionTimeout (nats-server's own), MaxConns (derived
// from the open-file limit), MaxConnsPerIP (no limit), History.Replicas
// (automatic) and SSECoalesce (write at once).
func (o *Options) setBaseline() {
	orDefault(&o.ClusterName, defaults.ClusterName)
	orDefault(&o.MaxMessageBytes, defaults.MaxMessageBytes)
	orDefault(&o.History.MaxMsgsPerRoom, defaults.HistoryMaxMsgs)
	orDefault(&o.History.MaxAge, defaults.HistoryMaxAge)
	orDefault(&o.MaxReplay, defaults.MaxReplay)
	orDefault(&o.Mercure.Cookie, defaults.MercureCookie)
	orDefault(&o.Mercure.MaxReplay, defaults.MercureMaxReplay)
	orDefault(&o.ClientQueue, defaults.ClientQueue)
	orDefault(&o.ClientBuffer, defaults.ClientBuffer)
	orDefault(&o.WriteTimeout, defaults.WriteTimeout)
	orDefault(&o.Heartbeat, defaults.Heartbeat)
	orDefault(&o.SSEWriter, defaults.SSEWriter)
	orDefault(&o.BodyTimeout, defaults.BodyTimeout)
	orDefault(&o.Services, defaults.Services)
	orDefault(&o.Auth, defaults.Auth)
	orDefault(&o.PublishBurst, defaults.PublishBurst)
}

// orDefault sets *p to def if it is zero.
func orDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// checkModes refuses modes it does not know.
func (o *Options) checkModes() error {
	switch o.Auth {
	case AuthOff, AuthJWT:
	default:
		return fmt.Errorf("auth %q is not one of off, jwt", o.Auth)
	}
	switch o.SSEWriter {
	case SSEWriterLoop, SSEWriterHandler:
	default:
		return fmt.Errorf("SSE writer %q is not one of loop, handler", o.SSEWriter)
	}
	switch o.Services {
	case ServicesAuto, ServicesOff:
	case ServicesInProcess:
		if o.StartServices == nil {
			return errors.New("services in-process: no StartServices to run them with")
		}
	default:
		return fmt.Errorf("services %q is not one of auto, in-process, off", o.Services)
	}
	return nil
}

// defaultMaxConns is the process's open-file limit (Go raises the soft
// limit to the hard one at start) less defaults.ReservedFiles (NATS
// connections, an embedded node's clients, routes and JetStream files), and at least 64;
// 0 (no limit) if the limit is unknown or unlimited.
func defaultMaxConns() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur > 1<<30 {
		return 0
	}
	return max(int(lim.Cur)-defaults.ReservedFiles, 64)
}
