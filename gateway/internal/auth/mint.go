// Minting tokens, for `chat-gateway token` and tests.

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
	if o.TTL <= 0 {
		return "", errors.New("a token needs a positive lifetime (--ttl)")
	}
	now := time.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   o.Subject,
			Issuer:    o.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(o.TTL)),
		},
		Chat: o.Grants,
	}
	if o.Audience != "" {
		c.Audience = jwt.ClaimStrings{o.Audience}
	}
	var method jwt.SigningMethod
	var key any
	switch {
	case o.SecretFile != "" && o.PrivateKeyFile == "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return "", err
		}
		method, key = jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(b)))
	case o.PrivateKeyFile != "" && o.SecretFile == "":
		b, err := os.ReadFile(o.PrivateKeyFile)
		if err != nil {
			return "", err
		}
		if method, key, err = parsePrivateKey(b); err != nil {
			return "", fmt.Errorf("%s: %w", o.PrivateKeyFile, err)
		}
	default:
		return "", errors.New("sign with exactly one of a secret file and a private key file")
	}
	t := jwt.NewWithClaims(method, c)
	if o.KeyID != "" {
		t.Header["kid"] = o.KeyID
	}
	return t.SignedString(key)
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
