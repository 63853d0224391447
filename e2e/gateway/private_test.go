package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// directory returns the room names of the first directory page once it
// lists want (the rooms service learns of rooms as messages arrive).
func directory(t *testing.T, base, tok, want string) []string {
	t.Helper()
	var names []string
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		r := do(t, http.MethodGet, base+"/rooms", "", nil, bearer(tok))
		var page struct{ Rooms []struct{ Room string } }
		_ = json.Unmarshal(r.body, &page)
		names = names[:0]
		for _, ri := range page.Rooms {
			names = append(names, ri.Room)
		}
		if r.status != http.StatusOK || !slices.Contains(names, want) {
			return fmt.Errorf("directory never listed %s: %d %s", want, r.status, r.body)
		}
		return nil
	})
	return names
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
	// Nobody may make a room private: it would be closed to all, by
	// whoever asked.
	if r := do(t, http.MethodPut, g.URL()+"/rooms/open", "application/json", strings.NewReader(`{"private":true}`), nil); r.status != http.StatusForbidden || r.errorCode() != "forbidden" {
		t.Fatalf("make a room private with auth off: %d %s; want 403 forbidden", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.URL()+"/rooms/open/messages", "", nil, nil); r.status != http.StatusOK {
		t.Fatalf("the room after a refused PUT: %d %s", r.status, r.body)
	}
}

// eventually repeats a request until it answers status (nodetest.CheckFor):
// the gateways learn of a room made private or public through their watch
// of the room settings, within moments.
func eventually(t *testing.T, what string, status int, req func() response) {
	t.Helper()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if r := req(); r.status != status {
			return fmt.Errorf("%s: %d %s; want %d", what, r.status, r.body, status)
		}
		return nil
	})
}

// An admin makes a room private through the directory: from then on it
// does not exist for tokens without a subscribe grant for it (every route
// 404, the directory omits it), even for one whose publish grant covers
// it; readers with a grant go on and see it marked private. Made public
// again, it is an ordinary room.
func TestRoomMadePrivateByAnAdmin(t *testing.T) {
	iss := newIssuer(t)
	g := startGateway(t, "gw-made-private", "", func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience}
	})
	base := g.URL()
	ana := iss.token(t, "ana", grants{Publish: []string{"vault"}, Subscribe: []string{"lobby", "vault"}})
	bo := iss.token(t, "bo", grants{Publish: []string{"*"}, Subscribe: []string{"lobby"}})
	cy := iss.token(t, "cy", grants{Publish: []string{"*"}, Subscribe: []string{"*"}, Admin: true})
	publish := func(tok string) func() response {
		return func() response {
			return do(t, http.MethodPost, base+"/rooms/vault/messages", "application/json", strings.NewReader(`{"text":"hi"}`), bearer(tok))
		}
	}
	eventually(t, "bo publishes to the public room vault", http.StatusCreated, publish(bo))
	if r := do(t, http.MethodPost, base+"/rooms/lobby/messages", "application/json", strings.NewReader(`{"text":"hello"}`), bearer(bo)); r.status != http.StatusCreated {
		t.Fatalf("bo publishes to lobby: %d %s", r.status, r.body)
	}
	put := func(tok, body string) response {
		return do(t, http.MethodPut, base+"/rooms/vault", "application/json", strings.NewReader(body), bearer(tok))
	}
	if r := put(ana, `{"private":true}`); r.status != http.StatusForbidden || r.errorCode() != "forbidden" {
		t.Fatalf("a non-admin makes vault private: %d %s; want 403", r.status, r.body)
	}
	for _, body := range []string{`{}`, `{"private":"yes"}`, `{"private":null}`} {
		if r := put(cy, body); r.status != http.StatusBadRequest {
			t.Errorf("PUT %s: %d %s; want 400", body, r.status, r.body)
		}
	}
	r := put(cy, `{"private":true,"topic":"the team's"}`)
	var info struct {
		Room    string
		Topic   string
		Private bool
	}
	if err := json.Unmarshal(r.body, &info); r.status != http.StatusOK || err != nil || !info.Private || info.Topic != "the team's" {
		t.Fatalf("the admin makes vault private: %d %s", r.status, r.body)
	}

	eventually(t, "bo publishes to the private room vault", http.StatusNotFound, publish(bo))
	for _, path := range []string{"/rooms/vault/events", "/listen?room=vault", "/rooms/vault/messages", "/rooms/vault/members", "/rooms/vault"} {
		if r := do(t, http.MethodGet, base+path, "", nil, bearer(bo)); r.status != http.StatusNotFound || r.errorCode() != "not_found" {
			t.Errorf("bo GET %s: %d %s; want 404 not_found", path, r.status, r.body)
		}
	}
	if names := directory(t, base, bo, "lobby"); slices.Contains(names, "vault") {
		t.Errorf("bo's directory lists the private room: %v", names)
	}
	directory(t, base, ana, "vault")
	if r := do(t, http.MethodGet, base+"/rooms/vault", "", nil, bearer(ana)); r.status != http.StatusOK || !strings.Contains(string(r.body), `"private":true`) {
		t.Errorf("ana GET /rooms/vault: %d %s; want it marked private", r.status, r.body)
	}
	if r := publish(ana)(); r.status != http.StatusCreated {
		t.Errorf("ana publishes to vault: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, base+"/rooms/vault/messages", "", nil, bearer(ana)); r.status != http.StatusOK || strings.Count(string(r.body), `"hi"`) != 2 {
		t.Errorf("ana reads vault: %d %s; want both messages", r.status, r.body)
	}

	if r := put(cy, `{"private":false}`); r.status != http.StatusOK || strings.Contains(string(r.body), `"private"`) {
		t.Fatalf("the admin makes vault public: %d %s", r.status, r.body)
	}
	eventually(t, "bo publishes to vault made public", http.StatusCreated, publish(bo))
}
