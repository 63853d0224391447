// Package auth tells who a request comes from and what they may do, from a
// JSON Web Token (--auth jwt).
//
// A token is verified with exactly one kind of key, and the algorithm is
// pinned by that key: an HS256 secret, a PEM public key (RS256, ES256,
// ES384, ES512 or EdDSA, by the key's type), or the keys of a JWKS URL
// (asymmetric algorithms only; cached and refreshed, and fetched again when
// a token names a key the set does not hold yet). "none" is never
// accepted, and a token signed with HMAC is never checked against a public
// key. The token must carry exp; iss and aud are checked when configured.
//
// Claims: sub is the user shown on messages and in presence; the chat claim
// grants rooms by glob pattern (path.Match: "*" any room, "team-*"):
//
//	{"sub":"ana","exp":…,"chat":{"publish":["lobby","team-*"],"subscribe":["*"],"admin":false}}
//
// subscribe covers listening, history and members; publish covers
// publishing; admin may set room topics.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Options configures a Verifier; exactly one of SecretFile, KeyFile and
// JWKSURL is set.
type Options struct {
	// SecretFile holds the HS256 secret (at least 32 bytes; surrounding
	// white space is trimmed).
	SecretFile string
	// KeyFile holds a PEM public key (PKIX, or an RSA PKCS #1 key).
	KeyFile string
	// JWKSURL serves the JSON Web Key Set of the token issuer.
	JWKSURL string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// Cookie, when set, is the name of a cookie that may carry the token
	// (EventSource cannot set headers).
	Cookie string
	// QueryToken accepts the token in an access_token query parameter.
	QueryToken bool
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// ExpOptional accepts tokens without exp (Mercure's; a chat token
	// must expire).
	ExpOptional bool
}

// Grants is the chat claim: what a user may do.
type Grants struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	Admin     bool     `json:"admin,omitempty"`
}

// Claims are the claims of a chat token.
type Claims struct {
	jwt.RegisteredClaims
	Chat Grants `json:"chat"`
}

// Identity is a verified user.
type Identity struct {
	User    string
	Grants  Grants
	Expires time.Time
	// ViaCookie: the token came in a cookie, which a browser sends with
	// cross-site requests too.
	ViaCookie bool
}

// CanPublish reports whether the user may publish to room.
func (id *Identity) CanPublish(room string) bool { return matchAny(id.Grants.Publish, room) }

// CanSubscribe reports whether the user may listen to room, read its
// history and see its members.
func (id *Identity) CanSubscribe(room string) bool { return matchAny(id.Grants.Subscribe, room) }

// IsAdmin reports whether the user may set room topics.
func (id *Identity) IsAdmin() bool { return id.Grants.Admin }

func matchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, room); err == nil && ok {
			return true
		}
	}
	return false
}

// Errors of Authenticate. ErrNoToken and ErrInvalidToken are 401s.
var (
	ErrNoToken      = errors.New("no token: send Authorization: Bearer <token>")
	ErrInvalidToken = errors.New("invalid token")
)

// Verifier verifies tokens.
type Verifier struct {
	opts    Options
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	methods []string // the algorithms the key verifies
	stop    context.CancelFunc
	cache   verified
	now     func() time.Time
}

// asymmetric are the algorithms a JWKS key may use.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// New returns a Verifier for o. With a JWKS URL it fetches the key set
// first, and refreshes it in the background until Close.
func New(ctx context.Context, o Options) (*Verifier, error) {
	v := &Verifier{opts: o, stop: func() {}, now: time.Now}
	var methods []string
	n := 0
	for _, s := range []string{o.SecretFile, o.KeyFile, o.JWKSURL} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("auth jwt needs exactly one of a secret file, a public key file and a JWKS URL")
	}
	switch {
	case o.SecretFile != "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("read the JWT secret: %w", err)
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 32 {
			return nil, fmt.Errorf("the JWT secret in %s has %d bytes; HS256 needs at least 32", o.SecretFile, len(secret))
		}
		methods = []string{"HS256"}
		v.keyfunc = func(*jwt.Token) (any, error) { return secret, nil }
	case o.KeyFile != "":
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read the JWT public key: %w", err)
		}
		key, alg, err := parsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("JWT public key %s: %w", o.KeyFile, err)
		}
		methods = []string{alg}
		v.keyfunc = func(*jwt.Token) (any, error) { return key, nil }
	default:
		kctx, cancel := context.WithCancel(context.Background())
		k, err := keyfunc.NewDefaultCtx(kctx, []string{o.JWKSURL})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("JWKS %s: %w", o.JWKSURL, err)
		}
		methods = asymmetric
		v.keyfunc, v.stop = k.Keyfunc, cancel
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() })}
	if !o.ExpOptional {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	v.parser, v.methods = jwt.NewParser(popts...), methods
	return v, nil
}

// Cookie returns the name of the cookie that may carry tokens ("": none).
func (v *Verifier) Cookie() string { return v.opts.Cookie }

// Close stops refreshing the JWKS.
func (v *Verifier) Close() { v.stop() }

// parsePublicKey reads a PEM public key and the one algorithm it verifies.
func parsePublicKey(b []byte) (any, string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("no PEM block")
	}
	var key any
	var err error
	if block.Type == "RSA PUBLIC KEY" {
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	} else {
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, "", err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("an RSA key of %d bits; at least 2048 are needed", k.N.BitLen())
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, "ES256", nil
		case elliptic.P384():
			return k, "ES384", nil
		case elliptic.P521():
			return k, "ES512", nil
		}
		return nil, "", errors.New("an ECDSA key on an unsupported curve")
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	}
	return nil, "", fmt.Errorf("unsupported key type %T", key)
}

// Verify checks a token and returns its identity. A token that passed
// before is taken from the cache of verified tokens (cache.go) until it
// expires.
func (v *Verifier) Verify(token string) (*Identity, error) {
	now := v.now()
	if val, ok := v.cache.get(token, now); ok {
		if id, ok := val.(Identity); ok {
			return &id, nil
		}
	}
	var c Claims
	if err := v.VerifyClaims(token, &c); err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	if c.ExpiresAt == nil {
		return nil, fmt.Errorf("%w: a required claim is missing (exp)", ErrInvalidToken)
	}
	id := &Identity{User: c.Subject, Grants: c.Chat, Expires: c.ExpiresAt.Time}
	v.cache.put(token, *id, now, id.Expires.Add(v.opts.Leeway))
	return id, nil
}

// VerifyClaims checks a token's signature, algorithm and time, issuer
// and audience like Verify, and decodes its claims into claims (another
// protocol's claims, such as Mercure's). It does not use the cache of
// verified tokens.
func (v *Verifier) VerifyClaims(token string, claims jwt.Claims) error {
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyfunc); err != nil {
		why := reason(err)
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) && !v.accepts(token) {
			why = "signed with an algorithm this gateway does not accept"
		}
		return fmt.Errorf("%w: %s", ErrInvalidToken, why)
	}
	return nil
}

// VerifyCached is VerifyClaims for claims of type T, remembering tokens
// that passed as Verify does (cache.go): until their exp, if they have one,
// and for at most a minute. The claims are returned as a copy.
func VerifyCached[T any, PT interface {
	*T
	jwt.Claims
}](v *Verifier, token string) (*T, error) {
	now := v.now()
	if val, ok := v.cache.get(token, now); ok {
		if c, ok := val.(T); ok {
			return &c, nil
		}
	}
	c := new(T)
	if err := v.VerifyClaims(token, PT(c)); err != nil {
		return nil, err
	}
	until := now.Add(cacheFor)
	if exp, err := PT(c).GetExpirationTime(); err == nil && exp != nil {
		until = exp.Add(v.opts.Leeway)
	}
	v.cache.put(token, *c, now, until)
	cp := *c
	return &cp, nil
}

// accepts reports whether the token's alg header names an algorithm of
// the verifier's key (asked only of a refused token, to say why).
func (v *Verifier) accepts(token string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return false
	}
	alg, _ := t.Header["alg"].(string)
	return slices.Contains(v.methods, alg)
}

// reason says in a few words why a token was refused, without echoing it.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signed with an algorithm or key this gateway does not accept"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "not accepted"
}

// Authenticate finds the request's token (Authorization: Bearer, then the
// cookie, then access_token when allowed) and verifies it.
func (v *Verifier) Authenticate(r *http.Request) (*Identity, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, fmt.Errorf("%w: Authorization must be \"Bearer <token>\"", ErrInvalidToken)
		}
		return v.Verify(strings.TrimSpace(tok))
	}
	if v.opts.Cookie != "" {
		if c, err := r.Cookie(v.opts.Cookie); err == nil && c.Value != "" {
			id, err := v.Verify(c.Value)
			if id != nil {
				id.ViaCookie = true
			}
			return id, err
		}
	}
	if v.opts.QueryToken {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			return v.Verify(tok)
		}
	}
	return nil, ErrNoToken
}
