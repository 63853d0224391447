package privacy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway/internal/privacy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const wait = 5 * time.Second

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func jetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitPrivate waits until p says room's privacy is want.
func waitPrivate(t *testing.T, p *privacy.Rooms, room string, want bool) {
	t.Helper()
	nodetest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if got, known := p.Private(room); got != want || !known {
			return fmt.Errorf("Private(%s) = %v, %v; want %v, true", room, got, known, want)
		}
		return nil
	})
}

// A gateway (its own role on a closed bus) makes the settings bucket when
// no rooms service has, loads the rooms already private, follows every
// change the rooms service (its role) writes, ignores topics, and is not
// known before Ensure or after Stop.
func TestRoomsFollowTheSettingsBucket(t *testing.T) {
	n := nodetest.StartSecureNode(t)
	gw := n.ConnectAs(t, node.RoleGateway)
	p := privacy.New(nil)
	if _, known := p.Private("vault"); known {
		t.Fatal("known before Ensure")
	}
	if err := p.Ensure(ctxT(t), jetStream(t, gw), 1); err != nil {
		t.Fatalf("Ensure on an empty bus: %v", err)
	}
	t.Cleanup(p.Stop)
	if private, known := p.Private("vault"); private || !known {
		t.Fatalf("Private(vault) on an empty bucket = %v, %v", private, known)
	}
	if err := p.Ensure(ctxT(t), jetStream(t, gw), 1); err != nil {
		t.Fatalf("Ensure again: %v", err)
	}

	// The rooms service writes the settings.
	svc := jetStream(t, n.ConnectAs(t, node.RoleService))
	kv, err := svc.CreateOrUpdateKeyValue(ctxT(t), broker.RoomSettingsConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.PutString(ctxT(t), key, value); err != nil {
			t.Fatal(err)
		}
	}
	put(broker.PrivateRoomKey("vault"), "true")
	put("lobby", "a topic, not a privacy") // a topic's key
	waitPrivate(t, p, "vault", true)
	if private, _ := p.Private("lobby"); private {
		t.Error("a room with a topic is taken as private")
	}
	if err := kv.Delete(ctxT(t), broker.PrivateRoomKey("vault")); err != nil {
		t.Fatal(err)
	}
	waitPrivate(t, p, "vault", false)

	// Another gateway starting later loads what is private at once.
	put(broker.PrivateRoomKey("staff"), "true")
	put(broker.PrivateRoomKey("gone"), "true")
	if err := kv.Purge(ctxT(t), broker.PrivateRoomKey("gone")); err != nil {
		t.Fatal(err)
	}
	later := privacy.New(nil)
	if err := later.Ensure(ctxT(t), jetStream(t, n.ConnectAs(t, node.RoleGateway)), 1); err != nil {
		t.Fatal(err)
	}
	for room, want := range map[string]bool{"staff": true, "gone": false, "vault": false, "lobby": false} {
		if private, known := later.Private(room); private != want || !known {
			t.Errorf("a later gateway: Private(%s) = %v, %v; want %v, true", room, private, known, want)
		}
	}
	later.Stop()
	if later.Known() {
		t.Error("known after Stop")
	}
	n.NoViolations(t)
}

// When the watch ends (the connection closed), the set is unknown, so the
// gateway refuses rooms instead of guessing; Ensure on a new connection
// makes it known again.
func TestRoomsUnknownWithoutTheWatch(t *testing.T) {
	n := nodetest.StartSecureNode(t)
	p := privacy.New(nil)
	t.Cleanup(p.Stop)
	gw := n.ConnectAs(t, node.RoleGateway)
	if err := p.Ensure(ctxT(t), jetStream(t, gw), 1); err != nil {
		t.Fatal(err)
	}
	gw.Close()
	nodetest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if p.Known() {
			return fmt.Errorf("still known after the connection closed")
		}
		return nil
	})
	if err := p.Ensure(ctxT(t), jetStream(t, n.ConnectAs(t, node.RoleGateway)), 1); err != nil {
		t.Fatal(err)
	}
	if !p.Known() {
		t.Error("not known after Ensure on a new connection")
	}
}
