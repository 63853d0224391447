package gateway_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/gateway"
)

// directory returns the room names of the first directory page once it
// lists want (the rooms service learns of rooms as messages arrive).
func directory(t *testing.T, base, tok, want string) []string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r := do(t, http.MethodGet, base+"/rooms", "", nil, bearer(tok))
		var page struct{ Rooms []struct{ Room string } }
		_ = json.Unmarshal(r.body, &page)
		var names []string
		for _, ri := range page.Rooms {
			names = append(names, ri.Room)
		}
		if r.status == http.StatusOK && slices.Contains(names, want) {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory never listed %s: %d %s", want, r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A private room does not exist for whoever may not read it: every route
// answers 404, and the directory leaves it out.
func TestPrivateRooms(t *testing.T) {
	iss := newIssuer(t)
	g := startGateway(t, "gw-private", "", func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience}
		o.PrivateRooms = []string{"team-*"}
	})
	base := g.URL()
	ana := iss.token(t, "ana", grants{Publish: []string{"lobby", "team-a"}, Subscribe: []string{"lobby", "team-a"}})
	cy := iss.token(t, "cy", grants{Publish: []string{"lobby", "team-*"}, Subscribe: []string{"lobby"}, Admin: true})
	for _, room := range []string{"lobby", "team-a"} {
		if r := do(t, http.MethodPost, base+"/rooms/"+room+"/messages", "application/json", strings.NewReader(`{"text":"hi"}`), bearer(ana)); r.status != http.StatusCreated {
			t.Fatalf("ana publishes to %s: %d %s", room, r.status, r.body)
		}
	}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/rooms/team-a/events", ""},
		{http.MethodGet, "/listen?room=team-a", ""},
		{http.MethodGet, "/rooms/team-a/messages", ""},
		{http.MethodGet, "/rooms/team-a/members", ""},
		{http.MethodGet, "/rooms/team-a", ""},
		{http.MethodPost, "/rooms/team-a/messages", `{"text":"in"}`}, // cy's publish grant does not open it
		{http.MethodPut, "/rooms/team-a", `{"topic":"mine"}`},
	} {
		ct := ""
		if req.body != "" {
			ct = "application/json"
		}
		r := do(t, req.method, base+req.path, ct, strings.NewReader(req.body), bearer(cy))
		if r.status != http.StatusNotFound || r.errorCode() != "not_found" {
			t.Errorf("cy %s %s: %d %s; want 404 not_found", req.method, req.path, r.status, r.body)
		}
	}
	if names := directory(t, base, ana, "team-a"); !slices.Contains(names, "lobby") {
		t.Fatalf("ana's directory %v lacks lobby", names)
	}
	if names := directory(t, base, cy, "lobby"); slices.Contains(names, "team-a") {
		t.Fatalf("cy's directory lists the private room: %v", names)
	}
	if r := do(t, http.MethodGet, base+"/rooms/team-a/messages", "", nil, bearer(ana)); r.status != http.StatusOK || !strings.Contains(string(r.body), `"hi"`) {
		t.Fatalf("ana reads team-a: %d %s", r.status, r.body)
	}
}

// With auth off nobody holds a grant, so private rooms are closed to all.
func TestPrivateRoomsWithAuthOff(t *testing.T) {
	g := startGateway(t, "gw-private-open", "", func(o *gateway.Options) { o.PrivateRooms = []string{"staff"} })
	if r := do(t, http.MethodGet, g.URL()+"/rooms/staff/events", "", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("listen to a private room with auth off: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPost, g.URL()+"/rooms/staff/messages", "application/json", strings.NewReader(`{"text":"x"}`), nil); r.status != http.StatusNotFound {
		t.Fatalf("publish to a private room with auth off: %d %s", r.status, r.body)
	}
	postJSON(t, g.URL(), "open", "ana", "hello")
	directory(t, g.URL(), "", "open")
}
