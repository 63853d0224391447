// Minting tokens, for `chat-gateway token`, chat-signin and tests.

package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintOptions describes a token to sign.
type MintOptions struct {
	Subject  string
	Grants   Grants
	TTL      time.Duration
	Issuer   string
	Audience string
	// SecretFile (HS256) or PrivateKeyFile (a PEM private key: RS256,
	// ES256/384/512 or EdDSA by its type) signs the token.
	SecretFile, PrivateKeyFile string
	// KeyID, when set, is the token's kid header (for a JWKS).
	KeyID string
}

// Mint signs a token.
func Mint(o MintOptions) (string, error) {
	if o.Subject == "" {
		return "", errors.New("a token needs a subject (--sub)")
	}
	s, err := NewSigner(o)
	if err != nil {
		return "", err
	}
	return s.Mint(o.Subject, o.Grants, o.TTL)
}

// Signer signs tokens with one key, read once: a sign-in service mints a
// token per request. Its issuer, audience and key id are MintOptions'.
type Signer struct {
	method           jwt.SigningMethod
	key              any
	issuer, audience string
	keyID            string
}

// NewSigner reads the key of o (SecretFile or PrivateKeyFile) and returns
// a Signer with o's issuer, audience and key id; o's subject, grants and
// lifetime are not used. An HS256 secret must have at least 32 bytes, as
// the gateway's verifier requires.
func NewSigner(o MintOptions) (*Signer, error) {
	s := &Signer{issuer: o.Issuer, audience: o.Audience, keyID: o.KeyID}
	switch {
	case o.SecretFile != "" && o.PrivateKeyFile == "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return nil, err
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 32 {
			return nil, fmt.Errorf("the secret in %s has %d bytes; HS256 needs at least 32", o.SecretFile, len(secret))
		}
		s.method, s.key = jwt.SigningMethodHS256, secret
	case o.PrivateKeyFile != "" && o.SecretFile == "":
		b, err := os.ReadFile(o.PrivateKeyFile)
		if err != nil {
			return nil, err
		}
		if s.method, s.key, err = parsePrivateKey(b); err != nil {
			return nil, fmt.Errorf("%s: %w", o.PrivateKeyFile, err)
		}
	default:
		return nil, errors.New("sign with exactly one of a secret file and a private key file")
	}
	return s, nil
}

// Mint signs a token for subject with grants, valid for ttl from now.
func (s *Signer) Mint(subject string, grants Grants, ttl time.Duration) (string, error) {
	if subject == "" {
		return "", errors.New("a token needs a subject (--sub)")
	}
	if ttl <= 0 {
		return "", errors.New("a token needs a positive lifetime (--ttl)")
	}
	now := time.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			Issuer:    s.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Chat: grants,
	}
	if s.audience != "" {
		c.Audience = jwt.ClaimStrings{s.audience}
	}
	t := jwt.NewWithClaims(s.method, c)
	if s.keyID != "" {
		t.Header["kid"] = s.keyID
	}
	return t.SignedString(s.key)
}

// parsePrivateKey reads a PEM private key (PKCS #8, or PKCS #1 RSA, or
// SEC 1 EC) and the algorithm it signs with.
func parsePrivateKey(b []byte) (jwt.SigningMethod, any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256, k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, k, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, k, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, k, nil
		}
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, k, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}
