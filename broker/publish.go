package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishWindow is how many publishes a History or Mercure keeps in
// flight to JetStream at once unless WithPublishWindow says otherwise.
const DefaultPublishWindow = 1024

// ErrPublishBusy is returned by a publish that waited for room in the
// publish window until its context ended: the stream is not keeping up.
var ErrPublishBusy = errors.New("too many publishes waiting for the stream")

// StoreOption configures a History or a Mercure.
type StoreOption func(*storeOptions)

type storeOptions struct {
	window int
}

// WithPublishWindow bounds the publishes in flight to JetStream at once
// (DefaultPublishWindow when n <= 0). Callers beyond it wait for a free
// place until their context ends, then get ErrPublishBusy.
func WithPublishWindow(n int) StoreOption {
	return func(o *storeOptions) { o.window = n }
}

// publisher stores messages through asynchronous JetStream publishes: each
// caller sends its message and waits for its own ack, so concurrent callers
// share the connection's writes and the ack subscription instead of each
// making a request-reply round trip with timers of its own. slots bounds the
// publishes in flight; it is the only place callers queue.
type publisher struct {
	js    jetstream.JetStream
	slots chan struct{}
}

// newPublisher returns a publisher on nc. Acks not answered within
// publishAttemptTimeout fail with ErrAsyncPublishTimeout (one timer per
// publish, kept by nats.go), which publish retries.
func newPublisher(nc *nats.Conn, opts []StoreOption) (*publisher, error) {
	var o storeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.window <= 0 {
		o.window = DefaultPublishWindow
	}
	// A caller that stops waiting (its context ended) frees its place at
	// once while its publish is still pending in nats.go until its ack or
	// its timeout, so nats.go's own bound is set above the window: it only
	// stops callers when that happens faster than publishes time out.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4*o.window),
		jetstream.WithPublishAsyncTimeout(publishAttemptTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	return &publisher{js: js, slots: make(chan struct{}, o.window)}, nil
}

// publish stores msg in stream with the de-duplication id dedupeID and
// returns the stream's ack. A publish in flight when the stream's leader
// dies gets no answer: rather than wait out the whole deadline, it is sent
// again after publishAttemptTimeout, since the new leader answers within a
// second or two, and the de-duplication id makes that safe. A duplicate on
// a later attempt is its own first attempt, stored although its answer was
// lost, so the returned ack says Duplicate only when the first attempt found
// one.
func (p *publisher) publish(ctx context.Context, msg *nats.Msg, dedupeID, stream string) (*jetstream.PubAck, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("publish to %s: %w (%d in flight): %w", msg.Subject, ErrPublishBusy, cap(p.slots), ctx.Err())
		}
	}
	defer func() { <-p.slots }()
	for attempt := 1; ; attempt++ {
		ack, err := p.attempt(ctx, msg, dedupeID, stream)
		if err == nil {
			if attempt > 1 {
				ack.Duplicate = false
			}
			return ack, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, fmt.Errorf("publish to %s: %w", msg.Subject, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// attempt sends msg once and waits for its ack, its error, or ctx.
func (p *publisher) attempt(ctx context.Context, msg *nats.Msg, dedupeID, stream string) (*jetstream.PubAck, error) {
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(dedupeID), jetstream.WithExpectStream(stream))
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// publishAttemptTimeout bounds one attempt of a publish.
const publishAttemptTimeout = time.Second

// retryable reports whether a failed publish attempt may be tried again:
// it timed out, found no responder (no stream leader at that moment), or
// was cut by a reconnect (nats.go fails pending acks then; the message may
// be stored, which the de-duplication id covers).
func retryable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
