package clustertest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// Messages published with the nats CLI, around the gateway, meet the same
// rules as those published over HTTP: a text over the size limit, one
// with a control character and an empty one are stored by NATS, but no
// listener, replay or history page ever returns them.
func TestMessagesPublishedOverNATSMeetTheMessageRules(t *testing.T) {
	t.Parallel()
	cli := natsCLI(t)
	port := clustertest.FreePorts(t, 1)[0]
	gw := clustertest.StartGateway(t, "gw-rules", "--data-dir", t.TempDir(),
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", port), "--max-message-bytes", "4096")
	gw.WaitReady(t, wait)
	mustPublish(t, gw.URL, "rules", "ana", "before")
	live := ssetest.Open(t, gw.URL+"/rooms/rules/events", nil)
	var before ssetest.Message
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		page := historyPage(t, gw, "rules")
		if len(page) != 1 {
			return fmt.Errorf("history holds %d messages", len(page))
		}
		before = page[0]
		return nil
	})

	for _, payload := range []string{
		strings.Repeat("x", 10000),               // over --max-message-bytes
		"bell \a ringing",                        // a control character
		"",                                       // empty
		`{"text":"envelope ` + "\x1b" + `[31m"}`, // an envelope with an escape sequence
		`{"id":"` + strings.Repeat("i", 500) + `","text":"long id"}`,
	} {
		if out, err := exec.Command(cli, "pub", "chat.room.rules", payload, "-s", gw.NATSURL).CombinedOutput(); err != nil {
			t.Fatalf("nats pub: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(cli, "pub", "chat.room.rules", "fine", "-s", gw.NATSURL).CombinedOutput(); err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}

	next := func(who string, s *ssetest.Stream, want string) {
		t.Helper()
		m, _, err := s.NextMessage(wait)
		if err != nil || m.Text != want {
			t.Fatalf("%s got %q (%v), want %q: an invalid message got through", who, m.Text, err, want)
		}
	}
	next("live listener", live, "fine")
	resumed := ssetest.Open(t, gw.URL+"/rooms/rules/events", http.Header{"Last-Event-Id": {before.Cursor}})
	next("resumed listener", resumed, "fine")
	page := historyPage(t, gw, "rules")
	var texts []string
	for _, m := range page {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, "|") != "before|fine" {
		t.Fatalf("history page holds %q, want only the valid messages", texts)
	}
	if v := metric(t, gw, "chat_messages_withheld_total"); v < 5 {
		t.Fatalf("withheld messages counted: %v, want at least 5", v)
	}
}

// historyPage reads the newest messages of room.
func historyPage(t *testing.T, gw *clustertest.Gateway, room string) []ssetest.Message {
	t.Helper()
	resp, err := http.Get(gw.URL + "/rooms/" + url.PathEscape(room) + "/messages?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Messages []ssetest.Message }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Messages
}
