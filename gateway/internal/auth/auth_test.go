package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/gateway/internal/auth"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef0123456789abcdef-test-secret"

// writeFile writes data to a new file of the test and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// keyFiles writes key's private and public halves as PEM files.
func keyFiles(t *testing.T, key crypto.Signer) (private, public string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		writeFile(t, "key.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifier(t *testing.T, o auth.Options) *auth.Verifier {
	t.Helper()
	v, err := auth.New(context.Background(), o)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// sign signs claims with method and key, as any issuer (or attacker) could.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, exp time.Time) auth.Claims {
	c := auth.Claims{Chat: auth.Grants{Publish: []string{"lobby"}, Subscribe: []string{"*"}}}
	c.Subject = sub
	if !exp.IsZero() {
		c.ExpiresAt = jwt.NewNumericDate(exp)
	}
	return c
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	rsaPriv := rsaKey(t)
	_, rsaPubFile := keyFiles(t, rsaPriv)
	rsaPubPEM, err := os.ReadFile(rsaPubFile)
	if err != nil {
		t.Fatal(err)
	}
	hs := verifier(t, auth.Options{SecretFile: writeFile(t, "secret", []byte(secret+"\n")), Issuer: "https://id.example", Audience: "chat"})
	rs := verifier(t, auth.Options{KeyFile: rsaPubFile})
	hour := time.Now().Add(time.Hour)
	good := func() auth.Claims {
		c := claims("ana", hour)
		c.Issuer, c.Audience = "https://id.example", jwt.ClaimStrings{"chat"}
		return c
	}
	with := func(f func(*auth.Claims)) auth.Claims { c := good(); f(&c); return c }
	none := func(c jwt.Claims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		v     *auth.Verifier
		token string
		want  string // in the error
	}{
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })), "expired"},
		{"not valid yet", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), "not valid yet"},
		{"wrong issuer", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.Issuer = "https://evil.example" })), "wrong issuer"},
		{"wrong audience", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} })), "wrong audience"},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.ExpiresAt = nil })), "required claim"},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(func(c *auth.Claims) { c.Subject = "" })), "no sub"},
		{"bad signature", hs, sign(t, jwt.SigningMethodHS256, []byte(strings.ToUpper(secret)), good()), "bad signature"},
		{"alg none", hs, none(good()), "algorithm"},
		{"alg none on a public key", rs, none(claims("ana", hour)), "algorithm"},
		{"HS256 signed with the RS public key", rs, sign(t, jwt.SigningMethodHS256, rsaPubPEM, claims("ana", hour)), "algorithm"},
		{"RS256 on an HS secret", hs, sign(t, jwt.SigningMethodRS256, rsaPriv, good()), "algorithm"},
		{"malformed", hs, "not.a.token", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.v.Verify(tt.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", id)
			}
			if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify: %v; want ErrInvalidToken saying %q", err, tt.want)
			}
		})
	}
	id, err := hs.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), good()))
	if err != nil || id.User != "ana" || !id.CanPublish("lobby") || id.CanPublish("team-a") || !id.CanSubscribe("anything") || id.IsAdmin() {
		t.Fatalf("a good token: %+v, %v", id, err)
	}
}

// Each kind of public key verifies exactly its own algorithm; Mint signs
// with the matching private key.
func TestPublicKeys(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{"RS256": rsaKey(t), "ES256": ec, "EdDSA": ed}
	files := map[string][2]string{}
	for alg, k := range keys {
		priv, pub := keyFiles(t, k)
		files[alg] = [2]string{priv, pub}
	}
	for alg := range keys {
		t.Run(alg, func(t *testing.T) {
			v := verifier(t, auth.Options{KeyFile: files[alg][1]})
			for other := range keys {
				tok, err := auth.Mint(auth.MintOptions{Subject: "bo", TTL: time.Minute, PrivateKeyFile: files[other][0], Grants: auth.Grants{Admin: true}})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(tok, ".") {
					t.Fatalf("Mint returned %q", tok)
				}
				id, err := v.Verify(tok)
				switch {
				case other == alg && (err != nil || id.User != "bo" || !id.IsAdmin()):
					t.Errorf("%s token on its own key: %+v, %v", other, id, err)
				case other != alg && err == nil:
					t.Errorf("%s token accepted by a %s key", other, alg)
				}
			}
		})
	}
	if _, err := auth.New(context.Background(), auth.Options{KeyFile: writeFile(t, "junk.pem", []byte("junk"))}); err == nil {
		t.Error("a key file without a PEM block was accepted")
	}
	if _, err := auth.New(context.Background(), auth.Options{SecretFile: writeFile(t, "short", []byte("short"))}); err == nil {
		t.Error("a 5-byte HS256 secret was accepted")
	}
	if _, err := auth.New(context.Background(), auth.Options{}); err == nil {
		t.Error("a verifier without a key was made")
	}
}

// jwks serves a JSON Web Key Set that the test can rotate.
type jwks struct {
	mu   sync.Mutex
	keys []map[string]string
	hits int
}

func (j *jwks) set(kid string, k *rsa.PublicKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}}
}

func (j *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hits++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
}

// A JWKS verifier takes keys from the set, and picks up a rotated key the
// first time a token names it.
func TestJWKSRotation(t *testing.T) {
	k1, k2 := rsaKey(t), rsaKey(t)
	set := &jwks{}
	set.set("k1", &k1.PublicKey)
	srv := httptest.NewServer(set)
	defer srv.Close()
	v := verifier(t, auth.Options{JWKSURL: srv.URL})
	tok := func(kid string, k *rsa.PrivateKey) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("cy", time.Now().Add(time.Hour)))
		tk.Header["kid"] = kid
		s, err := tk.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if id, err := v.Verify(tok("k1", k1)); err != nil || id.User != "cy" {
		t.Fatalf("token of k1: %+v, %v", id, err)
	}
	if _, err := v.Verify(tok("k1", k2)); err == nil {
		t.Fatal("a token signed with another key under kid k1 was accepted")
	}
	set.set("k2", &k2.PublicKey) // the issuer rotates its key
	if id, err := v.Verify(tok("k2", k2)); err != nil || id.User != "cy" {
		t.Fatalf("token of the rotated key k2: %+v, %v", id, err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), claims("cy", time.Now().Add(time.Hour)))); err == nil {
		t.Fatal("an HS256 token was accepted by a JWKS verifier")
	}
}

func TestAuthenticateFindsTheToken(t *testing.T) {
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), claims("ana", time.Now().Add(time.Hour)))
	file := writeFile(t, "secret", []byte(secret))
	plain := verifier(t, auth.Options{SecretFile: file})
	cookie := verifier(t, auth.Options{SecretFile: file, Cookie: "chat_token"})
	query := verifier(t, auth.Options{SecretFile: file, QueryToken: true})
	req := func(f func(*http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/rooms/lobby/events", nil)
		f(r)
		return r
	}
	header := req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) })
	inCookie := req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "chat_token", Value: good}) })
	inQuery := httptest.NewRequest(http.MethodGet, "/rooms/lobby/events?access_token="+good, nil)
	tests := []struct {
		name      string
		v         *auth.Verifier
		r         *http.Request
		wantErr   error
		viaCookie bool
	}{
		{"header", plain, header, nil, false},
		{"basic scheme", plain, req(func(r *http.Request) { r.Header.Set("Authorization", "Basic YW5hOng=") }), auth.ErrInvalidToken, false},
		{"nothing", plain, req(func(*http.Request) {}), auth.ErrNoToken, false},
		{"cookie not enabled", plain, inCookie, auth.ErrNoToken, false},
		{"cookie", cookie, inCookie, nil, true},
		{"query not enabled", plain, inQuery, auth.ErrNoToken, false},
		{"query", query, inQuery, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.v.Authenticate(tt.r)
			if !errors.Is(err, tt.wantErr) || (err == nil && (id.User != "ana" || id.ViaCookie != tt.viaCookie)) {
				t.Fatalf("Authenticate = %+v, %v; want error %v, via cookie %v", id, err, tt.wantErr, tt.viaCookie)
			}
		})
	}
}

func TestGrantPatterns(t *testing.T) {
	id := &auth.Identity{User: "ana", Grants: auth.Grants{Publish: []string{"lobby", "team-*"}, Subscribe: []string{"*"}}}
	for room, want := range map[string]bool{"lobby": true, "team-a": true, "team-": true, "teams": false, "lobby2": false} {
		if got := id.CanPublish(room); got != want {
			t.Errorf("CanPublish(%q) = %v, want %v", room, got, want)
		}
	}
	if !id.CanSubscribe("anything") || (&auth.Identity{}).CanSubscribe("lobby") {
		t.Error("subscribe grants: * must match every room, and no grant none")
	}
}

// A token verified once is remembered: the same token again is accepted
// without a signature check, as a copy the caller may change, but never
// after it expires, and for at most a minute (a withdrawn JWKS key stops
// being honoured). A token that differs in any byte is verified anew.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	now := time.Now()
	v := verifier(t, auth.Options{SecretFile: writeFile(t, "secret", []byte(secret))})
	auth.SetClock(v, func() time.Time { return now })
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), claims("ana", now.Add(2*time.Hour)))
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	first.ViaCookie, first.User = true, "changed by the caller"
	again, err := v.Verify(tok)
	if err != nil || again.User != "ana" || again.ViaCookie {
		t.Fatalf("the same token again: %+v, %v", again, err)
	}
	// A tampered copy (one byte of the signature) is not taken from the
	// cache.
	sig := []byte(tok)
	sig[len(sig)-2] ^= 1
	if id, err := v.Verify(string(sig)); err == nil {
		t.Fatalf("a tampered token was accepted: %+v", id)
	}

	// After a minute the token is verified again (and still good).
	now = now.Add(61 * time.Second)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
	// A token expiring in 10 s is remembered only until then.
	short := sign(t, jwt.SigningMethodHS256, []byte(secret), claims("bo", now.Add(10*time.Second)))
	if _, err := v.Verify(short); err != nil {
		t.Fatal(err)
	}
	now = now.Add(11 * time.Second)
	if id, err := v.Verify(short); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("a remembered token past its expiry: %+v, %v", id, err)
	}
}

// otherClaims are another protocol's claims (Mercure's, say): no sub, exp
// optional.
type otherClaims struct {
	jwt.RegisteredClaims
	Grant []string `json:"grant"`
}

// VerifyCached remembers another protocol's tokens like Verify: a copy of
// the claims each time, never past exp, and a token without exp for at
// most a minute.
func TestVerifyCachedOtherClaims(t *testing.T) {
	now := time.Now()
	v := verifier(t, auth.Options{SecretFile: writeFile(t, "secret", []byte(secret)), ExpOptional: true})
	auth.SetClock(v, func() time.Time { return now })
	noExp := sign(t, jwt.SigningMethodHS256, []byte(secret), otherClaims{Grant: []string{"a"}})
	c, err := auth.VerifyCached[otherClaims](v, noExp)
	if err != nil || len(c.Grant) != 1 || c.Grant[0] != "a" {
		t.Fatalf("VerifyCached = %+v, %v", c, err)
	}
	c.Grant = nil // the caller's copy
	if again, err := auth.VerifyCached[otherClaims](v, noExp); err != nil || len(again.Grant) != 1 {
		t.Fatalf("again = %+v, %v", again, err)
	}
	short := sign(t, jwt.SigningMethodHS256, []byte(secret), otherClaims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Second))}})
	if _, err := auth.VerifyCached[otherClaims](v, short); err != nil {
		t.Fatal(err)
	}
	now = now.Add(11 * time.Second)
	if _, err := auth.VerifyCached[otherClaims](v, short); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("past its exp: %v", err)
	}
	// A chat token is not taken for another protocol's claims, nor the
	// other way round, though both are cached.
	chat := sign(t, jwt.SigningMethodHS256, []byte(secret), claims("ana", now.Add(time.Hour)))
	if _, err := v.Verify(chat); err != nil {
		t.Fatal(err)
	}
	if c, err := auth.VerifyCached[otherClaims](v, chat); err != nil || len(c.Grant) != 0 {
		t.Fatalf("a chat token as other claims: %+v, %v", c, err)
	}
	if _, err := v.Verify(noExp); err == nil {
		t.Fatal("a token without sub and exp was taken for a chat identity")
	}
}
