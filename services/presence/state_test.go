package presence

import (
	"reflect"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
)

func conn(id, room, user string) *broker.PresenceConn {
	return &broker.PresenceConn{ID: id, Room: room, User: user}
}

func ev(typ, user, room string) broker.PresenceEvent {
	return broker.PresenceEvent{Type: typ, User: user, Room: room}
}

// plain drops the ids and steps of events.
func plain(events []Event) []broker.PresenceEvent {
	var out []broker.PresenceEvent
	for _, e := range events {
		out = append(out, e.PresenceEvent)
	}
	return out
}

func TestStateJoinsAndLeaves(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState()
	steps := []struct {
		name   string
		report broker.PresenceReport
		want   []broker.PresenceEvent
	}{
		{"first tab joins", broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c1", "lobby", "ana")}, []broker.PresenceEvent{ev("join", "ana", "lobby")}},
		{"second tab on another gateway is no new member", broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: conn("c1", "lobby", "ana")}, nil},
		{"a repeated join is ignored", broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: conn("c1", "lobby", "ana")}, nil},
		{"another user", broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: conn("c2", "lobby", "bo")}, []broker.PresenceEvent{ev("join", "bo", "lobby")}},
		{"first tab closes: still a member", broker.PresenceReport{Type: "leave", Gateway: "gw1", Conn: conn("c1", "", "")}, nil},
		{"an unknown leave is ignored", broker.PresenceReport{Type: "leave", Gateway: "gw1", Conn: conn("zz", "", "")}, nil},
		{"last tab closes", broker.PresenceReport{Type: "leave", Gateway: "gw2", Conn: conn("c1", "", "")}, []broker.PresenceEvent{ev("leave", "ana", "lobby")}},
		{"invalid room is ignored", broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: conn("c3", "a.b", "cy")}, nil},
	}
	for _, st := range steps {
		if got := plain(s.Apply(st.report, now)); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: events %v, want %v", st.name, got, st.want)
		}
	}
	if got, want := s.Members("lobby"), []broker.Member{{User: "bo", Connections: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if got := s.Counts(nil); !reflect.DeepEqual(got, map[string]int{"lobby": 1}) {
		t.Errorf("counts %v", got)
	}
	if got := s.Counts([]string{"lobby", "empty"}); !reflect.DeepEqual(got, map[string]int{"lobby": 1}) {
		t.Errorf("counts of lobby and empty %v", got)
	}
}

func TestStateSnapshotReplacesAGatewaysConnections(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState()
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c1", "lobby", "ana")}, now)
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c2", "dev", "bo")}, now)
	got := plain(s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1", Conns: []broker.PresenceConn{
		*conn("c1", "lobby", "ana"), *conn("c3", "dev", "cy"),
	}}, now))
	want := []broker.PresenceEvent{ev("leave", "bo", "dev"), ev("join", "cy", "dev")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot events %v, want %v", got, want)
	}
	if got := s.Apply(broker.PresenceReport{Type: "goodbye", Gateway: "gw1"}, now); len(got) != 2 {
		t.Fatalf("goodbye events %v, want two leaves", got)
	}
	if len(s.Counts(nil)) != 0 {
		t.Errorf("counts after goodbye %v", s.Counts(nil))
	}
}

func TestStateExpiresSilentGateways(t *testing.T) {
	start := time.Unix(1000, 0)
	s := NewState()
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "dead", Conn: conn("c1", "lobby", "ana")}, start)
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "alive", Conn: conn("c1", "lobby", "bo")}, start)
	s.Apply(broker.PresenceReport{Type: "state", Gateway: "alive", Conns: []broker.PresenceConn{*conn("c1", "lobby", "bo")}}, start.Add(10*time.Second))
	if got := plain(s.Expire(start.Add(11*time.Second), 12*time.Second)); got != nil {
		t.Fatalf("expired too early: %v", got)
	}
	got := plain(s.Expire(start.Add(13*time.Second), 12*time.Second))
	if !reflect.DeepEqual(got, []broker.PresenceEvent{ev("leave", "ana", "lobby")}) {
		t.Fatalf("expiry events %v", got)
	}
	if got := plain(s.Expire(start.Add(14*time.Second), 12*time.Second)); got != nil {
		t.Fatalf("a second expiry announced again: %v", got)
	}
}

// A chunked state replaces the gateway's connections only once every chunk
// of one report has come: a report missing a chunk changes nothing, so no
// member leaves because its chunk was lost.
func TestStateChunkedReports(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState()
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c1", "lobby", "ana")}, now)
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c2", "dev", "bo")}, now)
	chunk := func(report string, i, n int, conns ...*broker.PresenceConn) broker.PresenceReport {
		r := broker.PresenceReport{Type: "state", Gateway: "gw1", Report: report, Chunk: i, Chunks: n}
		for _, c := range conns {
			r.Conns = append(r.Conns, *c)
		}
		return r
	}
	steps := []struct {
		name   string
		report broker.PresenceReport
		want   []broker.PresenceEvent
	}{
		{"first chunk of r1", chunk("r1", 0, 3, conn("c1", "lobby", "ana")), nil},
		{"third chunk of r1, the second is lost", chunk("r1", 2, 3, conn("c3", "dev", "cy")), nil},
		{"first chunk of r2 drops r1", chunk("r2", 0, 2, conn("c1", "lobby", "ana")), nil},
		{"a repeated chunk is ignored", chunk("r2", 0, 2, conn("c1", "lobby", "ana")), nil},
		{"an out-of-range chunk is ignored", chunk("r2", 2, 2, conn("c9", "lobby", "zed")), nil},
		{"the last chunk of r2 applies it", chunk("r2", 1, 2, conn("c3", "dev", "cy")), []broker.PresenceEvent{ev("leave", "bo", "dev"), ev("join", "cy", "dev")}},
		{"a late chunk of r1 starts over and changes nothing", chunk("r1", 1, 3), nil},
	}
	for _, st := range steps {
		if got := plain(s.Apply(st.report, now)); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: events %v, want %v", st.name, got, st.want)
		}
	}
	if got, want := s.Counts(nil), map[string]int{"lobby": 1, "dev": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	// A single-message state (Chunks 0) still replaces at once.
	if got := s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1"}, now); len(got) != 2 {
		t.Errorf("empty state: events %v, want two leaves", got)
	}
}

// Replicas that apply the same reports derive the same event ids, even
// where they iterate maps in different orders; a user who comes back
// gets new ids.
func TestStateEventIDs(t *testing.T) {
	now := time.Unix(1000, 0)
	reports := []broker.PresenceReport{
		{Type: "state", Gateway: "gw1", Report: "s1"},
		{Type: "join", Gateway: "gw1", Conn: conn("c1", "lobby", "ana")},
		{Type: "join", Gateway: "gw1", Conn: conn("c2", "lobby", "ana")},
		{Type: "join", Gateway: "gw1", Conn: conn("c3", "lobby", "ana")},
		{Type: "join", Gateway: "gw2", Conn: conn("c1", "lobby", "bo")},
		{Type: "goodbye", Gateway: "gw1"},
		{Type: "state", Gateway: "gw1", Report: "s2", Conns: []broker.PresenceConn{*conn("c1", "lobby", "ana")}},
		{Type: "leave", Gateway: "gw2", Conn: conn("c1", "", "")},
	}
	var first []Event
	for range 20 {
		s := NewState()
		var got []Event
		for _, r := range reports {
			got = append(got, s.Apply(r, now)...)
		}
		got = append(got, s.Expire(now.Add(time.Hour), time.Minute)...)
		if first == nil {
			first = got
			continue
		}
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("another replica derived\n%v\nnot\n%v", got, first)
		}
	}
	want := []broker.PresenceEvent{
		ev("join", "ana", "lobby"), ev("join", "bo", "lobby"), ev("leave", "ana", "lobby"),
		ev("join", "ana", "lobby"), ev("leave", "bo", "lobby"), ev("leave", "ana", "lobby"),
	}
	if got := plain(first); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	ids := map[string]bool{}
	for _, e := range first {
		if ids[e.ID] {
			t.Errorf("id %s given twice", e.ID)
		}
		ids[e.ID] = true
	}
}

// An event is certain once every gateway has been heard in full: a
// replica that started while a gateway held listeners takes an old member
// for a new one until that gateway's state arrives.
func TestStateCertainty(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState()
	// gw1 is new: its first state tells nothing unknown.
	s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1", Report: "a"}, now)
	early := s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: conn("c9", "lobby", "ana")}, now)
	joinBo := s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c1", "lobby", "bo")}, now)
	s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1", Report: "b", Conns: []broker.PresenceConn{*conn("c1", "lobby", "bo")}}, now)
	if !s.Certain(early[0]) || !s.Certain(joinBo[0]) {
		t.Fatal("a gateway whose state holds only known listeners made events uncertain")
	}
	// gw2 was there before: its first state shows ana's older tab.
	s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw2", Report: "x", Conns: []broker.PresenceConn{
		*conn("c1", "lobby", "ana"), *conn("c9", "lobby", "ana"),
	}}, now)
	if s.Certain(early[0]) {
		t.Error("ana's join, seen before gw2's state showed her older tab, is certain")
	}
	later := s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c2", "lobby", "cy")}, now)
	if !s.Certain(later[0]) {
		t.Error("a join after every gateway was heard in full is uncertain")
	}
	// A gateway known only from a join when the warm-up ends.
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw3", Conn: conn("c1", "dev", "dee")}, now)
	s.Settle()
	if s.Certain(later[0]) {
		t.Error("events before a gateway was heard in full stay certain after Settle")
	}
}

// Mercure subscribers are members of broker.MercurePresenceRoom, their
// subscription carried as metadata on both their join and their leave,
// including the leave of a gateway that died; the room is no chat room,
// so it is not counted among the rooms.
func TestStateMercureSubscribers(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState()
	meta := []byte(`{"topics":["https://example.com/books/{id}"],"payload":{"user":"ana"}}`)
	sub := &broker.PresenceConn{ID: "c1", Room: broker.MercurePresenceRoom, User: "urn:uuid:2dc7611d-4be4-47a6-beb8-ba433b1049de", Meta: meta}
	want := broker.PresenceEvent{Type: "join", User: sub.User, Room: broker.MercurePresenceRoom, Meta: meta}
	if got := plain(s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: sub}, now)); !reflect.DeepEqual(got, []broker.PresenceEvent{want}) {
		t.Fatalf("join = %v", got)
	}
	s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw1", Conn: conn("c2", "lobby", "ana")}, now)
	if got := s.Counts(nil); !reflect.DeepEqual(got, map[string]int{"lobby": 1}) {
		t.Errorf("counts %v: the Mercure subscribers are no chat room", got)
	}
	// A state report holding the same subscription changes nothing.
	if got := s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1", Conns: []broker.PresenceConn{*sub, *conn("c2", "lobby", "ana")}}, now); len(got) != 0 {
		t.Errorf("an unchanged state: %v", plain(got))
	}
	// The gateway dies: its subscriber leaves, with its subscription.
	want.Type = "leave"
	got := plain(s.Expire(now.Add(time.Minute), broker.PresenceExpiry))
	if len(got) != 2 || !reflect.DeepEqual(got[0], want) && !reflect.DeepEqual(got[1], want) {
		t.Fatalf("expiry = %v, want the subscriber's leave with its metadata", got)
	}
	// Metadata too large is not tracked.
	big := &broker.PresenceConn{ID: "c3", Room: broker.MercurePresenceRoom, User: "urn:uuid:x", Meta: make([]byte, 17<<10)}
	if got := s.Apply(broker.PresenceReport{Type: "join", Gateway: "gw2", Conn: big}, now); len(got) != 0 {
		t.Errorf("a join with %d bytes of metadata: %v", len(big.Meta), plain(got))
	}
}
