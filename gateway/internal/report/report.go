// Package report tells the presence service which listeners this gateway
// holds: a report when one joins or leaves a room, and the whole list every
// broker.PresenceHeartbeat, so the service can repair anything it missed
// and can tell when this gateway has died.
package report

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go"
)

// Reporter reports one gateway's listeners.
type Reporter struct {
	nc      *nats.Conn
	gateway string
	subject string
	prefix  string
	log     *slog.Logger

	mu    sync.Mutex
	conns map[string]broker.PresenceConn
	next  uint64
}

// New returns a Reporter for the gateway named gateway.
func New(nc *nats.Conn, gateway string, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{
		nc:      nc,
		gateway: gateway,
		subject: broker.PresenceReportPrefix + subjectToken(gateway),
		// Connection ids are unique across restarts of the same gateway.
		prefix: strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		log:    log,
		conns:  map[string]broker.PresenceConn{},
	}
}

// subjectToken makes a gateway name safe as one subject token.
func subjectToken(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
}

// Join reports a listener of room as user and returns its connection id.
func (r *Reporter) Join(room, user string) string {
	r.mu.Lock()
	r.next++
	c := broker.PresenceConn{ID: r.prefix + strconv.FormatUint(r.next, 36), Room: room, User: user}
	r.conns[c.ID] = c
	r.mu.Unlock()
	r.send(broker.PresenceReport{Type: broker.ReportJoin, Gateway: r.gateway, Conn: &c})
	return c.ID
}

// Leave reports that the listener id has gone.
func (r *Reporter) Leave(id string) {
	r.mu.Lock()
	c, ok := r.conns[id]
	delete(r.conns, id)
	r.mu.Unlock()
	if ok {
		r.send(broker.PresenceReport{Type: broker.ReportLeave, Gateway: r.gateway, Conn: &c})
	}
}

// Run reports the whole state every broker.PresenceHeartbeat until ctx
// ends, then says goodbye.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(broker.PresenceHeartbeat)
	defer t.Stop()
	// A presence replica that starts asks for everyone's state at once.
	syncSub, err := r.nc.Subscribe(broker.PresenceSyncSubject, func(*nats.Msg) { r.sendState() })
	if err != nil {
		r.log.Warn("presence sync", "err", err)
	} else {
		defer syncSub.Unsubscribe()
	}
	r.sendState()
	for {
		select {
		case <-ctx.Done():
			r.send(broker.PresenceReport{Type: broker.ReportGoodbye, Gateway: r.gateway})
			return
		case <-t.C:
			r.sendState()
		}
	}
}

func (r *Reporter) sendState() {
	r.mu.Lock()
	conns := make([]broker.PresenceConn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	r.send(broker.PresenceReport{Type: broker.ReportState, Gateway: r.gateway, Conns: conns})
}

func (r *Reporter) send(rep broker.PresenceReport) {
	data, _ := json.Marshal(rep)
	if err := r.nc.Publish(r.subject, data); err != nil && r.nc.IsConnected() {
		r.log.Warn("presence report", "type", rep.Type, "err", err)
	}
}
