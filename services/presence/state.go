package presence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

// State is who is online in which room, built from gateway reports. It is
// not safe for concurrent use; Service guards it.
type State struct {
	gateways map[string]*gatewayState
	rooms    map[string]map[string]int // room → user → open connections
	// step counts the reports and expiries applied; events carry the step
	// they happened at.
	step uint64
	// missed is the last step at which a gateway's first complete state
	// showed listeners this State had not known of: until then its view
	// was incomplete, and events it derived may be wrong.
	missed uint64
}

// Event is a presence change with the id every replica derives for it from
// the same reports, so that the copies the replicas publish collapse into
// one (the id becomes the JetStream message id).
type Event struct {
	broker.PresenceEvent
	ID string
	// Step is the State's step when it happened.
	Step uint64
}

type gatewayState struct {
	name     string
	conns    map[string]broker.PresenceConn // by connection id
	lastSeen time.Time
	// complete is set once a whole state report of the gateway arrived.
	complete bool
	// lastState is the id of the last whole state report applied.
	lastState string
	// pending gathers the chunks of a state report until all have come.
	pending *pendingState
}

// pendingState is a chunked state report being put together.
type pendingState struct {
	report string
	chunks int
	got    map[int]bool
	conns  []broker.PresenceConn
}

// maxMeta bounds a connection's metadata (a Mercure subscription); a
// connection with more is not tracked.
const maxMeta = 16 << 10

// maxChunks bounds the chunks of one state report a replica will gather:
// far more than a gateway holding millions of listeners sends.
const maxChunks = 100000

// NewState returns an empty State.
func NewState() *State {
	return &State{gateways: map[string]*gatewayState{}, rooms: map[string]map[string]int{}}
}

// Apply takes a gateway's report, seen at now, and returns the presence
// changes it causes: a user joins a room with their first connection to it
// and leaves with their last, whichever gateways those are on.
func (s *State) Apply(r broker.PresenceReport, now time.Time) []Event {
	if r.Gateway == "" {
		return nil
	}
	s.step++
	g := s.gateways[r.Gateway]
	if g == nil {
		g = &gatewayState{name: r.Gateway, conns: map[string]broker.PresenceConn{}}
		s.gateways[r.Gateway] = g
	}
	g.lastSeen = now
	var events []Event
	switch r.Type {
	case broker.ReportJoin:
		if r.Conn != nil {
			events = s.add(g, *r.Conn, "", events)
		}
	case broker.ReportLeave:
		if r.Conn != nil {
			events = s.remove(g, r.Conn.ID, "", events)
		}
	case broker.ReportState:
		if conns, ok := g.gather(r); ok {
			events = s.replace(g, conns, r.Report, events)
		}
	case broker.ReportGoodbye:
		events = s.drop(r.Gateway, events)
	}
	return events
}

// gather takes one message of a state report and returns the whole state
// once every chunk of the report has arrived. A gateway sends the chunks of
// a report one after the other, so a chunk of another report means the
// one being gathered lost a chunk: it is dropped, never applied in part,
// since a partial state would remove the listeners of the missing chunks.
func (g *gatewayState) gather(r broker.PresenceReport) ([]broker.PresenceConn, bool) {
	if r.Chunks <= 1 {
		g.pending = nil
		return r.Conns, true
	}
	if r.Chunks > maxChunks || r.Chunk < 0 || r.Chunk >= r.Chunks || r.Report == "" {
		return nil, false
	}
	p := g.pending
	if p == nil || p.report != r.Report || p.chunks != r.Chunks {
		p = &pendingState{report: r.Report, chunks: r.Chunks, got: map[int]bool{}}
		g.pending = p
	}
	if p.got[r.Chunk] {
		return nil, false // a repeated chunk
	}
	p.got[r.Chunk] = true
	p.conns = append(p.conns, r.Conns...)
	if len(p.got) < p.chunks {
		return nil, false
	}
	g.pending = nil
	return p.conns, true
}

// replace makes conns, the state report report, the gateway's whole state.
func (s *State) replace(g *gatewayState, conns []broker.PresenceConn, report string, events []Event) []Event {
	want := make(map[string]broker.PresenceConn, len(conns))
	for _, c := range conns {
		want[c.ID] = c
	}
	if !g.complete {
		// The first whole state: listeners in it that no join told of
		// were there before this replica listened.
		g.complete = true
		for id := range want {
			if _, ok := g.conns[id]; !ok {
				s.missed = s.step
				break
			}
		}
	}
	g.lastState = report
	cause := "state:" + report
	var gone []string
	for id, c := range g.conns {
		if w, ok := want[id]; !ok || w.Room != c.Room || w.User != c.User || !bytes.Equal(w.Meta, c.Meta) {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone) // every replica names the same connection as the last
	for _, id := range gone {
		events = s.remove(g, id, cause, events)
	}
	for _, c := range conns {
		events = s.add(g, c, cause, events)
	}
	return events
}

// Expire drops the gateways not heard from since before now-ttl (they died
// without a goodbye) and returns the leaves that causes.
func (s *State) Expire(now time.Time, ttl time.Duration) []Event {
	s.step++
	var events []Event
	var dead []string
	for name, g := range s.gateways {
		if now.Sub(g.lastSeen) > ttl {
			dead = append(dead, name)
		}
	}
	slices.Sort(dead)
	for _, name := range dead {
		events = s.drop(name, events)
	}
	return events
}

// Settle marks the state as complete as of now for events: a gateway that
// has not sent a whole state yet may hold listeners unknown here, so
// events up to now are uncertain. A replica calls it when its warm-up
// ends.
func (s *State) Settle() {
	for _, g := range s.gateways {
		if !g.complete {
			s.missed = s.step
		}
	}
}

// Certain reports whether e was derived from a complete view: after every
// gateway known had been heard in full.
func (s *State) Certain(e Event) bool { return e.Step > s.missed }

func (s *State) drop(gateway string, events []Event) []Event {
	g := s.gateways[gateway]
	if g == nil {
		return events
	}
	ids := make([]string, 0, len(g.conns))
	for id := range g.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	cause := "drop:" + g.lastState
	for _, id := range ids {
		events = s.remove(g, id, cause, events)
	}
	delete(s.gateways, gateway)
	return events
}

func (s *State) add(g *gatewayState, c broker.PresenceConn, cause string, events []Event) []Event {
	if c.ID == "" || !broker.ValidPresenceRoom(c.Room) || c.User == "" || broker.ValidateUser(c.User) != nil || len(c.Meta) > maxMeta {
		return events
	}
	if _, ok := g.conns[c.ID]; ok {
		return events
	}
	g.conns[c.ID] = c
	users := s.rooms[c.Room]
	if users == nil {
		users = map[string]int{}
		s.rooms[c.Room] = users
	}
	users[c.User]++
	if users[c.User] == 1 {
		events = append(events, s.event("join", c, g.name, cause))
	}
	return events
}

func (s *State) remove(g *gatewayState, id, cause string, events []Event) []Event {
	c, ok := g.conns[id]
	if !ok {
		return events
	}
	delete(g.conns, id)
	users := s.rooms[c.Room]
	users[c.User]--
	if users[c.User] <= 0 {
		delete(users, c.User)
		if len(users) == 0 {
			delete(s.rooms, c.Room)
		}
		events = append(events, s.event("leave", c, g.name, cause))
	}
	return events
}

// event is a join or leave of c's user caused by c (its first or last
// connection to the room) and the report cause ("" for c's own join or
// leave report). The id is a digest of all of them: the same on every
// replica that applied the same reports, and new for every real change,
// since connection ids are never reused.
func (s *State) event(typ string, c broker.PresenceConn, gateway, cause string) Event {
	h := sha256.New()
	for _, part := range []string{typ, c.Room, c.User, gateway, c.ID, cause} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return Event{
		PresenceEvent: broker.PresenceEvent{Type: typ, User: c.User, Room: c.Room, Meta: c.Meta},
		ID:            hex.EncodeToString(h.Sum(nil)[:16]),
		Step:          s.step,
	}
}

// Members returns the users in room with their connection counts, sorted
// by user name.
func (s *State) Members(room string) []broker.Member {
	users := s.rooms[room]
	out := make([]broker.Member, 0, len(users))
	for u, n := range users {
		out = append(out, broker.Member{User: u, Connections: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Counts returns the number of users in each of rooms that has any, or in
// every room that has any when rooms is empty.
func (s *State) Counts(rooms []string) map[string]int {
	if len(rooms) > 0 {
		out := make(map[string]int, len(rooms))
		for _, room := range rooms {
			if n := len(s.rooms[room]); n > 0 {
				out[room] = n
			}
		}
		return out
	}
	out := make(map[string]int, len(s.rooms))
	for room, users := range s.rooms {
		if room != broker.MercurePresenceRoom { // not a chat room
			out[room] = len(users)
		}
	}
	return out
}
