// Package connlimit bounds the connections an HTTP server holds: in total
// and per client address. A connection beyond a limit is still accepted,
// so the client gets an answer it can act on (503 with Retry-After) rather
// than a reset, but it is marked: the server refuses every request on it
// and closes it. Connections that arrive while many refused ones are still
// open are closed at once, so a flood cannot pin file descriptors.
package connlimit

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Reasons a connection is refused.
const (
	// ReasonTotal: the server holds its most connections.
	ReasonTotal = "max_conns"
	// ReasonPerIP: the client's address holds its most connections.
	ReasonPerIP = "max_conns_per_ip"
)

// Options sets the limits; 0 means no limit.
type Options struct {
	MaxConns      int
	MaxConnsPerIP int
	// MaxRefusing bounds the refused connections kept open long enough to
	// be answered; beyond it they are closed at once (default 256).
	MaxRefusing int
	// Refused, if set, is told of each refused connection and why.
	Refused func(reason string)
}

// Listener is a net.Listener that counts and limits its connections.
type Listener struct {
	net.Listener
	opts Options

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int

	refusing atomic.Int64
}

// Wrap returns ln limited by o.
func Wrap(ln net.Listener, o Options) *Listener {
	if o.MaxRefusing <= 0 {
		o.MaxRefusing = 256
	}
	if o.Refused == nil {
		o.Refused = func(string) {}
	}
	return &Listener{Listener: ln, opts: o, byIP: map[netip.Addr]int{}}
}

// Accept returns the next connection; one over a limit carries the reason
// (see Refusal).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c.RemoteAddr())
		reason := l.admit(ip)
		if reason == admitted {
			return &Conn{Conn: c, l: l, ip: ip}, nil
		}
		l.opts.Refused(reasons[reason])
		if l.refusing.Add(1) > int64(l.opts.MaxRefusing) {
			l.refusing.Add(-1)
			_ = c.Close()
			continue
		}
		return &Conn{Conn: c, l: l, refused: reason}, nil
	}
}

// A connection's admission, kept in a byte: every listener holds one.
const (
	admitted uint8 = iota
	overTotal
	overPerIP
)

var reasons = [...]string{admitted: "", overTotal: ReasonTotal, overPerIP: ReasonPerIP}

// admit counts a connection from ip, or returns why it is over a limit.
func (l *Listener) admit(ip netip.Addr) uint8 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.opts.MaxConns > 0 && l.total >= l.opts.MaxConns {
		return overTotal
	}
	if l.opts.MaxConnsPerIP > 0 && l.byIP[ip] >= l.opts.MaxConnsPerIP {
		return overPerIP
	}
	l.total++
	l.byIP[ip]++
	return admitted
}

func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.byIP[ip] - 1; n > 0 {
		l.byIP[ip] = n
	} else {
		delete(l.byIP, ip)
	}
}

// Open returns the number of connections counted against the limits.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func addrOf(a net.Addr) netip.Addr {
	if tcp, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
			return ip.Unmap()
		}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr()
}

// Conn is a connection accepted by a Listener. It keeps the underlying
// connection's file descriptor reachable (syscall.Conn), so a connection
// taken over from net/http can still be polled.
type Conn struct {
	net.Conn
	l       *Listener
	ip      netip.Addr
	closed  atomic.Bool
	refused uint8
}

// Close closes the connection and releases its place.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		if c.refused != admitted {
			c.l.refusing.Add(-1)
		} else {
			c.l.release(c.ip)
		}
	}
	return err
}

// SyscallConn gives access to the underlying file descriptor.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// CloseWrite shuts the sending side, as net/http does before closing a
// connection it answered with an error.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type connKey struct{}

// WithConn returns ctx carrying c; give it to http.Server.ConnContext.
func WithConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn() // HTTPS: the counted connection is under the TLS one
	}
	return context.WithValue(ctx, connKey{}, c)
}

// Refusal returns why the connection a request arrived on is over a
// limit, or "" if it is not.
func Refusal(ctx context.Context) string {
	if c, ok := ctx.Value(connKey{}).(*Conn); ok {
		return reasons[c.refused]
	}
	return ""
}
