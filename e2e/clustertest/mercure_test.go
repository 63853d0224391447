package clustertest_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/e2e/clustertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/golang-jwt/jwt/v5"
)

// mercureSecret is the HS256 secret every gateway of a Mercure mesh
// shares (a Mercure hub's default development secret).
const mercureSecret = "!ChangeThisMercureHubJWTSecretKey!"

// mercureToken signs a token whose only claim is mercure, with a header
// of just {"alg":"HS256"}, as the tokens of Mercure's conformance suite.
func mercureToken(t *testing.T, claim map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claim})
	delete(tok.Header, "typ")
	s, err := tok.SignedString([]byte(mercureSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startMercureMesh starts a 3-node peer mesh whose gateways all serve a
// Mercure hub with the same secret, anonymous subscribers allowed.
func startMercureMesh(t *testing.T, args ...string) []*clustertest.Gateway {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "mercure.secret")
	if err := os.WriteFile(secret, []byte(mercureSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	return clustertest.StartMesh(t, 3, append([]string{"--mercure", "--mercure-jwt-secret-file", secret, "--mercure-anonymous"}, args...)...)
}

// mercureClient is a Mercure client of a mesh: it publishes with a token
// allowed every topic and subscribes by topic selectors.
type mercureClient struct {
	t   *testing.T
	pub string
}

func newMercureClient(t *testing.T) *mercureClient {
	return &mercureClient{t: t, pub: mercureToken(t, map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}})}
}

// publish posts form to the hub at base as Mercure's docs and conformance
// suite do, checks the answer is 200 text/plain, and returns the id.
func (c *mercureClient) publish(base string, form url.Values) string {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+c.pub)
	client := http.Client{Timeout: wait}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("publish %v on %s: %v", form, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		c.t.Fatalf("publish %v on %s: %d %q %q", form, base, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if id := form.Get("id"); id != "" && string(body) != id {
		c.t.Fatalf("publish with id %q answered %q", id, body)
	}
	return string(body)
}

// subscribe opens a stream of the hub at base for selectors, with a
// subscriber token (none: anonymous) and a Last-Event-ID (none: "").
func (c *mercureClient) subscribe(base, token, lastEventID string, selectors ...string) *ssetest.Stream {
	c.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if lastEventID != "" {
		h.Set("Last-Event-ID", lastEventID)
	}
	return ssetest.OpenBare(c.t, base+"/.well-known/mercure?"+url.Values{"topic": selectors}.Encode(), h)
}

// next returns the next event of s.
func (c *mercureClient) next(who string, s *ssetest.Stream) ssetest.Event {
	c.t.Helper()
	ev, err := s.Next(wait)
	if err != nil {
		c.t.Fatalf("%s: no update: %v", who, err)
	}
	return ev
}

// expect fails unless the next event of s is the update with id and data.
func (c *mercureClient) expect(who string, s *ssetest.Stream, id, data string) {
	c.t.Helper()
	if ev := c.next(who, s); ev.ID != id || ev.Data != data || ev.Event != "" {
		c.t.Fatalf("%s got %+v; want id %q, data %q", who, ev, id, data)
	}
}

// The Mercure hub of a 3-node mesh, with each stream writer: the cases of
// Mercure's conformance suite with the subscriber on another gateway than
// the publisher, and resuming across gateways.
func TestMercureMesh(t *testing.T) {
	t.Parallel()
	for _, writer := range []string{"loop", "handler"} {
		t.Run(writer, func(t *testing.T) {
			t.Parallel()
			gws := startMercureMesh(t, "--sse-writer", writer)
			t.Run("conformance", func(t *testing.T) { testMercureConformance(t, gws) })
			t.Run("resume", func(t *testing.T) { testMercureResume(t, gws) })
		})
	}
}

// conformanceCase is a case of Mercure's conformance suite
// (conformance-tests/mercure.spec.ts, "Publish update").
type conformanceCase struct {
	name                   string
	updateTopics           []string
	selectors              []string
	received, private      bool
	proofTopic             string // matches selectors: published after an update that must not be received
	claimSelectors         []string
	subscriber, publisher  int // gateways, by index
	authorizedSubscriberOn int
}

func testMercureConformance(t *testing.T, gws []*clustertest.Gateway) {
	r := make([]string, 5)
	for i := range r {
		r[i] = strings.ToLower(rand.Text())
	}
	cases := []conformanceCase{
		{name: "raw string", received: true, updateTopics: []string{r[0]}, selectors: []string{r[0]}},
		{name: "multiple topics", received: true, updateTopics: []string{rand.Text(), r[1]}, selectors: []string{r[1]}},
		{name: "multiple topic selectors", received: true, updateTopics: []string{r[2]}, selectors: []string{"foo", r[2]}},
		{name: "URI", received: true, updateTopics: []string{"https://example.net/foo/" + r[3]}, selectors: []string{"https://example.net/foo/" + r[3]}},
		{name: "URI template", received: true, updateTopics: []string{"https://example.net/foo/" + r[4]}, selectors: []string{"https://example.net/foo/{random}"}},
		{name: "nonmatching raw string", updateTopics: []string{"will-not-match}"}, selectors: []string{"another-name"}, proofTopic: "another-name"},
		{name: "nonmatching URI", updateTopics: []string{"https://example.net/foo/will-not-match}"}, selectors: []string{"https://example.net/foo/another-name"}, proofTopic: "https://example.net/foo/another-name"},
		{name: "nonmatching URI template", updateTopics: []string{"https://example.net/foo/will-not-match}"}, selectors: []string{"https://example.net/bar/{var}"}, proofTopic: "https://example.net/bar/proof"},
		{name: "private raw string", private: true, updateTopics: []string{r[0]}, selectors: []string{r[0]}, proofTopic: r[0], claimSelectors: []string{r[0]}},
		{name: "private URI", private: true, updateTopics: []string{"https://example.net/foo/" + r[3]}, selectors: []string{"https://example.net/foo/" + r[3]}, proofTopic: "https://example.net/foo/" + r[3], claimSelectors: []string{"https://example.net/foo/" + r[3]}},
		{name: "private URI template", private: true, updateTopics: []string{"https://example.net/foo/" + r[4]}, selectors: []string{"https://example.net/foo/{random}"}, proofTopic: "https://example.net/foo/" + r[4], claimSelectors: []string{"https://example.net/foo/{random}"}},
	}
	for i, tc := range cases {
		// The subscriber is on one gateway, the publisher on the next, a
		// subscriber with a token (private cases) on the third.
		tc.subscriber, tc.publisher, tc.authorizedSubscriberOn = i%3, (i+1)%3, (i+2)%3
		t.Run(tc.name, func(t *testing.T) { checkConformanceCase(t, gws, tc) })
	}
}

func checkConformanceCase(t *testing.T, gws []*clustertest.Gateway, tc conformanceCase) {
	c := newMercureClient(t)
	topics, _ := json.Marshal(tc.updateTopics)
	id := "id-" + string(topics)
	data := "data for\n\n        " + tc.name
	anon := c.subscribe(gws[tc.subscriber].URL, "", "", tc.selectors...)
	var authorized *ssetest.Stream
	if tc.private {
		authorized = c.subscribe(gws[tc.authorizedSubscriberOn].URL, mercureToken(t, map[string]any{"subscribe": tc.claimSelectors}), "", tc.selectors...)
	}
	form := url.Values{"topic": tc.updateTopics, "id": {id}, "data": {data}}
	if tc.private {
		form.Set("private", "on")
	}
	c.publish(gws[tc.publisher].URL, form)
	if tc.received {
		c.expect("subscriber on "+gws[tc.subscriber].Name, anon, id, data)
		return
	}
	// Not received: the next update the subscriber gets is a matching one
	// published afterwards, which the stream delivers after the first.
	proofID := "proof-" + rand.Text()
	c.publish(gws[tc.publisher].URL, url.Values{"topic": {tc.proofTopic}, "id": {proofID}, "data": {"proof"}})
	c.expect("anonymous subscriber on "+gws[tc.subscriber].Name, anon, proofID, "proof")
	if authorized != nil {
		who := "subscriber with a matching mercure.subscribe claim on " + gws[tc.authorizedSubscriberOn].Name
		c.expect(who, authorized, id, data)
		c.expect(who, authorized, proofID, "proof")
	}
}

// A subscriber resumes on any gateway from the last id it got, whichever
// gateway assigned it: exactly what it missed, in order, then live
// updates; "earliest" replays every retained update on every gateway; a
// publisher's own id resumes across gateways too.
func testMercureResume(t *testing.T, gws []*clustertest.Gateway) {
	c := newMercureClient(t)
	a, b, cc := gws[0].URL, gws[1].URL, gws[2].URL
	feed := "https://example.com/feeds/" + strings.ToLower(rand.Text())
	selector := feed + "/{n}"
	var all []string // ids of the feed's updates, in order
	pub := func(base string, n int, form url.Values) string {
		t.Helper()
		form.Set("topic", fmt.Sprintf("%s/%d", feed, n))
		form.Set("data", fmt.Sprintf("update %d\n\nof the feed", n))
		id := c.publish(base, form)
		all = append(all, id)
		return id
	}
	data := func(n int) string { return fmt.Sprintf("update %d\n\nof the feed", n) }

	s := c.subscribe(a, "", "", selector)
	first := pub(b, 0, url.Values{})
	c.expect("subscriber on "+gws[0].Name, s, first, data(0))
	s.Close()

	var missed []string
	for n := 1; n <= 20; n++ {
		missed = append(missed, pub(b, n, url.Values{}))
		// Updates of other topics, interleaved, are not replayed.
		c.publish(b, url.Values{"topic": {feed}, "data": {"not matched"}})
	}
	s = c.subscribe(cc, "", first, selector)
	if got := s.Resp.Header.Get("Last-Event-ID"); got != first {
		t.Errorf("resume on %s answered Last-Event-ID %q, want %q", gws[2].Name, got, first)
	}
	for i, id := range missed {
		c.expect("resumed on "+gws[2].Name, s, id, data(i+1))
	}
	live := pub(a, 21, url.Values{})
	c.expect("resumed on "+gws[2].Name+", live", s, live, data(21))
	s.Close()

	// A publisher's id, then 3 updates: resuming from it on another
	// gateway gives those 3.
	custom := pub(cc, 22, url.Values{"id": {"custom-" + rand.Text()}})
	var after []string
	for n := 23; n <= 25; n++ {
		after = append(after, pub(a, n, url.Values{}))
	}
	s = c.subscribe(b, "", custom, selector)
	if got := s.Resp.Header.Get("Last-Event-ID"); got != custom {
		t.Errorf("resume from a publisher's id answered Last-Event-ID %q, want %q", got, custom)
	}
	for i, id := range after {
		c.expect("resumed from a publisher's id on "+gws[1].Name, s, id, data(23+i))
	}
	s.Close()

	// earliest, on each gateway: every update of the feed, then only what
	// is published next.
	for i, g := range gws {
		s := c.subscribe(g.URL, "", "earliest", selector)
		if got := s.Resp.Header.Get("Last-Event-ID"); got != "earliest" {
			t.Errorf("earliest on %s answered Last-Event-ID %q", g.Name, got)
		}
		var got []string
		for range all {
			got = append(got, c.next("earliest on "+g.Name, s).ID)
		}
		if !slices.Equal(got, all) {
			t.Fatalf("earliest on %s replayed %v\nwant %v", g.Name, got, all)
		}
		n := 26 + i
		next := pub(gws[(i+1)%3].URL, n, url.Values{})
		c.expect("earliest on "+g.Name+", live", s, next, data(n))
		s.Close()
	}
}
