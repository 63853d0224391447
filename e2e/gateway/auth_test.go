package gateway_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://id.chat.test"
	testAudience = "chat"
)

// issuer signs tokens as the identity provider a gateway trusts.
type issuer struct {
	key    *rsa.PrivateKey
	pubPEM []byte
	file   string // the public key, for --auth-jwt-key-file
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	i := &issuer{key: k, pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	i.file = filepath.Join(t.TempDir(), "jwt.pub.pem")
	if err := os.WriteFile(i.file, i.pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return i
}

type grants struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	Admin     bool     `json:"admin,omitempty"`
}

type chatClaims struct {
	jwt.RegisteredClaims
	Chat grants `json:"chat"`
}

// claims are a good token's claims for sub, valid for an hour.
func (i *issuer) claims(sub string, g grants) chatClaims {
	now := time.Now()
	return chatClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: sub, Issuer: testIssuer, Audience: jwt.ClaimStrings{testAudience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}, Chat: g}
}

func (i *issuer) sign(t *testing.T, c chatClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (i *issuer) token(t *testing.T, sub string, g grants) string {
	return i.sign(t, i.claims(sub, g))
}

func startAuthGateway(t *testing.T, iss *issuer) *gateway.Gateway {
	return startGateway(t, "gw-auth", "", func(o *gateway.Options) {
		o.Auth = gateway.AuthJWT
		o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience}
	})
}

func bearer(tok string) map[string]string {
	if tok == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

// Every refused request gets its status and a JSON error, and publishes
// nothing: the next message a full-grant listener sees, and the only one
// history holds, is the one published after them all.
func TestRefusedRequests(t *testing.T) {
	iss := newIssuer(t)
	g := startAuthGateway(t, iss)
	base := g.URL()
	all := iss.token(t, "root", grants{Publish: []string{"*"}, Subscribe: []string{"*"}, Admin: true})
	ana := iss.token(t, "ana", grants{Publish: []string{"lobby"}, Subscribe: []string{"lobby"}})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(method jwt.SigningMethod, key any, c chatClaims) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func(f func(*chatClaims)) string {
		c := iss.claims("ana", grants{Publish: []string{"lobby"}, Subscribe: []string{"lobby"}})
		f(&c)
		return iss.sign(t, c)
	}
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(d)) }
	lobby := ssetest.Open(t, base+"/rooms/lobby/events", http.Header{"Authorization": {"Bearer " + all}})
	secret := ssetest.Open(t, base+"/rooms/secret/events", http.Header{"Authorization": {"Bearer " + all}})

	msg := func(user string) *bytes.Reader {
		b, _ := json.Marshal(map[string]string{"user": user, "text": "must not be stored"})
		return bytes.NewReader(b)
	}
	post := func(room, tok, user string) func() response {
		return func() response {
			return do(t, http.MethodPost, base+"/rooms/"+room+"/messages", "application/json", msg(user), bearer(tok))
		}
	}
	get := func(path, tok string) func() response {
		return func() response { return do(t, http.MethodGet, base+path, "", nil, bearer(tok)) }
	}
	tests := []struct {
		name   string
		req    func() response
		status int
		code   string
	}{
		{"no token", post("lobby", "", ""), 401, "unauthorized"},
		{"form post without a token", func() response {
			return do(t, http.MethodPost, base+"/publish", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"message": {"x"}}.Encode()), nil)
		}, 401, "unauthorized"},
		{"bad signature", post("lobby", signWith(jwt.SigningMethodRS256, other, iss.claims("ana", grants{Publish: []string{"*"}})), ""), 401, "unauthorized"},
		{"expired", post("lobby", good(func(c *chatClaims) { c.ExpiresAt = at(-time.Minute) }), ""), 401, "unauthorized"},
		{"not yet valid", post("lobby", good(func(c *chatClaims) { c.NotBefore = at(time.Hour) }), ""), 401, "unauthorized"},
		{"wrong issuer", post("lobby", good(func(c *chatClaims) { c.Issuer = "https://evil.test" }), ""), 401, "unauthorized"},
		{"wrong audience", post("lobby", good(func(c *chatClaims) { c.Audience = jwt.ClaimStrings{"other"} }), ""), 401, "unauthorized"},
		{"alg none", post("lobby", signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, iss.claims("ana", grants{Publish: []string{"*"}})), ""), 401, "unauthorized"},
		{"HS256 signed with the RS public key", post("lobby", signWith(jwt.SigningMethodHS256, iss.pubPEM, iss.claims("ana", grants{Publish: []string{"*"}})), ""), 401, "unauthorized"},
		{"publish outside the grant", post("secret", ana, ""), 403, "forbidden"},
		{"user in the body is not the subject", post("lobby", ana, "bo"), 403, "forbidden"},
		{"form post as another user", func() response {
			return do(t, http.MethodPost, base+"/publish", "application/x-www-form-urlencoded",
				strings.NewReader(url.Values{"message": {"x"}, "user": {"bo"}}.Encode()), bearer(ana))
		}, 403, "forbidden"},
		{"listen outside the grant", get("/rooms/secret/events", ana), 403, "forbidden"},
		{"listen with no token", get("/listen?room=lobby", ""), 401, "unauthorized"},
		{"history outside the grant", get("/rooms/secret/messages", ana), 403, "forbidden"},
		{"members outside the grant", get("/rooms/secret/members", ana), 403, "forbidden"},
		{"topic change without admin", func() response {
			return do(t, http.MethodPut, base+"/rooms/lobby", "application/json", strings.NewReader(`{"topic":"mine now"}`), bearer(ana))
		}, 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			if r.status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("status %d, code %q (%s); want %d %q", r.status, r.errorCode(), r.body, tt.status, tt.code)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a WWW-Authenticate: Bearer challenge")
			}
		})
	}
	// Nothing was stored: the first message either listener gets is the
	// one published now, and each room's history holds only it.
	for _, room := range []struct {
		name string
		s    *ssetest.Stream
	}{{"lobby", lobby}, {"secret", secret}} {
		r := do(t, http.MethodPost, base+"/rooms/"+room.name+"/messages", "application/json",
			strings.NewReader(`{"text":"first"}`), bearer(all))
		if r.status != http.StatusCreated {
			t.Fatalf("publish with a full grant: %d %s", r.status, r.body)
		}
		expectMessage(t, room.s, "root", "first")
		h := get("/rooms/"+room.name+"/messages", all)()
		var page struct{ Messages []ssetest.Message }
		if err := json.Unmarshal(h.body, &page); err != nil || h.status != 200 || len(page.Messages) != 1 || page.Messages[0].Text != "first" {
			t.Fatalf("history of %s: %d %s", room.name, h.status, h.body)
		}
	}
}

// With auth on, the user is the token's subject: a publish names no user
// (or its own), and listeners and members see the subject.
func TestTheSubjectIsTheUser(t *testing.T) {
	iss := newIssuer(t)
	g := startAuthGateway(t, iss)
	ana := iss.token(t, "ana", grants{Publish: []string{"lobby"}, Subscribe: []string{"*"}})
	s := ssetest.Open(t, g.URL()+"/rooms/lobby/events", http.Header{"Authorization": {"Bearer " + ana}})
	for _, body := range []string{`{"text":"hi"}`, `{"user":"ana","text":"again"}`} {
		r := do(t, http.MethodPost, g.URL()+"/rooms/lobby/messages", "application/json", strings.NewReader(body), bearer(ana))
		if r.status != http.StatusCreated {
			t.Fatalf("publish %s: %d %s", body, r.status, r.body)
		}
	}
	expectMessage(t, s, "ana", "hi")
	expectMessage(t, s, "ana", "again")
}

// A stream whose token expires gets an auth-expiring event first and then
// ends; the client resumes by cursor with a new token, missing nothing.
func TestStreamEndsWhenItsTokenExpires(t *testing.T) {
	iss := newIssuer(t)
	g := startAuthGateway(t, iss)
	for _, writer := range []gateway.SSEWriter{gateway.SSEWriterLoop, gateway.SSEWriterHandler} {
		t.Run(string(writer), func(t *testing.T) {
			g := g
			if writer == gateway.SSEWriterHandler {
				g = startGateway(t, "gw-auth-handler", "", func(o *gateway.Options) {
					o.Auth, o.SSEWriter = gateway.AuthJWT, gateway.SSEWriterHandler
					o.AuthJWT = gateway.AuthOptions{KeyFile: iss.file, Issuer: testIssuer, Audience: testAudience}
				})
			}
			room := "expiry-" + string(writer)
			c := iss.claims("ana", grants{Publish: []string{"*"}, Subscribe: []string{"*"}})
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(3 * time.Second))
			short := iss.sign(t, c)
			s := ssetest.Open(t, g.URL()+"/rooms/"+room+"/events", http.Header{"Authorization": {"Bearer " + short}})
			first := postJSONAs(t, g.URL(), room, short, "before expiry")
			if m := expectMessage(t, s, "ana", "before expiry"); m.Seq != first.Seq {
				t.Fatalf("got seq %d, want %d", m.Seq, first.Seq)
			}
			ev, err := s.Next(5 * time.Second)
			if err != nil || ev.Event != "auth-expiring" || !strings.Contains(ev.Data, `"expires"`) {
				t.Fatalf("event %+v, %v; want auth-expiring", ev, err)
			}
			for {
				ev, err := s.Next(5 * time.Second)
				if errors.Is(err, ssetest.ErrClosed) {
					break
				}
				if err != nil || ev.Event == "message" {
					t.Fatalf("after auth-expiring: %+v, %v; want the stream to end", ev, err)
				}
			}
			// Published while the client fetches a fresh token.
			fresh := iss.token(t, "ana", grants{Publish: []string{"*"}, Subscribe: []string{"*"}})
			postJSONAs(t, g.URL(), room, fresh, "while away")
			resumed := ssetest.Open(t, g.URL()+"/rooms/"+room+"/events", http.Header{
				"Authorization": {"Bearer " + fresh}, "Last-Event-ID": {first.Cursor}})
			expectMessage(t, resumed, "ana", "while away")
		})
	}
}

func postJSONAs(t *testing.T, base, room, tok, text string) ssetest.Message {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"text": text})
	r := do(t, http.MethodPost, base+"/rooms/"+room+"/messages", "application/json", bytes.NewReader(b), bearer(tok))
	if r.status != http.StatusCreated {
		t.Fatalf("publish: status %d: %s", r.status, r.body)
	}
	var m ssetest.Message
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
