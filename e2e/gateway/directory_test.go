package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/nats-io/nats.go/jetstream"
)

type roomInfo struct {
	Room         string
	Messages     uint64
	LastActivity *time.Time `json:"last_activity"`
	Members      *int
	Topic        string
}

func TestRoomsDirectory(t *testing.T) {
	g := startGateway(t, "gw-dir", "", fastPresence)
	postJSON(t, g.URL(), "beta", "bo", "b1")
	for i := range 3 {
		postJSON(t, g.URL(), "alpha", "ana", fmt.Sprintf("a%d", i))
	}
	ssetest.Open(t, g.URL()+"/rooms/alpha/events?user=ana", nil)

	var rooms []roomInfo
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		r := do(t, http.MethodGet, g.URL()+"/rooms", "", nil, nil)
		var reply struct{ Rooms []roomInfo }
		if err := json.Unmarshal(r.body, &reply); r.status != http.StatusOK || err != nil {
			return fmt.Errorf("GET /rooms: %d %s", r.status, r.body)
		}
		rooms = reply.Rooms
		if len(rooms) != 2 || rooms[0].Members == nil || *rooms[0].Members != 1 {
			return fmt.Errorf("rooms %s", r.body)
		}
		return nil
	})
	if rooms[0].Room != "alpha" || rooms[0].Messages != 3 || rooms[0].LastActivity == nil ||
		rooms[1].Room != "beta" || rooms[1].Messages != 1 {
		t.Fatalf("directory %+v; want alpha (3 messages, 1 member) before beta (1 message)", rooms)
	}

	put := func(room, ctype, body string) response {
		return do(t, http.MethodPut, g.URL()+"/rooms/"+room, ctype, strings.NewReader(body), nil)
	}
	if r := put("alpha", "application/json", `{"topic":"All about A"}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"topic":"All about A"`) {
		t.Fatalf("set topic: %d %s", r.status, r.body)
	}
	if r := put("gamma", "application/json", `{"topic":"Not used yet"}`); r.status != http.StatusOK {
		t.Fatalf("topic of a new room: %d %s", r.status, r.body)
	}
	r := do(t, http.MethodGet, g.URL()+"/rooms", "", nil, nil)
	if !strings.Contains(string(r.body), `"topic":"All about A"`) || !strings.Contains(string(r.body), `"room":"gamma"`) {
		t.Errorf("directory after topics: %s", r.body)
	}
	if r := do(t, http.MethodGet, g.URL()+"/rooms/alpha", "", nil, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"messages":3`) {
		t.Errorf("GET /rooms/alpha: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		name, room, ctype, body string
		status                  int
	}{
		{"topic over 200 characters", "alpha", "application/json", `{"topic":"` + strings.Repeat("t", 201) + `"}`, 400},
		{"topic with a newline", "alpha", "application/json", `{"topic":"two\nlines"}`, 400},
		{"topic with a control character", "alpha", "application/json", `{"topic":"bell\u0007"}`, 400},
		{"no topic field", "alpha", "application/json", `{}`, 400},
		{"invalid room", "a.b", "application/json", `{"topic":"x"}`, 400},
		{"wrong content type", "alpha", "text/plain", `x`, 415},
	} {
		if r := put(c.room, c.ctype, c.body); r.status != c.status || r.errorCode() == "" {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	if r := do(t, http.MethodGet, g.URL()+"/rooms/alpha", "", nil, nil); !strings.Contains(string(r.body), `"topic":"All about A"`) {
		t.Errorf("a rejected topic changed the room: %s", r.body)
	}
}

// TestDirectoryPagesTwentyThousandRooms: a directory far over one NATS
// message is listed whole, once each room, by following the pages of
// GET /rooms.
func TestDirectoryPagesTwentyThousandRooms(t *testing.T) {
	const rooms = 20000
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-dir-big", node.ClientURL(), func(o *gateway.Options) { o.Services = "in-process" })
	nc := nodetest.Connect(t, node.ClientURL())
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	// Batches well under the limit of pending acknowledgements, so a
	// slow machine never stalls the publisher.
	deadline := time.After(30 * time.Second)
	for i := range rooms {
		if _, err := js.PublishAsync(broker.RoomSubject(fmt.Sprintf("a-room-with-a-rather-long-name-%05d", i)), []byte("hi")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if (i+1)%1000 == 0 || i == rooms-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-deadline:
				t.Fatalf("%d publishes still pending", js.PublishAsyncPending())
			}
		}
	}

	get := func(query string) (page struct {
		Rooms []roomInfo
		Next  string
	}) {
		t.Helper()
		r := do(t, http.MethodGet, g.URL()+"/rooms"+query, "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /rooms%s: %d %s", query, r.status, r.body)
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		return page
	}
	// Listing 20,000 rooms the first time reads the newest message of
	// each (multi-subject batch gets); under the race detector on a busy
	// machine that can outlast the gateway's 2 s wait for a service, and
	// the first request gets a 503 while the rooms service finishes and
	// keeps the result. Every request after that is served from it.
	nodetest.CheckFor(t, wait, 200*time.Millisecond, func() error {
		if r := do(t, http.MethodGet, g.URL()+"/rooms", "", nil, nil); r.status != http.StatusOK {
			return fmt.Errorf("GET /rooms: %d %s", r.status, r.body)
		}
		return nil
	})
	if first := get(""); len(first.Rooms) != 100 || first.Next == "" {
		t.Fatalf("the first page: %d rooms, next %q; want 100 and a cursor", len(first.Rooms), first.Next)
	}
	seen := map[string]bool{}
	start := time.Now()
	query, pages := "?limit=1000", 0
	for ; ; pages++ {
		if pages > rooms/1000+5 {
			t.Fatalf("still paging after %d pages", pages)
		}
		page := get(query)
		for _, r := range page.Rooms {
			if seen[r.Room] {
				t.Fatalf("%s listed twice", r.Room)
			}
			seen[r.Room] = true
		}
		if page.Next == "" {
			break
		}
		query = "?limit=1000&after=" + url.QueryEscape(page.Next)
	}
	t.Logf("%d rooms in %d pages in %s", len(seen), pages+1, time.Since(start).Round(time.Millisecond))
	if len(seen) != rooms {
		t.Fatalf("%d rooms listed, want %d", len(seen), rooms)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x"} {
		if r := do(t, http.MethodGet, g.URL()+"/rooms"+q, "", nil, nil); r.status != http.StatusBadRequest || r.errorCode() != "invalid_limit" {
			t.Errorf("GET /rooms%s: %d %s", q, r.status, r.body)
		}
	}
	if r := do(t, http.MethodGet, g.URL()+"/rooms?after=nope", "", nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("GET /rooms?after=nope: %d %s", r.status, r.body)
	}
}
