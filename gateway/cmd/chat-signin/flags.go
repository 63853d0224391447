// chat-signin's flags, each with a CHAT_SIGNIN_-prefixed environment
// variable as its default (--ttl ↔ CHAT_SIGNIN_TTL).

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"regexp"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

// envPrefix starts every environment variable of chat-signin.
const envPrefix = "CHAT_SIGNIN_"

// Defaults of chat-signin.
const (
	defaultHTTPAddr        = ":8090"
	defaultBasePath        = "/auth"
	defaultCookie          = "chat_session"
	defaultTTL             = 15 * time.Minute
	defaultSessionTTL      = 12 * time.Hour
	defaultShutdownTimeout = 10 * time.Second
	defaultHealthURL       = "http://127.0.0.1:8090/healthz"
)

// config is chat-signin's configuration.
type config struct {
	HTTPAddr string
	// BasePath is where the endpoints are: BasePath+"/signin", "/token"
	// and "/signout" ("" or "/auth": no trailing slash).
	BasePath string
	// SecretFile (HS256) or PrivateKeyFile signs tokens; Issuer,
	// Audience and KeyID go into them.
	SecretFile, PrivateKeyFile string
	Issuer, Audience, KeyID    string
	// Publish and Subscribe are the room patterns every token grants;
	// AdminUsers are the names whose tokens grant admin.
	Publish, Subscribe, AdminUsers []string
	TTL, SessionTTL                time.Duration
	// SessionKeyFile holds the key the session cookie is authenticated with.
	SessionKeyFile      string
	Cookie              string
	CookieSecure        bool
	ShutdownTimeout     time.Duration
	LogLevel, LogFormat string
}

var (
	// basePath: "" or /segment[/segment…] of URL-safe characters.
	basePath = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)
	// cookieName: an HTTP token.
	cookieName = regexp.MustCompile(`^[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+$`)
)

// parseFlags reads the configuration from args (without the program name)
// and from environment variables looked up with getenv. --help and
// --version write to out and return flag.ErrHelp and envflag.ErrVersion.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := envflag.NewPrefixed("chat-signin", envPrefix, getenv, out)
	var publish, subscribe, admins string
	fs.String(&c.HTTPAddr, "http-addr", defaultHTTPAddr, "HTTP listen address")
	fs.String(&c.BasePath, "base-path", defaultBasePath, "path the endpoints are under: <base>/signin, <base>/token, <base>/signout ('' for the root)")
	fs.String(&c.SecretFile, "secret-file", "", "file holding the HS256 secret tokens are signed with (the gateways' --auth-jwt-secret-file; at least 32 bytes)")
	fs.String(&c.PrivateKeyFile, "private-key-file", "", "PEM private key tokens are signed with instead (RSA: RS256, ECDSA: ES256/384/512, Ed25519: EdDSA; the gateways verify with its public key)")
	fs.String(&c.Issuer, "issuer", "", "iss claim of the tokens (match the gateways' --auth-issuer)")
	fs.String(&c.Audience, "audience", "", "aud claim of the tokens (match the gateways' --auth-audience)")
	fs.String(&c.KeyID, "kid", "", "key id header of the tokens, for gateways that read a JWKS")
	fs.String(&publish, "publish", "*", "comma-separated room patterns every token grants publishing to (lobby,team-*)")
	fs.String(&subscribe, "subscribe", "*", "comma-separated room patterns every token grants listening to and reading")
	fs.String(&admins, "admin-users", "", "comma-separated names whose tokens grant admin (setting room topics); anyone may sign in with any name, so only for demos")
	fs.Duration(&c.TTL, "ttl", defaultTTL, "lifetime of a token (the page fetches a fresh one before it expires)")
	fs.Duration(&c.SessionTTL, "session-ttl", defaultSessionTTL, "how long a sign-in lasts: tokens are given without asking again for this long")
	fs.String(&c.SessionKeyFile, "session-key-file", "", "file holding the key (at least 32 bytes) that authenticates the session cookie; not the token secret")
	fs.String(&c.Cookie, "cookie-name", defaultCookie, "name of the session cookie")
	fs.Bool(&c.CookieSecure, "cookie-secure", false, "mark the session cookie Secure (sent over HTTPS only): set it when users reach the service by HTTPS")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "grace period for a graceful stop")
	fs.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.String(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.Version(version)
	fs.Intro = `chat-signin is a demo sign-in service for ChatScalable: anyone may sign in
with a name of their choice, and gets tokens that gateways started with
--auth jwt accept. Replace it with a real identity provider that mints the
same claims before trusting names.

Usage: chat-signin --secret-file FILE|--private-key-file FILE --session-key-file FILE [flags]
       chat-signin healthcheck [--healthcheck-url URL]

Endpoints: GET and POST <base>/signin (the form), GET <base>/token
({"token":"…"} for a signed-in browser), POST <base>/signout, GET /healthz.`
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Publish, c.Subscribe, c.AdminUsers = envflag.SplitList(publish), envflag.SplitList(subscribe), envflag.SplitList(admins)
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	if (c.SecretFile == "") == (c.PrivateKeyFile == "") {
		errs = append(errs, errors.New("sign tokens with exactly one of --secret-file and --private-key-file"))
	}
	if c.SessionKeyFile == "" {
		errs = append(errs, errors.New("--session-key-file is required"))
	}
	if !basePath.MatchString(c.BasePath) {
		errs = append(errs, fmt.Errorf("--base-path %q must be empty or a path like /auth (no trailing slash)", c.BasePath))
	}
	if !cookieName.MatchString(c.Cookie) {
		errs = append(errs, fmt.Errorf("--cookie-name %q is not a valid cookie name", c.Cookie))
	}
	if c.TTL < time.Minute || c.TTL > 24*time.Hour {
		errs = append(errs, errors.New("--ttl must be from 1m to 24h"))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, errors.New("--session-ttl must be from 1m to 720h"))
	}
	for _, flagPatterns := range []struct {
		name     string
		patterns []string
	}{{"--publish", c.Publish}, {"--subscribe", c.Subscribe}} {
		for _, p := range flagPatterns.patterns {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", flagPatterns.name, p, err))
			}
		}
	}
	for _, u := range c.AdminUsers {
		if err := validateName(u); err != nil {
			errs = append(errs, fmt.Errorf("--admin-users %q: %w", u, err))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q is not one of debug, info, warn, error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// errHelp is returned by parseFlags when --help was asked for.
var errHelp = flag.ErrHelp
