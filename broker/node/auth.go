package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// Auth says who may connect to a node.
//
// A node with Passwords requires every client to log in as one of those
// roles, on every listener. A node without them accepts anonymous clients
// with every right, which Start allows only while its client listener is
// on loopback (the quickstart) or with NoAuth. A node with a route
// listener requires RoutePassword of the nodes that join it, and presents
// it to the nodes it joins, unless NoAuth.
type Auth struct {
	// Passwords holds the password of each role's user (the user name is
	// the role's name). A password that is a bcrypt hash ($2a$…, made by
	// `nats server passwd`) is compared as such.
	Passwords map[Role]string
	// RoutePassword is the password of the user "route", which routes
	// present; the same on every node of a cluster, in plain text (each
	// node presents it).
	RoutePassword string
	// NoAuth lets anonymous clients in on any listener and routes join
	// without credentials.
	NoAuth bool
}

// Errors of an Auth that Start refuses.
var (
	// ErrAnonymousListener: anonymous clients on a listener that is not
	// on loopback.
	ErrAnonymousListener = errors.New("anonymous nats clients on a listener that is not on loopback")
	// ErrAnonymousRoutes: a route listener without route credentials.
	ErrAnonymousRoutes = errors.New("nats routes without credentials")
)

// IsZero reports whether a says nothing: no passwords, no route password,
// not NoAuth.
func (a Auth) IsZero() bool { return len(a.Passwords) == 0 && a.RoutePassword == "" && !a.NoAuth }

// check refuses an Auth that would leave o's node open.
func (a Auth) check(o Options) error {
	if a.NoAuth {
		if len(a.Passwords) > 0 || a.RoutePassword != "" {
			return errors.New("nats: no-auth and credentials exclude each other")
		}
		return nil
	}
	if len(a.Passwords) == 0 && o.ClientListen != "" && !IsLoopback(o.ClientListen) {
		return fmt.Errorf("%w (%s): give clients credentials, or say no-auth", ErrAnonymousListener, o.ClientListen)
	}
	if o.ClusterListen != "" && a.RoutePassword == "" {
		return fmt.Errorf("%w (%s): give the routes a password, or say no-auth", ErrAnonymousRoutes, o.ClusterListen)
	}
	for role, p := range a.Passwords {
		if _, err := role.permissions(); err != nil {
			return err
		}
		if p == "" {
			return fmt.Errorf("nats: the %s role's password is empty", role)
		}
	}
	return nil
}

// apply sets the users and route credentials of a on opts. When clients
// must log in, it adds a user for the node's in-process connections (an
// nkey made for this start, valid for in-process connections only, not
// restricted) and returns the option that logs Connect in as it.
func (a Auth) apply(opts *server.Options) (nats.Option, error) {
	if a.RoutePassword != "" {
		opts.Cluster.Username, opts.Cluster.Password = RouteUser, a.RoutePassword
	}
	if len(a.Passwords) == 0 {
		return nil, nil
	}
	for _, role := range Roles {
		p, ok := a.Passwords[role]
		if !ok {
			continue
		}
		perms, _ := role.permissions() // checked in check
		hash, err := hashed(p)
		if err != nil {
			return nil, fmt.Errorf("nats: the %s role's password: %w", role, err)
		}
		opts.Users = append(opts.Users, &server.User{Username: string(role), Password: hash, Permissions: perms})
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("nats: in-process user: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("nats: in-process user: %w", err)
	}
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
		Nkey:                   pub,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	})
	return nats.Nkey(pub, kp.Sign), nil
}

// hashed returns p as a bcrypt hash: p itself if it is one. The passwords
// come from secret files rather than a configuration file, so they are
// hashed at the lowest cost (a millisecond per login), which keeps them
// out of the server's memory in clear without slowing connections.
func hashed(p string) (string, error) {
	if strings.HasPrefix(p, "$2") {
		if _, err := bcrypt.Cost([]byte(p)); err != nil {
			return "", fmt.Errorf("looks like a bcrypt hash but is not one: %w", err)
		}
		return p, nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// routesWithCredentials puts the route user and password into the route
// URLs that have none: nats-server presents credentials only from the URL.
func routesWithCredentials(routes []*url.URL, password string) {
	if password == "" {
		return
	}
	for _, r := range routes {
		if r.User == nil {
			r.User = url.UserPassword(RouteUser, password)
		}
	}
}

// IsLoopback reports whether a listen address ("host:port") is on a
// loopback interface only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverTLS sets the TLS of the client and route listeners from f: the
// certificate of both, and the CA that verifies routes (always) and
// clients' certificates (with verifyClients).
func serverTLS(opts *server.Options, f broker.TLSFiles, verifyClients bool) error {
	if !f.Enabled() {
		if verifyClients {
			return errors.New("nats tls: verifying client certificates needs a CA and a certificate")
		}
		return nil
	}
	if f.Cert == "" || f.Key == "" {
		return fmt.Errorf("%w: a node needs a certificate and its key (cert %q, key %q)", broker.ErrTLSFiles, f.Cert, f.Key)
	}
	if verifyClients && f.CA == "" {
		return fmt.Errorf("%w: verifying client certificates needs a CA", broker.ErrTLSFiles)
	}
	const timeout = 2 // seconds, nats-server's default
	if !opts.DontListen {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.Cert, KeyFile: f.Key, CaFile: f.CA, Verify: verifyClients})
		if err != nil {
			return fmt.Errorf("%w: client listener: %w", broker.ErrTLSFiles, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = cfg, true, verifyClients, timeout
	}
	if opts.Cluster.Port != 0 {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.Cert, KeyFile: f.Key, CaFile: f.CA, Verify: true})
		if err != nil {
			return fmt.Errorf("%w: route listener: %w", broker.ErrTLSFiles, err)
		}
		// A node is the client of the routes it makes: it verifies the
		// other node's certificate with the same CA (as nats-server does
		// for a cluster's tls block in a configuration file).
		cfg.ClientAuth, cfg.RootCAs = tls.RequireAndVerifyClientCert, cfg.ClientCAs
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = cfg, timeout
	}
	return nil
}
