package gateway_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
)

// A user publishing over its rate gets 429 with Retry-After and nothing
// is stored; another user is unaffected. A user's streams are bounded
// too, and a closed one frees its place.
func TestPerUserLimits(t *testing.T) {
	iss := newIssuer(t)
	g := startGateway(t, "gw-limits", "", func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience}
		o.PublishRate, o.PublishBurst = 0.5, 3 // one message every 2 s, bursts of 3
		o.MaxStreamsPerUser = 2
	})
	base := g.URL()
	ana := iss.token(t, "ana", grants{Publish: []string{"*"}, Subscribe: []string{"*"}})
	bo := iss.token(t, "bo", grants{Publish: []string{"*"}, Subscribe: []string{"*"}})
	publish := func(tok, text string) response {
		return do(t, http.MethodPost, base+"/rooms/rates/messages", "application/json",
			strings.NewReader(`{"text":"`+text+`"}`), bearer(tok))
	}
	for i := range 3 {
		if r := publish(ana, "burst "+strconv.Itoa(i)); r.status != http.StatusCreated {
			t.Fatalf("publish %d of the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := publish(ana, "over the rate")
	if r.status != http.StatusTooManyRequests || r.errorCode() != "rate_limited" {
		t.Fatalf("publish over the rate: %d %s; want 429 rate_limited", r.status, r.body)
	}
	if after, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || after < 1 || after > 2 {
		t.Fatalf("Retry-After %q; want 1 or 2 seconds", r.header.Get("Retry-After"))
	}
	if r := publish(bo, "bo is not limited by ana"); r.status != http.StatusCreated {
		t.Fatalf("another user's publish: %d %s", r.status, r.body)
	}
	h := do(t, http.MethodGet, base+"/rooms/rates/messages", "", nil, bearer(ana))
	if strings.Contains(string(h.body), "over the rate") || strings.Count(string(h.body), `"text"`) != 4 {
		t.Fatalf("history holds what was refused, or misses what was stored: %s", h.body)
	}

	header := http.Header{"Authorization": {"Bearer " + ana}}
	s1 := ssetest.Open(t, base+"/rooms/rates/events", header)
	ssetest.Open(t, base+"/rooms/rates/events", header)
	third := do(t, http.MethodGet, base+"/rooms/rates/events", "", nil, bearer(ana))
	if third.status != http.StatusTooManyRequests || third.errorCode() != "too_many_streams" {
		t.Fatalf("a third stream: %d %s; want 429 too_many_streams", third.status, third.body)
	}
	ssetest.Open(t, base+"/rooms/rates/events", http.Header{"Authorization": {"Bearer " + bo}})
	s1.Close()
	// The gateway notices the closed stream and frees its place.
	deadline := time.Now().Add(wait)
	for {
		s, err := ssetest.Dial(base+"/rooms/rates/events", header)
		if err == nil {
			s.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream accepted after one was closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := do(t, http.MethodGet, base+"/metrics", "", nil, nil)
	for _, want := range []string{`chat_rate_limited_total{limit="publish_user"} 1`, `chat_rate_limited_total{limit="streams_user"}`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
