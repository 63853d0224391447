package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/gateway"
)

// Another site's page cannot post through a visitor's browser: the form
// publish refuses cross-site requests even with auth off.
func TestCrossSiteFormPostIsRefused(t *testing.T) {
	g := startGateway(t, "gw-csrf", "")
	form := func(text string, header map[string]string) response {
		return do(t, http.MethodPost, g.URL()+"/publish", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"message": {text}, "room": {"csrf"}}.Encode()), header)
	}
	r := form("forged", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"})
	if r.status != http.StatusForbidden || r.errorCode() != "cross_origin" {
		t.Fatalf("cross-site form post: %d %s; want 403 cross_origin", r.status, r.body)
	}
	if r := form("from the page", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": g.URL()}); r.status != http.StatusSeeOther {
		t.Fatalf("same-origin form post: %d %s; want 303", r.status, r.body)
	}
	h := do(t, http.MethodGet, g.URL()+"/rooms/csrf/messages", "", nil, nil)
	if strings.Contains(string(h.body), "forged") || !strings.Contains(string(h.body), "from the page") {
		t.Fatalf("history: %s", h.body)
	}
}

// A token in a cookie, which browsers send with any site's request, only
// authorizes a POST that says where it comes from: the gateway's own page
// or an allowed origin. CORS lets the allowed origin's page call the API.
func TestCookieAndCORS(t *testing.T) {
	iss := newIssuer(t)
	const app = "https://app.test"
	g := startGateway(t, "gw-cookie", "", func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience, Cookie: "chat_token"}
		o.AllowedOrigins, o.CORSOrigins = []string{app}, []string{app}
	})
	ana := iss.token(t, "ana", grants{Publish: []string{"*"}, Subscribe: []string{"*"}})
	post := func(header map[string]string) response {
		h := map[string]string{"Cookie": "chat_token=" + ana}
		for k, v := range header {
			h[k] = v
		}
		return do(t, http.MethodPost, g.URL()+"/rooms/cookie/messages", "application/json", strings.NewReader(`{"text":"x"}`), h)
	}
	host := strings.TrimPrefix(g.URL(), "http://")
	tests := []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"no Origin", nil, 403, "forbidden"},
		{"another site", map[string]string{"Origin": "https://evil.test"}, 403, "cross_origin"},
		{"another site, said by the browser", map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, 403, "cross_origin"},
		{"the gateway's own page", map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}, 201, ""},
		{"the allowed origin", map[string]string{"Origin": app, "Sec-Fetch-Site": "cross-site"}, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.header)
			if r.status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("%d %s; want %d %q", r.status, r.body, tt.status, tt.code)
			}
		})
	}

	pre := do(t, http.MethodOptions, g.URL()+"/rooms/cookie/messages", "", nil, map[string]string{
		"Origin": app, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		pre.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight from %s: %d %v", app, pre.status, pre.header)
	}
	evil := do(t, http.MethodOptions, g.URL()+"/rooms/cookie/messages", "", nil, map[string]string{
		"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"})
	if evil.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another site was allowed: %v", evil.header)
	}
	get := do(t, http.MethodGet, g.URL()+"/rooms/cookie/messages", "", nil, map[string]string{"Origin": app, "Authorization": "Bearer " + ana})
	if get.status != 200 || get.header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("GET from %s: %d %v", app, get.status, get.header)
	}
}
