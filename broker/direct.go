package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Direct gets: reads of stored messages answered by any replica of a
// stream (its allow_direct), without a consumer. The history stream and
// the Mercure stream are read this way.
//
// They do not use jetstream.Stream.GetMsg: that parses the reply's
// position headers with Header.Get, the first value, and a publisher can
// put its own Nats-Sequence or Nats-Subject on a message; the server
// appends the true ones after them, so the readers take the last value
// (TestStoredMessageIgnoresPublisherPositionHeaders). GetMsg also needs a
// stream handle, which costs a STREAM.INFO request to get.

// withDefaultTimeout bounds ctx by 5 s when it has no deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 5*time.Second)
}

// stored reports whether a direct-get reply is a stored message (not a
// status): it carries the stream's position headers.
func stored(msg *nats.Msg) bool { return len(msg.Header.Values(headerSequence)) > 0 }

// directGet makes a single-message direct get on stream; nil means not
// found.
func directGet(ctx context.Context, nc *nats.Conn, stream string, req map[string]any) (*nats.Msg, error) {
	body, _ := json.Marshal(req)
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, err
	}
	if !stored(msg) {
		switch msg.Header.Get("Status") {
		case "404":
			return nil, nil
		default:
			return nil, fmt.Errorf("status %s %s", msg.Header.Get("Status"), msg.Header.Get("Description"))
		}
	}
	return msg, nil
}

// directBatch makes a batch direct get on stream (req holds "batch", and
// "next_by_subj" or "multi_last") and calls each with every stored
// message, in order. It returns how many messages the stream says are
// still pending after the batch (0 when it does not say).
func directBatch(ctx context.Context, nc *nats.Conn, stream string, req map[string]any, each func(*nats.Msg)) (pending uint64, err error) {
	body, _ := json.Marshal(req)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer func() { _ = sub.Unsubscribe() }() // the inbox is this read's alone
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, err
		}
		if stored(msg) {
			each(msg)
			continue
		}
		switch status := msg.Header.Get("Status"); status {
		case "404":
			return 0, nil // nothing found
		case "204":
			pending, _ := strconv.ParseUint(msg.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending, nil // end of the batch
		default:
			return 0, fmt.Errorf("status %s %s", status, msg.Header.Get("Description"))
		}
	}
}

// leaderHolds asks the stream's leader whether seq holds a message on
// subject, with a STREAM.MSG.GET, which only the leader answers. A direct
// get may be answered by a replica that lags (one just back from a
// partition keeps answering while it catches up), and its "not found"
// then means "not yet"; the leader's is final.
func leaderHolds(ctx context.Context, nc *nats.Conn, stream string, seq uint64, subject string) (bool, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	body, _ := json.Marshal(map[string]uint64{"seq": seq})
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, body)
	if err != nil {
		return false, err
	}
	var resp struct {
		Message *struct {
			Subject string `json:"subject"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return false, fmt.Errorf("stream message get: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jsNoMessageFound:
		return false, nil
	case resp.Error != nil:
		return false, fmt.Errorf("stream message get: %s (%d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return false, fmt.Errorf("stream message get: an answer without a message")
	}
	return resp.Message.Subject == subject, nil
}

// jsNoMessageFound is JetStream's error code for a position that holds no
// message (JSNoMessageFoundErr).
const jsNoMessageFound = 10037
