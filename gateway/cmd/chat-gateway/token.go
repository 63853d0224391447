// chat-gateway token: mints a token for testing and for scripts.

package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway/internal/auth"
)

// token prints a signed token with the claims its flags give, for a
// gateway started with --auth jwt and the matching key.
func token(args []string, stdout, stderr io.Writer) int {
	fs := envflag.New("chat-gateway token", os.Getenv, stdout)
	var o auth.MintOptions
	var publish, subscribe string
	fs.String(&o.Subject, "sub", "", "the user (sub claim)")
	fs.String(&publish, "publish", "", "comma-separated room patterns the user may publish to (e.g. lobby,team-*)")
	fs.String(&subscribe, "subscribe", "", "comma-separated room patterns the user may listen to and read (e.g. *)")
	fs.Bool(&o.Grants.Admin, "admin", false, "the user may set room topics")
	fs.Duration(&o.TTL, "ttl", time.Hour, "how long the token is valid")
	fs.String(&o.Issuer, "issuer", "", "iss claim (match the gateway's --auth-issuer)")
	fs.String(&o.Audience, "audience", "", "aud claim (match the gateway's --auth-audience)")
	fs.String(&o.SecretFile, "secret-file", "", "file holding the HS256 secret (the gateway's --auth-jwt-secret-file)")
	fs.String(&o.PrivateKeyFile, "private-key-file", "", "PEM private key signing the token (RSA: RS256, ECDSA: ES256/384/512, Ed25519: EdDSA)")
	fs.String(&o.KeyID, "kid", "", "key id header, for a gateway that reads a JWKS")
	fs.Intro = "chat-gateway token prints a signed chat token.\n\nUsage: chat-gateway token --sub USER [--publish ROOMS] [--subscribe ROOMS] [--admin] --secret-file FILE|--private-key-file FILE"
	if err := fs.Parse(args); err != nil {
		if envflag.Answered(err) {
			return 0
		}
		fmt.Fprintf(stderr, "chat-gateway token: %v\n", err)
		return 2
	}
	o.Grants.Publish, o.Grants.Subscribe = envflag.SplitList(publish), envflag.SplitList(subscribe)
	t, err := auth.Mint(o)
	if err != nil {
		fmt.Fprintf(stderr, "chat-gateway token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, t)
	return 0
}
