package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/chatscalable/chatscalable/gateway/internal/auth"
)

// CodeCrossOrigin is the code of a state-changing request refused because
// it came from another site's page.
const CodeCrossOrigin = "cross_origin"

// origins decides which other sites' pages may use the API from a browser.
type origins struct {
	// csrf refuses state-changing requests (POST, PUT) that a browser
	// sends from another site, unless that site is trusted.
	csrf *http.CrossOriginProtection
	// allowed may post with the token cookie (besides the gateway's own
	// pages); cors may call the JSON API with its own token.
	allowed, cors []string
	// credentials: answers to cors origins allow cookies (--auth-cookie).
	credentials bool
}

// newOrigins checks and trusts the configured origins ("https://host[:port]").
func newOrigins(allowed, cors []string, credentials bool) (*origins, error) {
	o := &origins{csrf: http.NewCrossOriginProtection(), allowed: allowed, cors: cors, credentials: credentials}
	for _, origin := range slices.Concat(allowed, cors) {
		if err := o.csrf.AddTrustedOrigin(origin); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// corsHeaders answers a request from a cors origin: on a preflight
// (OPTIONS with Access-Control-Request-Method) it writes the whole answer
// and returns true; otherwise it adds the headers that let the page read
// the response.
func (o *origins) corsHeaders(w http.ResponseWriter, r *http.Request) (answered bool) {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin == "" || !slices.Contains(o.cors, origin) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if o.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", "X-Chat-Node, Retry-After, Idempotent-Replayed, WWW-Authenticate, Last-Event-ID")
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT")
	h.Set("Access-Control-Allow-Headers", "Authorization, Cache-Control, Content-Type, Idempotency-Key, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// checkCookieOrigin refuses a state-changing request authorized by the
// token cookie unless it names, in Origin, the gateway itself or an
// allowed origin: a browser sends the cookie with any site's request, and
// always sends Origin with a POST or PUT.
func (o *origins) checkCookieOrigin(r *http.Request, id *auth.Identity) bool {
	if id == nil || !id.ViaCookie || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if slices.Contains(o.allowed, origin) {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && host == r.Host
}
