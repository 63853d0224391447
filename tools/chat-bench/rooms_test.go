package main

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSpreadTakesTurns(t *testing.T) {
	o, err := parse("fanout", []string{"--room", "r", "--rooms", "3", "--subs", "6"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := o.roomEndpoints()
	if err != nil || len(eps) != 3 {
		t.Fatalf("%d endpoints, %v", len(eps), err)
	}
	ep := spread(eps)
	subs := map[string]int{}
	for range 6 {
		subs[ep.eventsURL("http://h")]++
	}
	for _, room := range []string{"r-1", "r-2", "r-3"} {
		if n := subs["http://h/rooms/"+room+"/events"]; n != 2 {
			t.Errorf("%s: %d subscribers, want 2 (%v)", room, n, subs)
		}
	}
	var pubs []string
	for range 4 {
		pubs = append(pubs, ep.publish(context.Background(), "http://h", time.Now()).URL.Path)
	}
	if got := strings.Join(pubs, " "); got != "/rooms/r-1/messages /rooms/r-2/messages /rooms/r-3/messages /rooms/r-1/messages" {
		t.Errorf("publishes went to %s", got)
	}
	if one, _ := (options{rooms: 1, room: "r", size: 1}).roomEndpoints(); len(one) != 1 || spread(one) != one[0] {
		t.Error("one room is the endpoint itself")
	}
}

func TestCentrifugoRoomsHaveTheirOwnTokens(t *testing.T) {
	o := options{rooms: 2, room: "c", channel: "c", size: 1, centrifugo: true, centrifugoKeys: centrifugoKeys{secret: testSecret, apiKey: "k"}}
	eps, err := o.roomEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	for i, ep := range eps {
		u, _ := url.Parse(ep.eventsURL("http://h"))
		connect := u.Query().Get("cf_connect")
		want := []string{"c-1", "c-2"}[i]
		token := strings.TrimSuffix(strings.TrimPrefix(connect, `{"token":"`), `"}`)
		var c struct{ Channels []string }
		if err := decodeClaims(token, &c); err != nil || len(c.Channels) != 1 || c.Channels[0] != want {
			t.Errorf("room %d: channels %v (%v), want [%s]", i+1, c.Channels, err, want)
		}
	}
	if _, err := parse("fanout", []string{"--rooms", "3", "--subs", "10"}, io.Discard); err == nil {
		t.Error("10 subscribers over 3 rooms: no error")
	}
	if _, err := parse("latency", []string{"--rooms", "2"}, io.Discard); err == nil {
		t.Error("latency over 2 rooms: no error")
	}
}
