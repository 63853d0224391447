package rooms_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// publishRooms stores one message in each of n rooms named
// <prefix>-00000…, with asynchronous JetStream publishes.
func (e *env) publishRooms(t *testing.T, prefix string, n int) {
	t.Helper()
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	// Batches well under the limit of pending acknowledgements, so a
	// slow machine never stalls the publisher.
	deadline := time.After(30 * time.Second)
	for i := range n {
		if _, err := js.PublishAsync(broker.RoomSubject(fmt.Sprintf("%s-%05d", prefix, i)), []byte("hi")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if (i+1)%1000 == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-deadline:
				t.Fatalf("%d publishes still pending", js.PublishAsyncPending())
			}
		}
	}
}

// walk lists the directory page by page with limit and returns the rooms
// in order and the number of pages.
func walk(t *testing.T, nc *nats.Conn, limit int) ([]broker.RoomInfo, int) {
	t.Helper()
	var all []broker.RoomInfo
	req := broker.RoomsListRequest{Limit: limit}
	for pages := 1; ; pages++ {
		msg := request(t, nc, broker.RoomsListSubject, req)
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("page %d: error %s %s", pages, code, msg.Header.Get(micro.ErrorHeader))
		}
		if max := int(nc.MaxPayload()); len(msg.Data) > max*3/4 {
			t.Fatalf("page %d is %d bytes; the server takes %d", pages, len(msg.Data), max)
		}
		var page broker.RoomsReply
		if err := json.Unmarshal(msg.Data, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Rooms) > limit || len(page.Rooms) == 0 && page.Next != "" {
			t.Fatalf("page %d: %d rooms, next %q (limit %d)", pages, len(page.Rooms), page.Next, limit)
		}
		all = append(all, page.Rooms...)
		if page.Next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatal("the pages do not end")
		}
		req.After = page.Next
	}
}

// TestListPages: the directory comes in pages that keep its order, list
// every room once, and stay under the payload limit even when long topics
// make fewer rooms fit than were asked for.
func TestListPages(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.publishRooms(t, "room", 250)
	// Topics only: listed after every room with messages, by name. Their
	// escaped topics make 1000 of them over half a megabyte.
	topic := strings.Repeat("<", broker.MaxTopicLen)
	for i := range 1000 {
		setTopic(t, e.nc, fmt.Sprintf("topic-%04d", i), topic)
	}
	e.publish(t, "room-00007", "again") // the most recently active

	if got := list(t, e.nc); len(got) != broker.DefaultRoomsPage || got[0].Room != "room-00007" {
		t.Fatalf("the first page has %d rooms, first %v", len(got), names(got)[:1])
	}
	all, pages := walk(t, e.nc, broker.MaxRoomsPage)
	if len(all) != 1250 || pages < 3 {
		t.Fatalf("%d rooms in %d pages, want 1250 in 3 or more", len(all), pages)
	}
	seen := map[string]bool{}
	for i, r := range all {
		if seen[r.Room] {
			t.Fatalf("%s listed twice", r.Room)
		}
		seen[r.Room] = true
		switch {
		case i == 0 && r.Room != "room-00007":
			t.Fatalf("first room %s, want room-00007", r.Room)
		case i > 0 && i < 250 && (r.LastActivity == nil || r.LastActivity.After(*all[i-1].LastActivity)):
			t.Fatalf("room %d, %s, is out of order", i, r.Room)
		case i >= 250 && r.Room != fmt.Sprintf("topic-%04d", i-250):
			t.Fatalf("room %d is %s, want topic-%04d", i, r.Room, i-250)
		}
	}
	small, pages := walk(t, e.nc, 7)
	if !reflect.DeepEqual(names(small), names(all)) || pages != 1250/7+1 {
		t.Errorf("pages of 7 differ from pages of 1000 (%d pages)", pages)
	}

	for _, body := range []string{`{"limit":-1}`, `{"limit":1001}`, `{"after":"nope"}`, `{"after":7}`, `[]`} {
		if code, _ := callErr(t, e.nc, broker.RoomsListSubject, []byte(body)); code != rooms.CodeBadRequest {
			t.Errorf("list %s: code %s, want 400", body, code)
		}
	}
}
