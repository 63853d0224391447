package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway/internal/report"
	"github.com/chatscalable/chatscalable/services/presence"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// TestFiftyThousandListeners: a gateway holding 50,000 listeners reports
// them in chunks that each fit the server's maximum payload with room to
// spare, and a presence replica that starts afterwards, so it can learn
// them from the state report alone, lists every one.
func TestFiftyThousandListeners(t *testing.T) {
	const listeners, rooms = 50000, 50
	node := nodetest.StartNode(t)
	gw := nodetest.Connect(t, node.ClientURL())
	r := report.New(gw, "gw-big-"+broker.NewID(), nil)
	for i := range listeners {
		// Long names, so the state is several times the payload limit.
		r.Join(fmt.Sprintf("room-%02d-with-a-longish-name", i%rooms), fmt.Sprintf("listener-%05d-also-with-a-long-name", i))
	}

	// Watch the state reports: chunked, each well under the limit.
	watch := nodetest.Connect(t, node.ClientURL())
	sub := nodetest.SubscribeSync(t, watch, broker.PresenceReportPrefix+">")
	_ = sub.SetPendingLimits(-1, -1)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	limit := int(gw.MaxPayload())
	chunks, seen := 0, 0
	nodetest.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			return fmt.Errorf("state report: %w", err)
		}
		if len(msg.Data) > limit*3/4 {
			t.Fatalf("a state chunk of %d bytes; the server takes %d", len(msg.Data), limit)
		}
		var rep broker.PresenceReport
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Type != broker.ReportState {
			return fmt.Errorf("a %s report", rep.Type)
		}
		chunks = rep.Chunks
		seen += len(rep.Conns)
		if rep.Chunk != rep.Chunks-1 {
			return fmt.Errorf("chunk %d of %d", rep.Chunk, rep.Chunks)
		}
		return nil
	})
	if chunks < 2 || seen != listeners {
		t.Fatalf("a state of %d listeners in %d chunks, want %d in several", seen, chunks, listeners)
	}

	nc := nodetest.Connect(t, node.ClientURL())
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	p, err := presence.Start(sctx, nc, presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })

	// The replica learns the listeners from the sync answer or, at the
	// latest, the next heartbeat.
	nodetest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var counts broker.CountsReply
		if err := request(nc, broker.PresenceCountsSubject, struct{}{}, &counts); err != nil {
			return err
		}
		total := 0
		for _, n := range counts.Rooms {
			total += n
		}
		if len(counts.Rooms) != rooms || total != listeners {
			return fmt.Errorf("%d members in %d rooms, want %d in %d", total, len(counts.Rooms), listeners, rooms)
		}
		return nil
	})
	for i := range rooms {
		room := fmt.Sprintf("room-%02d-with-a-longish-name", i)
		var members broker.MembersReply
		if err := request(nc, broker.PresenceMembersSubject, broker.MembersRequest{Room: room}, &members); err != nil {
			t.Fatal(err)
		}
		if len(members.Members) != listeners/rooms {
			t.Fatalf("%s: %d members, want %d", room, len(members.Members), listeners/rooms)
		}
		for j, m := range members.Members {
			if want := fmt.Sprintf("listener-%05d-also-with-a-long-name", j*rooms+i); m.User != want || m.Connections != 1 {
				t.Fatalf("%s: member %d is %+v, want %s", room, j, m, want)
			}
		}
	}
}

func request(nc *nats.Conn, subject string, req, reply any) error {
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subject, data, 5*time.Second)
	if err != nil {
		return fmt.Errorf("request %s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("request %s: error %s %s", subject, code, msg.Header.Get(micro.ErrorHeader))
	}
	return json.Unmarshal(msg.Data, reply)
}
