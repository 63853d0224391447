package browsertest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// mercurePage subscribes as Mercure's docs show, to the hub named by its
// hub query parameter, and keeps what it receives in window.updates.
const mercurePage = `<!doctype html>
<meta charset="utf-8">
<title>Mercure subscriber</title>
<script>
window.updates = [];
window.opened = 0;
const hub = new URLSearchParams(location.search).get('hub');
const url = new URL(hub + '/.well-known/mercure');
url.searchParams.append('topic', 'https://example.com/books/{id}');
const es = new EventSource(url);
es.onopen = () => { window.opened++; };
es.onmessage = e => { window.updates.push({data: e.data, lastEventId: e.lastEventId}); };
</script>
`

// mercureSecret is the gateways' HS256 secret (Mercure's development one).
const mercureSecret = "!ChangeThisMercureHubJWTSecretKey!"

// update is what the page saw of a message event.
type update struct {
	Data        string `json:"data"`
	LastEventID string `json:"lastEventId"`
}

// startMercurePage serves mercurePage from an origin of its own and starts
// count gateways serving Mercure (anonymous subscribers allowed) that let
// that origin's pages read their answers (CORS). It returns the page's
// URL without the hub parameter.
func startMercurePage(t *testing.T, count int) (string, []*node) {
	t.Helper()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, mercurePage)
	}))
	t.Cleanup(page.Close)
	secret := filepath.Join(t.TempDir(), "mercure.secret")
	if err := os.WriteFile(secret, []byte(mercureSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := startNodes(t, count, func(o *gateway.Options) {
		o.Mercure = gateway.MercureOptions{Enabled: true, Keys: gateway.AuthOptions{SecretFile: secret}, Anonymous: true}
		o.CORSOrigins = []string{page.URL}
	})
	return page.URL, nodes
}

// openMercurePage opens the page on tab, subscribed to hub, and waits
// until its EventSource is open.
func openMercurePage(t *testing.T, tab context.Context, page, hub string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.Navigate(page+"/?hub="+url.QueryEscape(hub)))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`window.opened >= 1`))
}

// mercurePublish publishes as Mercure's docs do with curl (curl -d
// 'topic=…' -d 'data=…' -H 'Authorization: Bearer …' hub): a form POST
// with a token allowed to publish anything. It returns the update's id.
func mercurePublish(t *testing.T, hub string, form url.Values) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}).SignedString([]byte(mercureSecret))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, hub+"/.well-known/mercure", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	id, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %v: %d %q %v", form, resp.StatusCode, id, err)
	}
	return string(id)
}

// A page using EventSource exactly as Mercure's docs show, served from
// another origin than the gateway's, gets what a publisher posts as
// Mercure's docs show: the data byte for byte and the id as lastEventId.
func TestMercureEventSource(t *testing.T) {
	page, nodes := startMercurePage(t, 1)
	hub := nodes[0].URL()
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "mercure")
	openMercurePage(t, tab, page, hub)
	sent := []update{{Data: `{"foo": "updated value"}`}, {Data: "data for\n\n        the browser"}}
	mercurePublish(t, hub, url.Values{"topic": {"https://example.com/authors/1"}, "data": {"not for this page"}})
	for i := range sent {
		sent[i].LastEventID = mercurePublish(t, hub, url.Values{"topic": {fmt.Sprintf("https://example.com/books/%d", i+1)}, "data": {sent[i].Data}})
	}
	got := pageUpdates(t, tab, len(sent))
	if !slices.Equal(got, sent) {
		t.Fatalf("the page received %q, want %q", got, sent)
	}
}

// pageUpdates waits until the page has received n updates and returns
// them.
func pageUpdates(t *testing.T, tab context.Context, n int) []update {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](`(n) => window.updates.length >= n`, chromedp.WithPollingArgs(n)))
	return browsertest.Within(t, tab, wait, chromedp.Evaluate[[]update](`window.updates`))
}

// front is a load balancer in front of gateways: it passes each request to
// its backend, and without one holds requests until it has one, as a
// balancer waits for a healthy node. It notes the Last-Event-ID of each
// Mercure subscription that reaches it.
type front struct {
	mu          sync.Mutex
	backend     *httputil.ReverseProxy
	up          chan struct{} // closed when a backend is set
	held        int
	lastEventID []string
}

func newFront(t *testing.T, backend string) (*front, string) {
	t.Helper()
	f := &front{up: make(chan struct{})}
	f.route(t, backend)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// route sends requests to backend from now on ("": hold them).
func (f *front) route(t *testing.T, backend string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if backend == "" {
		if f.backend != nil {
			f.backend, f.up = nil, make(chan struct{})
		}
		return
	}
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	if f.backend == nil {
		close(f.up)
	}
	f.backend = httputil.NewSingleHostReverseProxy(u)
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if r.Method == http.MethodGet {
		f.lastEventID = append(f.lastEventID, r.Header.Get("Last-Event-ID"))
	}
	for f.backend == nil {
		up := f.up
		f.held++
		f.mu.Unlock()
		select {
		case <-up:
		case <-r.Context().Done():
			f.mu.Lock()
			f.held--
			f.mu.Unlock()
			return
		}
		f.mu.Lock()
		f.held--
	}
	backend := f.backend
	f.mu.Unlock()
	backend.ServeHTTP(w, r)
}

// holding returns how many requests wait for a backend.
func (f *front) holding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// subscriptions returns the Last-Event-ID of each GET that reached f.
func (f *front) subscriptions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lastEventID)
}

// When the gateway a page's EventSource uses stops, the browser
// reconnects by itself with Last-Event-ID, here through a balancer to the
// other gateway of the cluster, and the page misses nothing of what was
// published while it was away, and gets nothing twice.
func TestMercureEventSourceResumesOnAnotherGateway(t *testing.T) {
	page, nodes := startMercurePage(t, 2)
	lb, hub := newFront(t, nodes[1].URL())
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "mercure-resume")
	openMercurePage(t, tab, page, hub)
	var sent []update
	pub := func(base string) {
		t.Helper()
		n := len(sent) + 1
		u := update{Data: fmt.Sprintf("book %d\n\nupdated", n)}
		u.LastEventID = mercurePublish(t, base, url.Values{"topic": {fmt.Sprintf("https://example.com/books/%d", n)}, "data": {u.Data}})
		sent = append(sent, u)
	}
	pub(nodes[0].URL())
	pageUpdates(t, tab, 1)

	// The balancer holds new connections; the page's gateway stops, and
	// the browser's reconnection waits at the balancer while updates are
	// published on the other gateway.
	lb.route(t, "")
	nodes[1].stop()
	nodetest.CheckFor(t, wait, 20*time.Millisecond, func() error {
		if lb.holding() == 0 {
			return fmt.Errorf("the browser has not reconnected")
		}
		return nil
	})
	for range 5 {
		pub(nodes[0].URL())
	}
	lb.route(t, nodes[0].URL())
	got := pageUpdates(t, tab, len(sent))
	if !slices.Equal(got, sent) {
		t.Fatalf("the page received %q\nwant %q", got, sent)
	}
	pub(nodes[0].URL())
	if got := pageUpdates(t, tab, len(sent)); !slices.Equal(got, sent) {
		t.Fatalf("after the resume, live: the page received %q\nwant %q", got, sent)
	}
	if subs := lb.subscriptions(); !slices.Equal(subs, []string{"", sent[0].LastEventID}) {
		t.Errorf("the browser subscribed with Last-Event-ID %q, want none then %q", subs, sent[0].LastEventID)
	}
}
