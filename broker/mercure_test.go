package broker_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
)

func newMercure(t *testing.T) (*broker.Mercure, uint64, *nats.Conn) {
	t.Helper()
	n := nodetest.StartNode(t)
	nc, err := n.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	m, err := broker.NewMercure(nc)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := m.Ensure(testContext(t), broker.MercureConfig{})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return m, epoch, nc
}

// Updates are stored with their topics, id, type, retry and privacy,
// re-published on the live subjects with the same, and read back in order;
// a publisher's id is found by FindID, a hub-assigned one needs no lookup.
func TestMercureStoreAndRead(t *testing.T) {
	m, epoch, nc := newMercure(t)
	live := nodetest.SubscribeSync(t, nc, broker.MercureLivePrefix+">")
	now := time.Now().Truncate(time.Millisecond)
	updates := []broker.MercureUpdate{
		{Topics: []string{"https://example.com/books/1"}, Data: "first", Time: now},
		{Topics: []string{"https://example.com/books/2", "https://example.com/users/ana/{?topic}"}, Data: "line one\nline two", ID: "custom-1", Type: "change", Retry: 3000, Private: true, Time: now},
		{Topics: []string{"a topic with spaces & ünïcode"}, Data: "", Time: now},
	}
	for i := range updates {
		seq, err := m.Publish(testContext(t), updates[i])
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		updates[i].Seq = seq
	}
	for i, want := range updates {
		msg, err := live.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("live update %d: %v", i, err)
		}
		got, err := broker.DecodeMercure(msg.Header, msg.Data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("live update %d = %+v, %v; want %+v", i, got, err, want)
		}
		if !strings.HasPrefix(msg.Subject, broker.MercureLivePrefix+broker.MercureToken(want.Topics[0])+".") {
			t.Errorf("live subject %s does not carry the canonical topic's token", msg.Subject)
		}
	}
	got, err := m.After(testContext(t), updates[0].Seq, 10)
	if err != nil || !reflect.DeepEqual(got, updates[1:]) {
		t.Fatalf("After(%d) = %+v, %v; want %+v", updates[0].Seq, got, err, updates[1:])
	}
	if seq, err := m.FindID(testContext(t), "custom-1"); err != nil || seq != updates[1].Seq {
		t.Errorf("FindID(custom-1) = %d, %v; want %d", seq, err, updates[1].Seq)
	}
	if seq, err := m.FindID(testContext(t), "never-published"); err != nil || seq != 0 {
		t.Errorf("FindID(never-published) = %d, %v; want 0", seq, err)
	}
	if last, err := m.LastSeq(testContext(t)); err != nil || last != updates[2].Seq {
		t.Errorf("LastSeq = %d, %v", last, err)
	}

	// Hub-assigned ids: a UUID v7 that gives the sequence back for this
	// stream's epoch only; a publisher's id stays as given.
	id := broker.MercureID(updates[0], epoch)
	if !strings.HasPrefix(id, "urn:uuid:") || len(id) != len("urn:uuid:")+36 || id[len("urn:uuid:")+14] != '7' {
		t.Fatalf("hub id %q is not a urn:uuid: UUID v7", id)
	}
	if seq, ok := broker.ParseMercureID(id, epoch); !ok || seq != updates[0].Seq {
		t.Errorf("ParseMercureID(%s) = %d, %v; want %d", id, seq, ok, updates[0].Seq)
	}
	if _, ok := broker.ParseMercureID(id, epoch+1); ok {
		t.Error("a hub id was taken for a position in another stream epoch")
	}
	if got := broker.MercureID(updates[1], epoch); got != "custom-1" {
		t.Errorf("MercureID of a publisher's id = %q", got)
	}
	for _, bad := range []string{"", "earliest", "custom-1", "urn:uuid:", "urn:uuid:0190b6a4-7c2e-4b1a-8f00-000000000001", "urn:uuid:zz90b6a4-7c2e-7b1a-8f00-000000000001"} {
		if seq, ok := broker.ParseMercureID(bad, epoch); ok {
			t.Errorf("ParseMercureID(%q) = %d, true", bad, seq)
		}
	}
	// Two publishes of one id are two updates, as on a Mercure hub.
	again := updates[1]
	if _, err := m.Publish(testContext(t), again); err != nil {
		t.Fatal(err)
	}
	if seq, _ := m.FindID(testContext(t), "custom-1"); seq <= updates[2].Seq {
		t.Errorf("FindID after a second publish of the id = %d; want the newest", seq)
	}
}

func TestMercureUpdateValidate(t *testing.T) {
	for _, u := range []broker.MercureUpdate{
		{},
		{Topics: []string{""}},
		{Topics: []string{"a\nb"}},
		{Topics: []string{"ok"}, ID: "a\rb"},
		{Topics: []string{"ok"}, Type: "x\x00"},
	} {
		if err := u.Validate(); !errors.Is(err, broker.ErrInvalidUpdate) {
			t.Errorf("Validate(%+v) = %v", u, err)
		}
	}
	if err := (broker.MercureUpdate{Topics: []string{"https://example.com/{id}"}, ID: "#x", Type: "t"}).Validate(); err != nil {
		t.Errorf("a good update: %v", err)
	}
}
