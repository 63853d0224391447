// Package report tells the presence service which listeners this gateway
// holds: a report when one joins or leaves a room, and the whole list every
// broker.PresenceHeartbeat, so the service can repair anything it missed
// and can tell when this gateway has died.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	mu      sync.Mutex
	conns   map[string]broker.PresenceConn
	next    uint64
	reports uint64 // state reports sent, for their ids
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
func (r *Reporter) Join(room, user string) string { return r.JoinMeta(room, user, nil) }

// JoinMeta is Join for a listener with metadata (a Mercure subscriber's
// subscription, in broker.MercurePresenceRoom).
func (r *Reporter) JoinMeta(room, user string, meta json.RawMessage) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	c := broker.PresenceConn{ID: r.prefix + strconv.FormatUint(r.next, 36), Room: room, User: user, Meta: meta}
	r.conns[c.ID] = c
	r.send(broker.PresenceReport{Type: broker.ReportJoin, Gateway: r.gateway, Conn: &c})
	return c.ID
}

// Leave reports that the listener id has gone.
func (r *Reporter) Leave(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[id]; ok {
		delete(r.conns, id)
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
		defer func() { _ = syncSub.Unsubscribe() }()
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

// sendState reports every listener, in as many chunks as the server's
// maximum payload requires. r.mu is held while the state is read and sent,
// so no join or leave goes out between its chunks or before a state that
// does not include it yet.
func (r *Reporter) sendState() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports++
	msgs, err := stateChunks(r.gateway, r.prefix+"s"+strconv.FormatUint(r.reports, 36), r.conns, chunkBudget(r.nc.MaxPayload()))
	if err != nil {
		r.log.Warn("presence report", "type", broker.ReportState, "err", err)
		return
	}
	for _, data := range msgs {
		if err := r.nc.Publish(r.subject, data); err != nil {
			if r.nc.IsConnected() {
				r.log.Warn("presence report", "type", broker.ReportState, "chunks", len(msgs), "err", err)
			}
			return
		}
	}
}

// Chunk sizes: a chunk of a state report fills at most half the server's
// maximum payload (DefaultChunkBytes when the server has not said), so the
// headers and any limit a route adds leave a wide margin.
const (
	DefaultChunkBytes = 256 << 10
	minChunkBytes     = 4 << 10
)

func chunkBudget(maxPayload int64) int {
	if maxPayload <= 0 {
		return DefaultChunkBytes
	}
	return max(int(maxPayload/2), minChunkBytes)
}

// stateChunks encodes the state report of conns as messages of at most
// budget bytes each (a single connection longer than that still gets a
// message of its own), all carrying the report id and their index.
func stateChunks(gateway, report string, conns map[string]broker.PresenceConn, budget int) ([][]byte, error) {
	var groups [][][]byte
	var group [][]byte
	size := 0
	// Room for the envelope: type, gateway name, report id and indexes.
	overhead := 128 + 2*len(gateway) + len(report)
	for _, c := range conns {
		data, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode connection %s: %w", c.ID, err)
		}
		if len(group) > 0 && overhead+size+len(data)+1 > budget {
			groups = append(groups, group)
			group, size = nil, 0
		}
		group = append(group, data)
		size += len(data) + 1
	}
	groups = append(groups, group) // an empty state is one empty chunk
	msgs := make([][]byte, 0, len(groups))
	for i, g := range groups {
		head, err := json.Marshal(broker.PresenceReport{
			Type: broker.ReportState, Gateway: gateway, Report: report, Chunk: i, Chunks: len(groups),
		})
		if err != nil {
			return nil, fmt.Errorf("encode state report: %w", err)
		}
		var b bytes.Buffer
		b.Write(head[:len(head)-1]) // without its closing brace
		b.WriteString(`,"conns":[`)
		for j, c := range g {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(c)
		}
		b.WriteString("]}")
		msgs = append(msgs, b.Bytes())
	}
	return msgs, nil
}

func (r *Reporter) send(rep broker.PresenceReport) {
	data, _ := json.Marshal(rep)
	if err := r.nc.Publish(r.subject, data); err != nil && r.nc.IsConnected() {
		r.log.Warn("presence report", "type", rep.Type, "err", err)
	}
}
