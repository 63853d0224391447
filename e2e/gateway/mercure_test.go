package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/golang-jwt/jwt/v5"
)

// mercureSecret signs the test's Mercure tokens (HS256), as a Mercure
// hub's MERCURE_JWT_SECRET would.
const mercureSecret = "!ChangeThisMercureHubJWTSecretKey!"

// mercureToken signs a token with a mercure claim.
func mercureToken(t *testing.T, secret string, claim map[string]any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claim}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startMercure starts a gateway serving a Mercure hub with the test's
// secret, subscribers without a token allowed.
func startMercure(t *testing.T, name string, mod ...func(*gateway.Options)) *gateway.Gateway {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "mercure.secret")
	if err := os.WriteFile(secret, []byte(mercureSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	return startGateway(t, name, "", append([]func(*gateway.Options){func(o *gateway.Options) {
		o.Mercure = gateway.MercureOptions{Enabled: true, Keys: gateway.AuthOptions{SecretFile: secret}, Anonymous: true}
	}}, mod...)...)
}

// mercurePublish posts a form to the hub and returns the answer.
func mercurePublish(t *testing.T, base, token string, form url.Values, header map[string]string) response {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	for k, v := range header {
		h[k] = v
	}
	return do(t, http.MethodPost, base+"/.well-known/mercure", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), h)
}

// subscribeURL returns the hub's subscribe URL for selectors.
func subscribeURL(base string, selectors ...string) string {
	q := url.Values{"topic": selectors}
	return base + "/.well-known/mercure?" + q.Encode()
}

// nextUpdate returns the next event of a Mercure stream.
func nextUpdate(t *testing.T, s *ssetest.Stream) ssetest.Event {
	t.Helper()
	ev, err := s.Next(wait)
	if err != nil {
		t.Fatalf("no update: %v", err)
	}
	return ev
}

// A publish as Mercure's docs show it (curl -d topic=… -d data=… with a
// bearer token) is answered 200 with the update's id as text/plain, and an
// anonymous subscriber to the topic gets it in Mercure's frame format,
// with Mercure's response headers.
func TestMercurePublishAndSubscribe(t *testing.T) {
	g := startMercure(t, "gw-mercure")
	base := g.URL()
	pub := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}})
	s := ssetest.OpenBare(t, subscribeURL(base, "https://example.com/books/{id}", "urn:other"), nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "private, no-cache, no-store, must-revalidate, max-age=0",
		"X-Accel-Buffering": "no",
		"Expire":            "0",
		"Pragma":            "no-cache",
	} {
		if got := s.Resp.Header.Get(k); got != want {
			t.Errorf("subscribe header %s = %q, want %q", k, got, want)
		}
	}
	r := mercurePublish(t, base, pub, url.Values{"topic": {"https://example.com/books/1"}, "data": {"{\"title\":\"one\"}\n\nsecond line"}, "type": {"book"}, "retry": {"5000"}}, nil)
	id := string(r.body)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || !strings.HasPrefix(id, "urn:uuid:") {
		t.Fatalf("publish: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	ev := nextUpdate(t, s)
	if ev.ID != id || ev.Event != "book" || ev.Retry != "5000" || ev.Data != "{\"title\":\"one\"}\n\nsecond line" {
		t.Fatalf("update = %+v, want id %s, type book, retry 5000 and the data byte for byte", ev, id)
	}
	// A topic no selector matches is not received; one the second selector
	// matches exactly is; the publisher's own id is kept.
	mercurePublish(t, base, pub, url.Values{"topic": {"https://example.com/authors/1"}, "data": {"not for us"}}, nil)
	r = mercurePublish(t, base, pub, url.Values{"topic": {"urn:other"}, "data": {"exact"}, "id": {"my-id-1"}}, nil)
	if string(r.body) != "my-id-1" {
		t.Fatalf("publish with an id answered %q", r.body)
	}
	if ev := nextUpdate(t, s); ev.ID != "my-id-1" || ev.Data != "exact" {
		t.Fatalf("update = %+v, want my-id-1", ev)
	}
}

// Refusals, each as a Mercure hub answers it, and nothing delivered.
func TestMercureRefusals(t *testing.T) {
	g := startMercure(t, "gw-mercure-refusals")
	base := g.URL()
	pubBooks := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"https://example.com/books/{id}"}})
	forged := mercureToken(t, "another secret of at least 32 bytes!!", map[string]any{"publish": []string{"*"}})
	s := ssetest.OpenBare(t, subscribeURL(base, "*"), nil)
	topic := url.Values{"topic": {"https://example.com/books/1"}, "data": {"x"}}
	for _, tc := range []struct {
		name   string
		token  string
		form   url.Values
		header map[string]string
		status int
		body   string
	}{
		{"no token", "", topic, nil, http.StatusUnauthorized, "Unauthorized"},
		{"bad signature", forged, topic, nil, http.StatusUnauthorized, "Unauthorized"},
		{"no publish claim", mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"*"}}), topic, nil, http.StatusUnauthorized, "Unauthorized"},
		{"topic outside the claim", pubBooks, url.Values{"topic": {"https://example.com/authors/1"}}, nil, http.StatusUnauthorized, "Unauthorized"},
		{"one of two topics outside the claim", pubBooks, url.Values{"topic": {"https://example.com/books/1", "https://example.com/authors/1"}}, nil, http.StatusUnauthorized, "Unauthorized"},
		{"not Bearer", "", topic, map[string]string{"Authorization": "Basic abc"}, http.StatusUnauthorized, "Unauthorized"},
		{"missing topic", pubBooks, url.Values{"data": {"x"}}, nil, http.StatusBadRequest, `Missing "topic" parameter`},
		{"bad retry", pubBooks, url.Values{"topic": {"https://example.com/books/1"}, "retry": {"soon"}}, nil, http.StatusBadRequest, `Invalid "retry" parameter`},
		{"newline in id", pubBooks, url.Values{"topic": {"https://example.com/books/1"}, "id": {"a\nb"}}, nil, http.StatusBadRequest, `"id" field contains a forbidden control character`},
		{"CR in type", pubBooks, url.Values{"topic": {"https://example.com/books/1"}, "type": {"a\rb"}}, nil, http.StatusBadRequest, `"type" field contains a forbidden control character`},
		{"reserved topic", mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}}), url.Values{"topic": {"/.well-known/mercure/subscriptions/x"}}, nil, http.StatusForbidden, "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mercurePublish(t, base, tc.token, tc.form, tc.header)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.body) {
				t.Fatalf("%d %q; want %d with %q", r.status, r.body, tc.status, tc.body)
			}
		})
	}
	// A cookie-authorized publish must come from a publish origin.
	cookie := map[string]string{"Cookie": "mercureAuthorization=" + pubBooks, "Origin": "https://evil.example"}
	if r := mercurePublish(t, base, "", topic, cookie); r.status != http.StatusUnauthorized {
		t.Errorf("cookie publish from another origin: %d %s", r.status, r.body)
	}
	delete(cookie, "Origin")
	if r := mercurePublish(t, base, "", topic, cookie); r.status != http.StatusUnauthorized {
		t.Errorf("cookie publish without an origin: %d %s", r.status, r.body)
	}
	// Subscribing: a bad token is refused even with anonymous on; no topic
	// is a 400.
	for _, tc := range []struct {
		name, url string
		header    map[string]string
		status    int
	}{
		{"bad token", subscribeURL(base, "*"), map[string]string{"Authorization": "Bearer " + forged}, http.StatusUnauthorized},
		{"bad token in the query", subscribeURL(base, "*") + "&authorization=" + forged, nil, http.StatusUnauthorized},
		{"no topic", base + "/.well-known/mercure", nil, http.StatusBadRequest},
	} {
		if r := do(t, http.MethodGet, tc.url, "", nil, tc.header); r.status != tc.status {
			t.Errorf("subscribe, %s: %d %s; want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	if r := do(t, http.MethodPut, base+"/.well-known/mercure", "", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
	// Nothing refused was delivered: the first update the stream gets is
	// the one published now.
	pubAll := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}})
	mercurePublish(t, base, pubAll, url.Values{"topic": {"proof"}, "data": {"after the refusals"}}, nil)
	if ev := nextUpdate(t, s); ev.Data != "after the refusals" {
		t.Fatalf("first update after the refusals = %+v", ev)
	}
}

// Without --mercure-anonymous a subscriber needs a token.
func TestMercureSubscribeNeedsATokenUnlessAnonymous(t *testing.T) {
	g := startMercure(t, "gw-mercure-closed", func(o *gateway.Options) { o.Mercure.Anonymous = false })
	if r := do(t, http.MethodGet, subscribeURL(g.URL(), "*"), "", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous subscribe: %d %s", r.status, r.body)
	}
	sub := mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"*"}})
	s := ssetest.OpenBare(t, subscribeURL(g.URL(), "*"), http.Header{"Cookie": {"mercureAuthorization=" + sub}})
	pub := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}})
	mercurePublish(t, g.URL(), pub, url.Values{"topic": {"t"}, "data": {"hello"}}, nil)
	if ev := nextUpdate(t, s); ev.Data != "hello" {
		t.Fatalf("update = %+v", ev)
	}
}

// Private updates reach only subscribers one of whose subscribe-claim
// selectors matches one of the update's topics (the alternate topic as a
// capability, as in Mercure's spec).
func TestMercurePrivateUpdates(t *testing.T) {
	g := startMercure(t, "gw-mercure-private")
	base := g.URL()
	pub := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}})
	anon := ssetest.OpenBare(t, subscribeURL(base, "https://example.com/books/{id}"), nil)
	ana := ssetest.OpenBare(t, subscribeURL(base, "https://example.com/books/{id}"), http.Header{
		"Authorization": {"Bearer " + mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"https://example.com/users/ana/{?topic}"}})},
	})
	bo := ssetest.OpenBare(t, subscribeURL(base, "https://example.com/books/{id}")+"&authorization="+
		mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"https://example.com/users/bo/{?topic}"}}), nil)
	for i, form := range []url.Values{
		{"topic": {"https://example.com/books/1", "https://example.com/users/ana/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"}, "data": {"for ana"}, "private": {"on"}},
		{"topic": {"https://example.com/books/2"}, "data": {"private to no one"}, "private": {""}},
		{"topic": {"https://example.com/books/3"}, "data": {"public"}},
	} {
		if r := mercurePublish(t, base, pub, form, nil); r.status != http.StatusOK {
			t.Fatalf("publish %d: %d %s", i, r.status, r.body)
		}
	}
	if ev := nextUpdate(t, ana); ev.Data != "for ana" {
		t.Fatalf("ana's first update = %+v, want the private one", ev)
	}
	for name, s := range map[string]*ssetest.Stream{"anonymous": anon, "ana": ana, "bo": bo} {
		if ev := nextUpdate(t, s); ev.Data != "public" {
			t.Errorf("%s got %+v, want the public update next", name, ev)
		}
	}
}

// A subscriber resumes by Last-Event-ID (header or lastEventID query):
// exactly what it missed, in order; "earliest" replays everything kept;
// an id the hub does not know replays nothing and is answered "earliest",
// as a Mercure hub does.
func TestMercureResume(t *testing.T) {
	g := startMercure(t, "gw-mercure-resume")
	base := g.URL()
	pub := mercureToken(t, mercureSecret, map[string]any{"publish": []string{"*"}})
	publish := func(data, id string) string {
		t.Helper()
		form := url.Values{"topic": {"https://example.com/feed"}, "data": {data}}
		if id != "" {
			form.Set("id", id)
		}
		r := mercurePublish(t, base, pub, form, nil)
		if r.status != http.StatusOK {
			t.Fatalf("publish %s: %d %s", data, r.status, r.body)
		}
		return string(r.body)
	}
	first := publish("before", "")
	custom := publish("with an id", "custom-resume-id")
	var missed []string
	for i := range 20 {
		missed = append(missed, publish(fmt.Sprintf("missed %d", i), ""))
	}
	sel := subscribeURL(base, "https://example.com/feed")
	read := func(s *ssetest.Stream, n int) []string {
		t.Helper()
		var ids []string
		for range n {
			ids = append(ids, nextUpdate(t, s).ID)
		}
		return ids
	}
	s := ssetest.OpenBare(t, sel, http.Header{"Last-Event-ID": {custom}})
	if got := s.Resp.Header.Get("Last-Event-ID"); got != custom {
		t.Errorf("Last-Event-ID answered %q, want %q", got, custom)
	}
	if got := read(s, 20); strings.Join(got, " ") != strings.Join(missed, " ") {
		t.Fatalf("after the publisher's id: %v\nwant %v", got, missed)
	}
	live := publish("live", "")
	if got := nextUpdate(t, s); got.ID != live {
		t.Fatalf("after the replay: %+v, want the live update %s", got, live)
	}
	s.Close()

	s = ssetest.OpenBare(t, sel+"&lastEventID="+url.QueryEscape(missed[9]), nil)
	if got := read(s, 11); strings.Join(got, " ") != strings.Join(append(missed[10:], live), " ") {
		t.Fatalf("after a hub id, by query: %v", got)
	}
	s.Close()

	s = ssetest.OpenBare(t, sel, http.Header{"Last-Event-ID": {"earliest"}})
	if got := read(s, 23); got[0] != first || got[1] != custom || got[22] != live {
		t.Fatalf("earliest: %v", got)
	}
	s.Close()

	s = ssetest.OpenBare(t, sel, http.Header{"Last-Event-ID": {"no-such-id"}})
	if got := s.Resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Errorf("an unknown id answered Last-Event-ID %q, want earliest", got)
	}
	after := publish("after an unknown id", "")
	if got := nextUpdate(t, s); got.ID != after {
		t.Fatalf("after an unknown id: %+v, want only the live update", got)
	}
}

// The hub's plain answers carry no JSON: a Mercure client library reads
// the id as the whole body.
func TestMercurePublishBodyIsTheID(t *testing.T) {
	g := startMercure(t, "gw-mercure-body")
	req, err := http.NewRequest(http.MethodPost, g.URL()+"/.well-known/mercure", strings.NewReader("topic=a&data=b"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+mercureToken(t, mercureSecret, map[string]any{"publish": []string{"a"}}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "urn:uuid:") || strings.ContainsAny(string(b), "\n{") {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// With --mercure-subscriptions: a subscriber's connection and
// disconnection (announced by the presence service) publish private
// subscription events (JSON-LD, one per
// selector) that a subscriber of the subscriptions topic with a matching
// claim receives, and the subscriptions API lists the active
// subscriptions of every gateway, in JSON-LD, to a token whose subscribe
// claim matches the request URI.
func TestMercureSubscriptions(t *testing.T) {
	node := nodetest.StartNode(t)
	secret := filepath.Join(t.TempDir(), "mercure.secret")
	if err := os.WriteFile(secret, []byte(mercureSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	on := func(o *gateway.Options) {
		o.Mercure = gateway.MercureOptions{Enabled: true, Keys: gateway.AuthOptions{SecretFile: secret}, Anonymous: true, Subscriptions: true}
	}
	// The events come from the presence service, which gateway a runs.
	a := startGateway(t, "gw-subs-a", node.ClientURL(), on, func(o *gateway.Options) { o.Services = "in-process" })
	b := startGateway(t, "gw-subs-b", node.ClientURL(), on)
	admin := mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"/.well-known/mercure/subscriptions{/topic}{/subscriber}"}})
	watcher := ssetest.OpenBare(t, subscribeURL(a.URL(), "/.well-known/mercure/subscriptions{/topic}{/subscriber}"), http.Header{"Authorization": {"Bearer " + admin}})

	// A subscriber on gateway b, with a payload in its token.
	subTok := mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"*"}, "payload": map[string]any{"user": "ana"}})
	books := "https://example.com/books/{id}"
	s := ssetest.OpenBare(t, subscribeURL(b.URL(), books), http.Header{"Authorization": {"Bearer " + subTok}})
	ev := nextUpdate(t, watcher)
	var doc struct {
		Context    string         `json:"@context"`
		ID         string         `json:"id"`
		Type       string         `json:"type"`
		Subscriber string         `json:"subscriber"`
		Topic      string         `json:"topic"`
		Active     bool           `json:"active"`
		Payload    map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &doc); err != nil || !doc.Active || doc.Topic != books || doc.Type != "Subscription" ||
		doc.Context != "https://mercure.rocks/" || !strings.HasPrefix(doc.Subscriber, "urn:uuid:") || doc.Payload["user"] != "ana" ||
		doc.ID != "/.well-known/mercure/subscriptions/"+url.QueryEscape(books)+"/"+url.QueryEscape(doc.Subscriber) {
		t.Fatalf("subscription event = %+v (%v) from %q", doc, err, ev.Data)
	}

	// The API, asked on gateway a, lists the subscriber of gateway b.
	api := func(path, tok string) response {
		t.Helper()
		return do(t, http.MethodGet, a.URL()+path, "", nil, map[string]string{"Authorization": "Bearer " + tok})
	}
	r := api("/.well-known/mercure/subscriptions", admin)
	var list struct {
		Context       string `json:"@context"`
		Type          string `json:"type"`
		LastEventID   string `json:"lastEventID"`
		Subscriptions []struct {
			ID, Subscriber, Topic string
			Active                bool
		} `json:"subscriptions"`
	}
	if err := json.Unmarshal(r.body, &list); r.status != http.StatusOK || err != nil || r.header.Get("Content-Type") != "application/ld+json" ||
		list.Type != "Subscriptions" || !strings.HasPrefix(list.LastEventID, "urn:uuid:") {
		t.Fatalf("subscriptions: %d %s", r.status, r.body)
	}
	found := false
	for _, sub := range list.Subscriptions {
		found = found || sub.Subscriber == doc.Subscriber && sub.Topic == books && sub.Active && sub.ID == doc.ID
	}
	if !found {
		t.Fatalf("the subscriber on gateway b is not listed: %s", r.body)
	}
	if r := api(doc.ID, admin); r.status != http.StatusOK || !strings.Contains(string(r.body), `"lastEventID"`) || !strings.Contains(string(r.body), doc.Subscriber) {
		t.Fatalf("one subscription: %d %s", r.status, r.body)
	}
	if r := api("/.well-known/mercure/subscriptions/"+url.QueryEscape(books), admin); r.status != http.StatusOK || !strings.Contains(string(r.body), doc.Subscriber) {
		t.Fatalf("a selector's subscriptions: %d %s", r.status, r.body)
	}
	if r := api("/.well-known/mercure/subscriptions/"+url.QueryEscape(books)+"/urn%3Auuid%3Anobody", admin); r.status != http.StatusNotFound {
		t.Fatalf("an unknown subscription: %d %s", r.status, r.body)
	}
	if r := api("/.well-known/mercure/subscriptions", subTok); r.status != http.StatusOK {
		t.Fatalf("a subscribe claim of * may list: %d", r.status)
	}
	narrow := mercureToken(t, mercureSecret, map[string]any{"subscribe": []string{"https://example.com/books/{id}"}})
	if r := api("/.well-known/mercure/subscriptions", narrow); r.status != http.StatusUnauthorized {
		t.Fatalf("a claim not matching the API's URI: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, a.URL()+"/.well-known/mercure/subscriptions", "", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}

	// Disconnecting publishes the inactive event, and the API forgets it.
	s.Close()
	ev = nextUpdate(t, watcher)
	if err := json.Unmarshal([]byte(ev.Data), &doc); err != nil || doc.Active {
		t.Fatalf("the disconnection event = %+v, %v", doc, err)
	}
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if r := api(doc.ID, admin); r.status != http.StatusNotFound {
			return fmt.Errorf("the closed subscription still answers %d", r.status)
		}
		return nil
	})
}

// Publishers' and subscribers' tokens may be RS256 with a public key file
// (--mercure-jwt-key-file); the key pins the algorithm, so an HS256 token
// signed with the public key is refused, and so is an expired token.
func TestMercureRSAKey(t *testing.T) {
	iss := newIssuer(t)
	g := startGateway(t, "gw-mercure-rsa", "", func(o *gateway.Options) {
		o.Mercure = gateway.MercureOptions{Enabled: true, Keys: gateway.AuthOptions{KeyFile: iss.file}}
	})
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	all := map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}}
	good := sign(jwt.SigningMethodRS256, iss.key, jwt.MapClaims{"mercure": all})
	s := ssetest.OpenBare(t, subscribeURL(g.URL(), "*"), http.Header{"Authorization": {"Bearer " + good}})
	for name, tok := range map[string]string{
		"HS256 with the public key": sign(jwt.SigningMethodHS256, iss.pubPEM, jwt.MapClaims{"mercure": all}),
		"expired":                   sign(jwt.SigningMethodRS256, iss.key, jwt.MapClaims{"mercure": all, "exp": time.Now().Add(-time.Minute).Unix()}),
	} {
		if r := mercurePublish(t, g.URL(), tok, url.Values{"topic": {"x"}, "data": {name}}, nil); r.status != http.StatusUnauthorized {
			t.Errorf("publish with a token %s: %d %s", name, r.status, r.body)
		}
	}
	if r := mercurePublish(t, g.URL(), good, url.Values{"topic": {"x"}, "data": {"signed with the RSA key"}, "private": {"on"}}, nil); r.status != http.StatusOK {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	if ev := nextUpdate(t, s); ev.Data != "signed with the RSA key" {
		t.Fatalf("update = %+v", ev)
	}
}
