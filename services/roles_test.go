package services_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/chatscalable/chatscalable/services/rooms"
	"github.com/nats-io/nats.go"
)

// TestServicesWorkInTheirRole runs both services as the service role and
// asks them what a gateway asks, as the gateway role: every call works,
// and the node refuses nothing either role does.
func TestServicesWorkInTheirRole(t *testing.T) {
	n := nodetest.StartSecureNode(t)
	t.Cleanup(func() { n.NoViolations(t) })
	svc, gw := n.ConnectAs(t, node.RoleService), n.ConnectAs(t, node.RoleGateway)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	hist, err := broker.NewHistory(gw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hist.Ensure(ctx, broker.HistoryConfig{}); err != nil {
		t.Fatalf("the gateway role ensures the history stream: %v", err)
	}
	stored, _, err := hist.Publish(ctx, broker.Message{ID: broker.NewID(), Room: "lobby", User: "ana", Text: "hi", TS: time.Now().UTC(), Node: "gw-1"}, "")
	if err != nil {
		t.Fatalf("the gateway role publishes: %v", err)
	}
	if page, err := hist.Before(ctx, "lobby", 0, 10); err != nil || len(page) != 1 || page[0].Seq != stored.Seq {
		t.Fatalf("the gateway role reads history: %v, %v", page, err)
	}

	p, err := presence.Start(ctx, svc, presence.Options{WarmUp: 100 * time.Millisecond, ClusterSize: 1})
	if err != nil {
		t.Fatalf("presence as the service role: %v", err)
	}
	defer p.Stop()
	r, err := rooms.Start(ctx, svc, rooms.Options{ClusterSize: 1})
	if err != nil {
		t.Fatalf("rooms as the service role: %v", err)
	}
	defer r.Stop()

	// A listener of gw-1 joins: the change comes back to the gateway on the
	// room's presence subject, re-published by the presence stream.
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !p.Warm() {
			return fmt.Errorf("the presence replica is not warm")
		}
		return nil
	})
	events := nodetest.SubscribeSync(t, gw, broker.PresenceEventSubject("lobby"))
	for _, r := range []broker.PresenceReport{
		{Type: broker.ReportState, Gateway: "gw-1", Report: "s1"},
		{Type: broker.ReportJoin, Gateway: "gw-1", Conn: &broker.PresenceConn{ID: "c1", Room: "lobby", User: "ana"}},
	} {
		report, _ := json.Marshal(r)
		if err := gw.Publish(broker.PresenceReportPrefix+"gw-1", report); err != nil {
			t.Fatal(err)
		}
	}
	if msg, err := events.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("presence change: %v", err)
	} else if hdr := msg.Header.Get("Nats-Stream"); hdr != broker.PresenceStream {
		t.Errorf("presence change from %q, not the presence stream", hdr)
	}

	ask := func(subject string, req any, reply any) {
		t.Helper()
		data, _ := json.Marshal(req)
		msg, err := gw.Request(subject, data, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
			t.Fatalf("%s: error %s %s", subject, code, msg.Header.Get("Nats-Service-Error"))
		}
		if err := json.Unmarshal(msg.Data, reply); err != nil {
			t.Fatalf("%s: %v: %s", subject, err, msg.Data)
		}
	}
	var members broker.MembersReply
	ask(broker.PresenceMembersSubject, broker.MembersRequest{Room: "lobby"}, &members)
	if len(members.Members) != 1 || members.Members[0].User != "ana" {
		t.Errorf("members %+v", members)
	}
	var info broker.RoomInfo
	ask(broker.RoomsTopicSubject, broker.TopicRequest{Room: "lobby", Topic: "welcome"}, &info)
	nodetest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var list broker.RoomsReply
		ask(broker.RoomsListSubject, broker.RoomsListRequest{}, &list)
		if len(list.Rooms) != 1 || list.Rooms[0].Topic != "welcome" || list.Rooms[0].Messages != 1 ||
			list.Rooms[0].Members == nil || *list.Rooms[0].Members != 1 {
			return fmt.Errorf("directory %+v", list.Rooms)
		}
		return nil
	})
	ask(broker.RoomsGetSubject, broker.RoomRequest{Room: "lobby"}, &info)
	if info.Topic != "welcome" || info.Messages != 1 {
		t.Errorf("room %+v", info)
	}
	// A flush on each connection reads any refusal still on its way.
	for _, nc := range []*nats.Conn{svc, gw} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}
