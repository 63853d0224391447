// chat-gateway's flags of the Mercure hub. parseFlags calls
// addMercureFlags; each flag fills gateway.Options.Mercure, and
// gateway.Start checks the result.

package main

import (
	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/gateway"
)

// addMercureFlags defines --mercure and its --mercure-* settings, with o's
// values as defaults; the comma-separated publish origins are returned for
// parseFlags to split.
func addMercureFlags(fs *envflag.Set, o *gateway.MercureOptions) *string {
	var origins string
	fs.Bool(&o.Enabled, "mercure", false, "serve a Mercure hub at /.well-known/mercure (updates stored in the CHAT_MERCURE stream, delivered by every gateway)")
	fs.String(&o.Keys.SecretFile, "mercure-jwt-secret-file", "", "with --mercure: file holding the HS256 secret of publishers' and subscribers' tokens (at least 32 bytes)")
	fs.String(&o.Keys.KeyFile, "mercure-jwt-key-file", "", "with --mercure: PEM public key verifying publishers' and subscribers' tokens (RSA: RS256, ECDSA: ES256/384/512, Ed25519: EdDSA)")
	fs.String(&o.Keys.JWKSURL, "mercure-jwks-url", "", "with --mercure: URL of the JSON Web Key Set verifying publishers' and subscribers' tokens")
	fs.Bool(&o.Anonymous, "mercure-anonymous", false, "with --mercure: subscribers without a token receive public updates")
	fs.String(&o.Cookie, "mercure-cookie", o.Cookie, "with --mercure: cookie that may carry a token")
	fs.String(&origins, "mercure-publish-origins", "", "with --mercure: comma-separated origins that may publish with the cookie (*: any)")
	fs.Duration(&o.MaxAge, "mercure-max-age", 0, "with --mercure: how long updates are kept for resuming (0: 168h)")
	fs.Int64(&o.MaxMsgs, "mercure-max-msgs", 0, "with --mercure: most updates kept for resuming, the oldest dropped first (0: 1,000,000)")
	fs.Int64(&o.MaxBytes, "mercure-max-bytes", 0, "with --mercure: most bytes of updates kept (0: 1 GiB)")
	fs.Bool(&o.Subscriptions, "mercure-subscriptions", false, "with --mercure: publish subscription events and serve the subscriptions API (/.well-known/mercure/subscriptions), cluster-wide")
	fs.Int(&o.MaxReplay, "mercure-max-replay", o.MaxReplay, "with --mercure: most updates replayed on one connection; the client then resumes from the last")
	return &origins
}
