package gateway_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// syncBuffer is a log destination safe for the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var streamLine = regexp.MustCompile(`msg=http method=GET route=/rooms/\{room\}/events path=/rooms/logged/events status=200 bytes=(\d+)`)

// TestStreamLogLineCountsItsBytes: the one request log line of an SSE
// stream, written when it ends, gives the bytes the stream carried (it
// said bytes=0 for every stream the stream loop wrote).
func TestStreamLogLineCountsItsBytes(t *testing.T) {
	var logs syncBuffer
	g := startGateway(t, "gw-log", "", func(o *gateway.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	s := ssetest.Open(t, g.URL()+"/rooms/logged/events", nil)
	var texts []string
	for i := range 3 {
		texts = append(texts, fmt.Sprintf("message %d of the logged stream", i))
		postJSON(t, g.URL(), "logged", "ana", texts[i])
	}
	got := 0
	for got < len(texts) {
		if _, _, err := s.NextMessage(wait); err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		got++
	}
	s.Close()
	var n int
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		m := streamLine.FindStringSubmatch(logs.String())
		if m == nil {
			return fmt.Errorf("no log line for the stream yet:\n%s", logs.String())
		}
		n, _ = strconv.Atoi(m[1])
		return nil
	})
	// Each message event carries at least its text; the stream also has
	// its retry line.
	least := len("retry: 2000\n\n")
	for _, text := range texts {
		least += len(text)
	}
	if n < least {
		t.Errorf("the stream's log line says bytes=%d; it carried at least %d", n, least)
	}
}
