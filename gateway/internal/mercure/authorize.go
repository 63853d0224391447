package mercure

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/golang-jwt/jwt/v5"
)

// Claims are a Mercure token's claims. The claim may also be given under
// "https://mercure.rocks/", which then wins, as on a Mercure hub.
type Claims struct {
	jwt.RegisteredClaims
	Mercure    MercureClaim  `json:"mercure"`
	Namespaced *MercureClaim `json:"https://mercure.rocks/,omitempty"`
}

// MercureClaim says what a token may do. A nil Publish (the claim is
// absent) allows no publishing; an empty one allows none either. Subscribe
// lists the selectors of the private updates the holder may receive.
type MercureClaim struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
	Payload   any      `json:"payload,omitempty"`
}

// Errors of authorize; each is answered 401, as Mercure does.
var (
	errAuthorizationHeader = errors.New(`the Authorization header must be "Bearer <token>"`)
	errNoOrigin            = errors.New("a request authorized by the cookie must send Origin or Referer")
	errOriginNotAllowed    = errors.New("the origin is not allowed to publish")
	errNoKey               = errors.New("this hub accepts no token (no key is configured)")
)

// authorize finds the request's token, as Mercure does: the Authorization
// header, else the authorization query parameter, else the cookie (for a
// POST, only from an allowed origin), and verifies it. No token at all is
// (nil, nil): an anonymous request.
func (h *Hub) authorize(r *http.Request, publish bool) (*Claims, error) {
	token := ""
	switch {
	case len(r.Header.Values("Authorization")) > 0:
		v := r.Header.Values("Authorization")
		tok, ok := strings.CutPrefix(v[0], "Bearer ")
		if len(v) != 1 || !ok || strings.TrimSpace(tok) == "" {
			return nil, errAuthorizationHeader
		}
		token = strings.TrimSpace(tok)
	case r.URL.Query().Get("authorization") != "":
		token = r.URL.Query().Get("authorization")
	default:
		c, err := r.Cookie(h.cfg.Cookie)
		if err != nil || c.Value == "" {
			return nil, nil
		}
		if publish {
			if err := h.checkOrigin(r); err != nil {
				return nil, err
			}
		}
		token = c.Value
	}
	if h.cfg.Keys == nil {
		return nil, errNoKey
	}
	c, err := auth.VerifyCached[Claims](h.cfg.Keys, token)
	if err != nil {
		return nil, err
	}
	if c.Namespaced != nil {
		c.Mercure = *c.Namespaced
	}
	return c, nil
}

// checkOrigin checks the origin of a cookie-authorized publish: Origin,
// else Referer's scheme and host, must be a publish origin.
func (h *Hub) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Host == "" {
			return errNoOrigin
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	if slices.Contains(h.cfg.PublishOrigins, "*") || slices.Contains(h.cfg.PublishOrigins, origin) {
		return nil
	}
	return errOriginNotAllowed
}
