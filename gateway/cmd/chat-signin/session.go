// The session cookie: who signed in, until when, authenticated with
// HMAC-SHA256. It is not a JWT, so a gateway never accepts it as a token.

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// sessionLabel binds a MAC to its use: a MAC made by this key for anything
// else never passes as a session.
const sessionLabel = "chat-signin session v1"

// minSessionKey is the shortest session key accepted, in bytes.
const minSessionKey = 32

// Errors of parseSession; all mean "not signed in".
var (
	errNoSession      = errors.New("not signed in")
	errBadSession     = errors.New("the session cookie is not valid")
	errExpiredSession = errors.New("the session has expired")
)

// sessions makes and checks session cookie values:
// base64url(name) "." expiry (Unix seconds) "." base64url(MAC).
type sessions struct {
	key []byte
}

func (s sessions) mac(name64, expires string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(sessionLabel + "\x00" + name64 + "\x00" + expires))
	return m.Sum(nil)
}

// make returns the cookie value of a session of name ending at expires.
func (s sessions) make(name string, expires time.Time) string {
	name64 := base64.RawURLEncoding.EncodeToString([]byte(name))
	exp := strconv.FormatInt(expires.Unix(), 10)
	return name64 + "." + exp + "." + base64.RawURLEncoding.EncodeToString(s.mac(name64, exp))
}

// parse returns the name of a valid, unexpired session value.
func (s sessions) parse(value string, now time.Time) (string, error) {
	if value == "" {
		return "", errNoSession
	}
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return "", errBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, s.mac(parts[0], parts[1])) {
		return "", errBadSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", errBadSession
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", errExpiredSession
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", errBadSession
	}
	// Only this service makes sessions, of valid names; check anyway.
	if err := validateName(string(name)); err != nil {
		return "", fmt.Errorf("%w: %w", errBadSession, err)
	}
	return string(name), nil
}
