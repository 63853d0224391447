package delivery_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/gateway/internal/delivery"
)

// WireMessage.AppendJSON gives exactly json.Marshal's bytes.
func TestWireMessageAppendJSON(t *testing.T) {
	ts := time.Date(2026, 11, 30, 13, 0, 0, 5, time.UTC)
	for _, w := range []delivery.WireMessage{
		{Message: broker.Message{Seq: 7, ID: "a", Room: "lobby", User: "ana", Text: "hi <b> \"x\"\n", TS: ts, Node: "gw-1"}, Cursor: delivery.EncodeCursor(1, 7, "lobby")},
		{Message: broker.Message{ID: "b", Room: "r", User: "u", Text: "\u2028", TS: ts}, Cursor: ""},
	} {
		want, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON =\n  %s\nwant\n  %s", got, want)
		}
	}
}
