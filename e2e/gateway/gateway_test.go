package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/services/inprocess"
	"github.com/nats-io/nats.go"
)

const wait = 10 * time.Second

// startGateway starts an in-process gateway on a random loopback port. With
// natsURL empty it embeds its own NATS node without a client listener.
func startGateway(t *testing.T, name, natsURL string, mod ...func(*gateway.Options)) *gateway.Gateway {
	t.Helper()
	o := gateway.Options{
		HTTPAddr:   "127.0.0.1:0",
		NodeName:   name,
		NATSURL:    natsURL,
		DataDir:    t.TempDir(),
		NATSListen: "off",
		Heartbeat:  15 * time.Second,
		// As chat-gateway runs them: in-process with an embedded node.
		StartServices: inprocess.Starter(inprocess.Options{}),
	}
	for _, m := range mod {
		m(&o)
	}
	g, err := gateway.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start gateway %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
	})
	nodetest.CheckFor(t, wait, 20*time.Millisecond, g.Ready)
	return g
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func do(t *testing.T, method, u, contentType string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func postJSON(t *testing.T, base, room, user, text string) ssetest.Message {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"user": user, "text": text})
	r := do(t, http.MethodPost, base+"/rooms/"+room+"/messages", "application/json", bytes.NewReader(b), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("publish: status %d: %s", r.status, r.body)
	}
	var m ssetest.Message
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func expectMessage(t *testing.T, s *ssetest.Stream, user, text string) ssetest.Message {
	t.Helper()
	m, ev, err := s.NextMessage(wait)
	if err != nil {
		t.Fatalf("waiting for %q: %v", text, err)
	}
	if m.User != user || m.Text != text {
		t.Fatalf("got %s: %q, want %s: %q", m.User, m.Text, user, text)
	}
	if ev.ID == "" || ev.ID != m.Cursor || m.Seq == 0 {
		t.Fatalf("event id %q, cursor %q, seq %d: want the cursor as id and a sequence", ev.ID, m.Cursor, m.Seq)
	}
	return m
}

func TestPublishByFormAndJSONReachesListener(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	s := ssetest.Open(t, g.URL()+"/listen?room=lobby", nil)
	if ct := s.Resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, h := range []string{"Cache-Control", "X-Accel-Buffering", "X-Chat-Node"} {
		if s.Resp.Header.Get(h) == "" {
			t.Errorf("SSE response lacks %s", h)
		}
	}

	// A browser form post is redirected back to the page.
	form := url.Values{"message": {"hello from a form"}, "user": {"ana"}}
	r := do(t, http.MethodPost, g.URL()+"/publish", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("form publish: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	expectMessage(t, s, "ana", "hello from a form")

	// The same form with Accept: application/json gets the stored message.
	form = url.Values{"message": {"line one\r\nline two"}}
	r = do(t, http.MethodPost, g.URL()+"/publish", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), map[string]string{"Accept": "application/json"})
	if r.status != http.StatusCreated {
		t.Fatalf("form publish with JSON: status %d: %s", r.status, r.body)
	}
	got := expectMessage(t, s, "anonymous", "line one\nline two")
	if !strings.Contains(string(r.body), got.ID) {
		t.Errorf("201 body %s does not carry the streamed id %s", r.body, got.ID)
	}

	sent := postJSON(t, g.URL(), "lobby", "bo", "hello from JSON")
	m := expectMessage(t, s, "bo", "hello from JSON")
	if m.ID != sent.ID || m.Seq != sent.Seq || m.Node != "gw-1" || m.Room != "lobby" {
		t.Errorf("streamed %+v, published %+v", m, sent)
	}

	// The room events route streams the same room.
	s2 := ssetest.Open(t, g.URL()+"/rooms/lobby/events", nil)
	postJSON(t, g.URL(), "lobby", "cy", "second listener")
	expectMessage(t, s2, "cy", "second listener")
	expectMessage(t, s, "cy", "second listener")
}

func TestThousandMessagesArriveInOrder(t *testing.T) {
	g := startGateway(t, "gw-1", "")
	s := ssetest.Open(t, g.URL()+"/rooms/order/events", nil)
	const n = 1000
	client := &http.Client{}
	for i := range n {
		b := fmt.Sprintf(`{"user":"p","text":"m%d"}`, i)
		resp, err := client.Post(g.URL()+"/rooms/order/messages", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("message %d: status %d", i, resp.StatusCode)
		}
	}
	var last uint64
	for i := range n {
		m, _, err := s.NextMessage(wait)
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		if want := fmt.Sprintf("m%d", i); m.Text != want || m.Seq <= last {
			t.Fatalf("message %d: got %q seq %d after seq %d, want %q", i, m.Text, m.Seq, last, want)
		}
		last = m.Seq
	}
}

func TestTwoGatewaysShareOneNode(t *testing.T) {
	node := nodetest.StartNode(t)
	a := startGateway(t, "gw-a", node.ClientURL())
	b := startGateway(t, "gw-b", node.ClientURL())
	onB := ssetest.Open(t, b.URL()+"/listen?room=shared", nil)
	onA := ssetest.Open(t, a.URL()+"/listen?room=shared", nil)

	postJSON(t, a.URL(), "shared", "ana", "from A")
	m := expectMessage(t, onB, "ana", "from A")
	if m.Node != "gw-a" {
		t.Errorf("message node %q, want gw-a", m.Node)
	}
	expectMessage(t, onA, "ana", "from A")
	postJSON(t, b.URL(), "shared", "bo", "from B")
	expectMessage(t, onA, "bo", "from B")
	expectMessage(t, onB, "bo", "from B")

	// Both gateways read the same history.
	r := do(t, http.MethodGet, a.URL()+"/rooms/shared/messages", "", nil, nil)
	var page struct{ Messages []ssetest.Message }
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Messages) != 2 {
		t.Fatalf("history from A: %d messages (%v): %s", len(page.Messages), err, r.body)
	}
	if page.Messages[0].Text != "from A" || page.Messages[1].Text != "from B" {
		t.Errorf("history order: %+v", page.Messages)
	}
}

func TestNATSClientsShareTheBus(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-1", node.ClientURL())
	nc := nodetest.Connect(t, node.ClientURL())
	sub := nodetest.SubscribeSync(t, nc, "chat.room.>")
	listener := ssetest.Open(t, g.URL()+"/listen?room=lobby", nil)

	// A gateway publish reaches a NATS subscriber as the envelope.
	sent := postJSON(t, g.URL(), "lobby", "ana", "to nats")
	msg, err := sub.NextMsg(wait)
	if err != nil {
		t.Fatal(err)
	}
	var env broker.Message
	if err := json.Unmarshal(msg.Data, &env); err != nil {
		t.Fatalf("payload %q is not an envelope: %v", msg.Data, err)
	}
	if msg.Subject != "chat.room.lobby" || env.ID != sent.ID || env.User != "ana" || env.Text != "to nats" || env.Room != "lobby" || env.Node != "gw-1" || env.TS.IsZero() {
		t.Errorf("subject %s, envelope %+v", msg.Subject, env)
	}
	expectMessage(t, listener, "ana", "to nats")

	// A plain-text publish from a NATS client is a chat message.
	if err := nc.Publish("chat.room.lobby", []byte("hi from nats")); err != nil {
		t.Fatal(err)
	}
	plain := expectMessage(t, listener, "nats", "hi from nats")
	if plain.ID == "" || plain.TS.IsZero() {
		t.Errorf("plain message lacks id or time: %+v", plain)
	}
	// The Chat-User header names its sender.
	m := nats.NewMsg("chat.room.lobby")
	m.Header.Set("Chat-User", "operator")
	m.Data = []byte("with a name")
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, listener, "operator", "with a name")
}

func TestStaticPageAndIdentity(t *testing.T) {
	g := startGateway(t, "gw-page", "")
	r := do(t, http.MethodGet, g.URL()+"/", "", nil, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "gw-page") || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: status %d, type %q", r.status, r.header.Get("Content-Type"))
	}
	if r.header.Get("Content-Security-Policy") == "" || r.header.Get("X-Chat-Node") != "gw-page" {
		t.Errorf("GET / headers: %v", r.header)
	}
	r = do(t, http.MethodGet, g.URL()+"/static/app.js", "", nil, nil)
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Errorf("GET /static/app.js: status %d, type %q", r.status, r.header.Get("Content-Type"))
	}
	if !strings.Contains(string(do(t, http.MethodGet, g.URL()+"/", "", nil, nil).body), `<link rel="icon" href="/static/favicon.svg"`) {
		t.Error("the page names no icon")
	}
	// The icon, under the page's link and where browsers look by themselves.
	for _, p := range []string{"/static/favicon.svg", "/favicon.ico"} {
		r = do(t, http.MethodGet, g.URL()+p, "", nil, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(string(r.body), "<svg") {
			t.Errorf("GET %s: status %d, type %q", p, r.status, r.header.Get("Content-Type"))
		}
	}
	r = do(t, http.MethodGet, g.URL()+"/node", "", nil, nil)
	var node map[string]any
	if err := json.Unmarshal(r.body, &node); err != nil || node["node"] != "gw-page" || node["nats"] != "embedded" {
		t.Errorf("GET /node: %s", r.body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := do(t, http.MethodGet, g.URL()+p, "", nil, nil); r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}
