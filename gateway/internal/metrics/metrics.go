// Package metrics holds chat-gateway's Prometheus metrics. Every name
// starts with chat_; the README lists them.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are one gateway's metrics, in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	SSEConnections  prometheus.Gauge
	Published       *prometheus.CounterVec // result: stored, duplicate, rejected, failed
	Delivered       prometheus.Counter
	PublishSeconds  prometheus.Histogram
	DeliverySeconds prometheus.Histogram
	Replays         prometheus.Counter
	Replayed        prometheus.Counter
	SlowDisconnects prometheus.Counter
	Withheld        prometheus.Counter
	ConnsRefused    *prometheus.CounterVec // reason: max_conns, max_conns_per_ip
	AuthRefused     *prometheus.CounterVec // reason: no_token, invalid_token, bad_subject, impersonation, no_grant
	RateLimited     *prometheus.CounterVec // limit: publish_user, publish_ip, streams_user
	NATSReconnects  prometheus.Counter
	HTTPRequests    *prometheus.CounterVec   // route, method, code
	HTTPSeconds     *prometheus.HistogramVec // route
}

// Sources are values read when metrics are scraped.
type Sources struct {
	Rooms         func() float64
	NATSConnected func() float64
	Backfills     func() float64
	// Coalesced counts the SSE writes the stream loop held back to
	// gather more messages (nil: no stream loop).
	Coalesced func() float64
	// Conns is the number of open HTTP connections counted against the
	// connection limits; nil leaves the gauge out.
	Conns func() float64
}

// New returns the gateway's metrics, registered with Go and process
// collectors and the gauges read from src.
func New(src Sources) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		SSEConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_sse_connections", Help: "Open SSE connections.",
		}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_published_total", Help: "Publish requests by result: stored, duplicate (an idempotent retry), rejected (bad input), failed (NATS unavailable).",
		}, []string{"result"}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_delivered_total", Help: "Message events written to SSE clients (one per message per client).",
		}),
		PublishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_publish_seconds", Help: "Time to store a published message (JetStream acknowledgement).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		DeliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_delivery_latency_seconds", Help: "From a message's envelope timestamp to this gateway queueing it to its listeners.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		Replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_replays_total", Help: "Listeners that resumed from a cursor.",
		}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_replayed_messages_total", Help: "Messages sent from history to resuming listeners.",
		}),
		SlowDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_slow_client_disconnects_total", Help: "Listeners cut off because their queue overflowed.",
		}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_http_connections_refused_total", Help: "HTTP connections refused by reason: max_conns (the gateway is full), max_conns_per_ip (the client's address is).",
		}, []string{"reason"}),
		AuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_auth_refused_total", Help: "Requests refused by authentication (401: no_token, invalid_token) or authorization (403: bad_subject, impersonation, no_grant).",
		}, []string{"reason"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_rate_limited_total", Help: "Requests refused with 429 by limit: publish_user and publish_ip (publish rates), streams_user (open streams of one user).",
		}, []string{"limit"}),
		Withheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_withheld_total", Help: "Stored messages withheld from listeners and history pages because they break the message rules (published with NATS directly), counted each time one is read.",
		}),
		NATSReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_nats_reconnects_total", Help: "Reconnections to NATS.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chat_http_request_seconds", Help: "HTTP request durations by route (SSE streams: how long they stayed open).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.SSEConnections, m.Published, m.Delivered, m.PublishSeconds, m.DeliverySeconds,
		m.Replays, m.Replayed, m.SlowDisconnects, m.Withheld, m.ConnsRefused, m.AuthRefused, m.RateLimited, m.NATSReconnects, m.HTTPRequests, m.HTTPSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chat_rooms_active", Help: "Rooms with at least one listener on this gateway."}, src.Rooms),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chat_nats_connected", Help: "1 while connected to NATS, else 0."}, src.NATSConnected),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chat_feed_backfills_total", Help: "Holes in a room's live feed filled from history."}, src.Backfills),
	)
	if src.Coalesced != nil {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chat_sse_coalesced_total", Help: "SSE writes the stream loop held back to send them together with later messages, while it was behind."}, src.Coalesced))
	}
	if src.Conns != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chat_http_connections", Help: "Open HTTP connections, SSE streams included."}, src.Conns))
	}
	return m
}
