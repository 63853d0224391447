package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

const timeout = 5 * time.Second

type env struct {
	node *node.Node
	nc   *nats.Conn
	hist *broker.History
}

// newEnv starts a node, connects to it and, if history, creates the
// history stream.
func newEnv(t *testing.T, history bool) *env {
	t.Helper()
	node := nodetest.StartNode(t)
	nc := nodetest.Connect(t, node.ClientURL())
	hist, err := broker.NewHistory(nc)
	if err != nil {
		t.Fatal(err)
	}
	if history {
		if _, err := hist.Ensure(ctxT(t), broker.HistoryConfig{}); err != nil {
			t.Fatalf("ensure history: %v", err)
		}
	}
	return &env{node: node, nc: nc, hist: hist}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// start starts a rooms service on its own connection.
func (e *env) start(t *testing.T, o rooms.Options) *rooms.Service {
	t.Helper()
	nc := nodetest.Connect(t, e.node.ClientURL())
	s, err := rooms.Start(ctxT(t), nc, o)
	if err != nil {
		t.Fatalf("start rooms service: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// publish stores a message in room and returns its sequence.
func (e *env) publish(t *testing.T, room, text string) uint64 {
	t.Helper()
	m, _, err := e.hist.Publish(ctxT(t), broker.Message{ID: broker.NewID(), Room: room, User: "ann", Text: text, TS: time.Now()}, "")
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return m.Seq
}

// request sends body (a []byte as is, anything else as JSON) to subject
// and returns the reply.
func request(t *testing.T, nc *nats.Conn, subject string, body any) *nats.Msg {
	t.Helper()
	data, ok := body.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := nc.Request(subject, data, timeout)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, data, err)
	}
	return msg
}

// call makes a request that must succeed and decodes its reply into a T.
func call[T any](t *testing.T, nc *nats.Conn, subject string, body any) T {
	t.Helper()
	msg := request(t, nc, subject, body)
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("%s: error %s %q", subject, code, msg.Header.Get(micro.ErrorHeader))
	}
	var v T
	if err := json.Unmarshal(msg.Data, &v); err != nil {
		t.Fatalf("%s: decode reply %q: %v", subject, msg.Data, err)
	}
	return v
}

// callErr makes a request that must fail and returns the error code and
// description.
func callErr(t *testing.T, nc *nats.Conn, subject string, body any) (code, desc string) {
	t.Helper()
	msg := request(t, nc, subject, body)
	code, desc = msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
	if code == "" {
		t.Fatalf("%s %v: want an error, got %q", subject, body, msg.Data)
	}
	if desc == "" {
		t.Errorf("%s %v: error %s without a description", subject, body, code)
	}
	return code, desc
}

func list(t *testing.T, nc *nats.Conn) []broker.RoomInfo {
	t.Helper()
	return call[broker.RoomsReply](t, nc, broker.RoomsListSubject, []byte("{}")).Rooms
}

func get(t *testing.T, nc *nats.Conn, room string) broker.RoomInfo {
	t.Helper()
	return call[broker.RoomInfo](t, nc, broker.RoomsGetSubject, broker.RoomRequest{Room: room})
}

func setTopic(t *testing.T, nc *nats.Conn, room, topic string) broker.RoomInfo {
	t.Helper()
	return call[broker.RoomInfo](t, nc, broker.RoomsTopicSubject, broker.TopicRequest{Room: room, Topic: topic})
}

func names(rs []broker.RoomInfo) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Room)
	}
	return out
}

func find(rs []broker.RoomInfo, room string) (broker.RoomInfo, bool) {
	for _, r := range rs {
		if r.Room == room {
			return r, true
		}
	}
	return broker.RoomInfo{}, false
}

func TestGet(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})

	// A valid room without messages or topic still answers.
	if got, want := get(t, e.nc, "nobody-here_1"), (broker.RoomInfo{Room: "nobody-here_1"}); !reflect.DeepEqual(got, want) {
		t.Errorf("empty room = %+v, want %+v", got, want)
	}

	e.publish(t, "lobby", "one")
	e.publish(t, "other", "x")
	e.publish(t, "lobby", "two")
	got := get(t, e.nc, "lobby")
	if got.Room != "lobby" || got.Messages != 2 || got.LastActivity == nil || got.Members != nil || got.Topic != "" {
		t.Fatalf("lobby = %+v", got)
	}
	// Its newest message, "two", is the third in history.
	if got.LastSeq != 3 {
		t.Errorf("lobby's last_seq = %d, want 3", got.LastSeq)
	}
	// get and list agree.
	l, ok := find(list(t, e.nc), "lobby")
	if !ok {
		t.Fatal("lobby not listed")
	}
	if !reflect.DeepEqual(l, got) {
		t.Errorf("list has %+v, get has %+v", l, got)
	}
}

func TestTopic(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.publish(t, "busy", "hello")

	// A topic puts a room without messages in the directory, after the
	// active rooms.
	info := setTopic(t, e.nc, "quiet", "Nothing happens here")
	if want := (broker.RoomInfo{Room: "quiet", Topic: "Nothing happens here"}); !reflect.DeepEqual(info, want) {
		t.Fatalf("topic reply = %+v, want %+v", info, want)
	}
	if got := get(t, e.nc, "quiet"); got.Topic != "Nothing happens here" || got.Messages != 0 || got.LastActivity != nil {
		t.Errorf("get quiet = %+v", got)
	}
	got := list(t, e.nc)
	if want := []string{"busy", "quiet"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("list = %v, want %v", names(got), want)
	}
	if got[1].Topic != "Nothing happens here" || got[1].LastActivity != nil || got[1].Messages != 0 {
		t.Errorf("quiet listed as %+v", got[1])
	}

	// A topic on an active room; spaces around it are dropped; the
	// longest topic (in characters, not bytes) is accepted.
	long := strings.Repeat("é", broker.MaxTopicLen)
	info = setTopic(t, e.nc, "busy", "  "+long+" ")
	if info.Topic != long || info.Messages != 1 || info.LastActivity == nil {
		t.Fatalf("topic reply = %+v", info)
	}
	if r, _ := find(list(t, e.nc), "busy"); r.Topic != long {
		t.Errorf("busy listed with topic %q", r.Topic)
	}

	// Replacing, then clearing.
	setTopic(t, e.nc, "quiet", "Something happens")
	if got := get(t, e.nc, "quiet"); got.Topic != "Something happens" {
		t.Errorf("replaced topic = %q", got.Topic)
	}
	if info := setTopic(t, e.nc, "quiet", ""); !reflect.DeepEqual(info, broker.RoomInfo{Room: "quiet"}) {
		t.Errorf("cleared topic reply = %+v", info)
	}
	if got := list(t, e.nc); !reflect.DeepEqual(names(got), []string{"busy"}) {
		t.Errorf("after clearing quiet's topic, list = %v", names(got))
	}
	// Clearing a room without a topic is fine; a blank topic clears too.
	setTopic(t, e.nc, "never-had-one", "")
	setTopic(t, e.nc, "busy", "   ")
	if got := get(t, e.nc, "busy"); got.Topic != "" {
		t.Errorf("blank topic left %q", got.Topic)
	}
}

// A room made private is marked so in the directory, listed even without
// messages or a topic, under the settings key the gateways watch; made
// public again, it is a plain room.
func TestPrivate(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.publish(t, "busy", "hello")
	setPrivate := func(room string, private bool) broker.RoomInfo {
		t.Helper()
		return call[broker.RoomInfo](t, e.nc, broker.RoomsPrivateSubject, broker.PrivateRequest{Room: room, Private: private})
	}

	if info := setPrivate("hidden", true); !reflect.DeepEqual(info, broker.RoomInfo{Room: "hidden", Private: true}) {
		t.Fatalf("private reply = %+v", info)
	}
	setTopic(t, e.nc, "hidden", "for the team")
	if got := get(t, e.nc, "hidden"); !got.Private || got.Topic != "for the team" {
		t.Errorf("get hidden = %+v, want private with its topic", got)
	}
	if info := setPrivate("busy", true); !info.Private || info.Messages != 1 {
		t.Errorf("private reply for busy = %+v", info)
	}
	got := list(t, e.nc)
	if want := []string{"busy", "hidden"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("list = %v, want %v", names(got), want)
	}
	for _, r := range got {
		if !r.Private {
			t.Errorf("%s listed as %+v, want private", r.Room, r)
		}
	}
	kv, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.KeyValue(ctxT(t), broker.RoomTopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bucket.Get(ctxT(t), broker.PrivateRoomKey("hidden")); err != nil {
		t.Errorf("the settings key the gateways watch: %v", err)
	}

	// Public again; doing it twice is fine.
	setPrivate("busy", false)
	if info := setPrivate("busy", false); info.Private {
		t.Errorf("public reply = %+v", info)
	}
	setTopic(t, e.nc, "hidden", "")
	setPrivate("hidden", false)
	if got := list(t, e.nc); !reflect.DeepEqual(names(got), []string{"busy"}) || got[0].Private {
		t.Errorf("after making both public, list = %+v", got)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})

	for _, tc := range []struct {
		name, subject string
		body          any
		want          string // in the description
	}{
		{"topic too long", broker.RoomsTopicSubject, broker.TopicRequest{Room: "lobby", Topic: strings.Repeat("x", broker.MaxTopicLen+1)}, "limit is 200"},
		{"topic with newline", broker.RoomsTopicSubject, broker.TopicRequest{Room: "lobby", Topic: "two\nlines"}, "U+000A"},
		{"topic with trailing newline", broker.RoomsTopicSubject, broker.TopicRequest{Room: "lobby", Topic: "line\n"}, "U+000A"},
		{"topic with NUL", broker.RoomsTopicSubject, broker.TopicRequest{Room: "lobby", Topic: "a\x00b"}, "U+0000"},
		{"topic invalid UTF-8", broker.RoomsTopicSubject, []byte(`{"room":"lobby","topic":"` + "\xff" + `"}`), ""},
		{"topic room a.b", broker.RoomsTopicSubject, broker.TopicRequest{Room: "a.b", Topic: "t"}, "invalid room name"},
		{"topic room empty", broker.RoomsTopicSubject, broker.TopicRequest{Topic: "t"}, "invalid room name"},
		{"topic malformed JSON", broker.RoomsTopicSubject, []byte(`{"room":`), "malformed JSON"},
		{"topic wrong type", broker.RoomsTopicSubject, []byte(`{"room":"lobby","topic":7}`), "malformed JSON"},
		{"private room a.b", broker.RoomsPrivateSubject, broker.PrivateRequest{Room: "a.b", Private: true}, "invalid room name"},
		{"private room empty", broker.RoomsPrivateSubject, broker.PrivateRequest{Private: true}, "invalid room name"},
		{"private not a boolean", broker.RoomsPrivateSubject, []byte(`{"room":"lobby","private":"yes"}`), "malformed JSON"},
		{"get room a.b", broker.RoomsGetSubject, broker.RoomRequest{Room: "a.b"}, "invalid room name"},
		{"get room wildcard", broker.RoomsGetSubject, broker.RoomRequest{Room: ">"}, "invalid room name"},
		{"get room too long", broker.RoomsGetSubject, broker.RoomRequest{Room: strings.Repeat("r", broker.MaxRoomLen+1)}, "invalid room name"},
		{"get malformed JSON", broker.RoomsGetSubject, []byte(`not json`), "malformed JSON"},
		{"get empty body", broker.RoomsGetSubject, []byte{}, "malformed JSON"},
		{"get null", broker.RoomsGetSubject, []byte(`null`), "invalid room name"},
		{"get array", broker.RoomsGetSubject, []byte(`["lobby"]`), "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, desc := callErr(t, e.nc, tc.subject, tc.body)
			if code != rooms.CodeBadRequest {
				t.Errorf("code = %s (%s), want 400", code, desc)
			}
			if !strings.Contains(desc, tc.want) {
				t.Errorf("description %q does not mention %q", desc, tc.want)
			}
			if strings.ContainsAny(desc, "\r\n\x00") {
				t.Errorf("description %q has control characters", desc)
			}
		})
	}
	// Nothing was stored by the rejected requests.
	if got := list(t, e.nc); len(got) != 0 {
		t.Errorf("list after bad requests = %+v", got)
	}
	// list answers any request.
	for _, body := range []string{"", "garbage", "{}", `{"room":"x"}`} {
		call[broker.RoomsReply](t, e.nc, broker.RoomsListSubject, []byte(body))
	}
}

// TestNeverPanics throws odd payloads at every endpoint: each must get an
// answer, a reply or a 400.
func TestNeverPanics(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	bodies := []string{
		"", "{", "}", "[]", "null", "true", "0", `""`, `{"room":null}`, `{"room":{}}`,
		`{"room":"ok","topic":null}`, `{"room":"ok","extra":[1,2,3]}`, `{"room":"ok"}{"room":"ok"}`,
		"\x00\xff\xfe", `{"room":"\u0000"}`, `{"room":"ok","topic":"\u2028"}`, strings.Repeat("[", 10000),
		`{"room":"ok","topic":"` + strings.Repeat("é", 500) + `"}`,
	}
	for _, subject := range []string{broker.RoomsListSubject, broker.RoomsGetSubject, broker.RoomsTopicSubject, broker.RoomsPrivateSubject} {
		for _, body := range bodies {
			msg := request(t, e.nc, subject, []byte(body))
			if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" && code != rooms.CodeBadRequest {
				t.Errorf("%s %q: error %s %s", subject, body, code, msg.Header.Get(micro.ErrorHeader))
			}
		}
	}
}

// TestStateless runs two replicas on the same bus: whichever answers, the
// answers agree, and the requests are shared between them.
func TestStateless(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{})
	e.start(t, rooms.Options{})
	e.publish(t, "lobby", "hi")
	e.publish(t, "dev", "hi")

	const n = 40
	for i := range n {
		room := fmt.Sprintf("room-%d", i%4)
		topic := fmt.Sprintf("topic %d", i)
		if r := setTopic(t, e.nc, room, topic); r.Topic != topic {
			t.Fatalf("set %s: reply topic %q", room, r.Topic)
		}
		// Whichever replica answers sees the topic just written.
		if r := get(t, e.nc, room); r.Topic != topic {
			t.Fatalf("get %s after setting %q: topic %q", room, topic, r.Topic)
		}
		private := i%3 == 0
		call[broker.RoomInfo](t, e.nc, broker.RoomsPrivateSubject, broker.PrivateRequest{Room: room, Private: private})
		if r := get(t, e.nc, room); r.Private != private {
			t.Fatalf("get %s after making it private=%v: %+v", room, private, r)
		}
	}
	first := list(t, e.nc)
	if len(first) != 6 {
		t.Fatalf("list = %v", names(first))
	}
	for range n {
		if got := list(t, e.nc); !reflect.DeepEqual(got, first) {
			t.Fatalf("lists differ:\n%+v\n%+v", got, first)
		}
	}

	// Both replicas answered: ask each for its stats.
	stats := statsOf(t, e.nc, 2)
	for _, st := range stats {
		for _, ep := range st.Endpoints {
			if ep.NumRequests == 0 {
				t.Errorf("replica %s answered no %s request", st.ID, ep.Name)
			}
			if ep.NumErrors != 0 {
				t.Errorf("replica %s: %d errors on %s: %s", st.ID, ep.NumErrors, ep.Name, ep.LastError)
			}
		}
	}
}

// statsOf gathers the STATS replies of want chat-rooms instances.
func statsOf(t *testing.T, nc *nats.Conn, want int) []micro.Stats {
	t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, rooms.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewRespInbox()
	sub := nodetest.SubscribeSync(t, nc, inbox)
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []micro.Stats
	for len(out) < want {
		msg, err := sub.NextMsg(timeout)
		if err != nil {
			t.Fatalf("stats: got %d of %d replies: %v", len(out), want, err)
		}
		var st micro.Stats
		if err := json.Unmarshal(msg.Data, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func TestServiceInfo(t *testing.T) {
	e := newEnv(t, true)
	e.start(t, rooms.Options{Version: "1.2.3"})
	subject, _ := micro.ControlSubject(micro.InfoVerb, rooms.ServiceName, "")
	info := call[micro.Info](t, e.nc, subject, nil)
	if info.Name != "chat-rooms" || info.Description != "ChatScalable rooms directory" || info.Version != "1.2.3" {
		t.Errorf("info = %+v", info)
	}
	want := map[string]string{"list": broker.RoomsListSubject, "get": broker.RoomsGetSubject, "topic": broker.RoomsTopicSubject, "private": broker.RoomsPrivateSubject}
	if len(info.Endpoints) != len(want) {
		t.Errorf("endpoints = %+v", info.Endpoints)
	}
	for _, ep := range info.Endpoints {
		if want[ep.Name] != ep.Subject || ep.QueueGroup != micro.DefaultQueueGroup {
			t.Errorf("endpoint %+v", ep)
		}
	}

	// A version that is not SemVer (a dev build) still starts.
	e2 := newEnv(t, true)
	e2.start(t, rooms.Options{Version: "dev"})
	info = call[micro.Info](t, e2.nc, subject, nil)
	if info.Version != "0.0.0-dev+dev" || info.Metadata["version"] != "dev" {
		t.Errorf("dev info = %+v", info)
	}

	// The topics bucket: one replica on a single node.
	kv, err := e.hist.JetStream().KeyValue(ctxT(t), rooms.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 1 {
		t.Errorf("bucket replicas = %d, want 1", r)
	}
}

// TestNoHistoryStream: before the gateways create the history stream, the
// directory still answers, from the topics alone.
func TestNoHistoryStream(t *testing.T) {
	e := newEnv(t, false)
	e.start(t, rooms.Options{})
	msg := request(t, e.nc, broker.RoomsListSubject, nil)
	if string(msg.Data) != `{"rooms":[]}` {
		t.Errorf("list = %s", msg.Data)
	}
	if got := get(t, e.nc, "lobby"); !reflect.DeepEqual(got, broker.RoomInfo{Room: "lobby"}) {
		t.Errorf("get = %+v", got)
	}
	setTopic(t, e.nc, "lobby", "first")
	if got := list(t, e.nc); len(got) != 1 || got[0].Topic != "first" {
		t.Errorf("list = %+v", got)
	}
	// Once the stream exists, messages count.
	if _, err := e.hist.Ensure(ctxT(t), broker.HistoryConfig{}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "lobby", "hi")
	if got := get(t, e.nc, "lobby"); got.Messages != 1 || got.Topic != "first" {
		t.Errorf("get = %+v", got)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t, true)
	nc := nodetest.Connect(t, e.node.ClientURL())
	s, err := rooms.Start(context.Background(), nc, rooms.Options{}) // no deadline
	if err != nil {
		t.Fatal(err)
	}
	get(t, e.nc, "lobby")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	nodetest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		_, err := e.nc.Request(broker.RoomsGetSubject, []byte(`{"room":"lobby"}`), time.Second)
		if err != nats.ErrNoResponders {
			return fmt.Errorf("after stop, request error = %v; want no responders", err)
		}
		return nil
	})
	// Starting again reuses the topics bucket.
	s2 := e.start(t, rooms.Options{})
	setTopic(t, e.nc, "lobby", "kept")
	if err := s2.Stop(); err != nil {
		t.Fatal(err)
	}
	e.start(t, rooms.Options{})
	if got := get(t, e.nc, "lobby"); got.Topic != "kept" {
		t.Errorf("topic after restart = %q", got.Topic)
	}
}
