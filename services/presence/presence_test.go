package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/brokertest"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/nats-io/nats.go"
)

// A replica that starts asks the gateways for their state instead of
// waiting for their next heartbeat. The gateway here only ever answers
// that question, so the replica can learn its listener from nothing else.
func TestNewReplicaAsksGatewaysForTheirState(t *testing.T) {
	node := brokertest.StartNode(t)
	gw := brokertest.Connect(t, node.ClientURL())
	state, _ := json.Marshal(broker.PresenceReport{
		Type: broker.ReportState, Gateway: "gw-quiet",
		Conns: []broker.PresenceConn{{ID: "c1", Room: "lobby", User: "ana"}},
	})
	if _, err := gw.Subscribe(broker.PresenceSyncSubject, func(*nats.Msg) {
		_ = gw.Publish(broker.PresenceReportPrefix+"gw-quiet", state)
	}); err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}

	nc := brokertest.Connect(t, node.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := presence.Start(ctx, nc, presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })

	req, _ := json.Marshal(broker.MembersRequest{Room: "lobby"})
	brokertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		msg, err := nc.Request(broker.PresenceMembersSubject, req, time.Second)
		if err != nil {
			return err
		}
		var reply broker.MembersReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil {
			return err
		}
		if len(reply.Members) != 1 || reply.Members[0].User != "ana" {
			return fmt.Errorf("members %+v, want ana", reply.Members)
		}
		return nil
	})
}
