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
		if got := s.Apply(st.report, now); !reflect.DeepEqual(got, st.want) {
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
	got := s.Apply(broker.PresenceReport{Type: "state", Gateway: "gw1", Conns: []broker.PresenceConn{
		*conn("c1", "lobby", "ana"), *conn("c3", "dev", "cy"),
	}}, now)
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
	if got := s.Expire(start.Add(11*time.Second), 12*time.Second); got != nil {
		t.Fatalf("expired too early: %v", got)
	}
	got := s.Expire(start.Add(13*time.Second), 12*time.Second)
	if !reflect.DeepEqual(got, []broker.PresenceEvent{ev("leave", "ana", "lobby")}) {
		t.Fatalf("expiry events %v", got)
	}
	if got := s.Expire(start.Add(14*time.Second), 12*time.Second); got != nil {
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
		if got := s.Apply(st.report, now); !reflect.DeepEqual(got, st.want) {
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
