package hoststest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel here has no netem qdisc, so latency is a TCP proxy of the
// harness's own: it holds each chunk of bytes it reads for the link's
// delay, plus or minus a random jitter, and forwards it, keeping the order
// of the bytes on each connection. A route between two nodes passes one
// proxy (the receiving node's), which delays both directions, so the
// one-way latency between the nodes is the delay and the round trip twice
// that.

// Proxy forwards connections accepted on a listener to an upstream
// address, delaying the bytes of both directions.
type Proxy struct {
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)

	mu            sync.Mutex
	delay, jitter time.Duration
	conns         map[net.Conn]bool
	closed        bool
	wg            sync.WaitGroup
}

// NewProxy forwards what ln accepts to connections dial opens; it serves
// until Close.
func NewProxy(ln net.Listener, dial func(ctx context.Context) (net.Conn, error)) *Proxy {
	p := &Proxy{ln: ln, dial: dial, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets the delay and jitter of the bytes read from now on (0, 0:
// forward at once); jitter is at most delay.
func (p *Proxy) SetDelay(delay, jitter time.Duration) {
	p.mu.Lock()
	p.delay, p.jitter = delay, min(jitter, delay)
	p.mu.Unlock()
}

// due is when bytes read now may be forwarded.
func (p *Proxy) due() time.Time {
	p.mu.Lock()
	d, j := p.delay, p.jitter
	p.mu.Unlock()
	if j > 0 {
		d += time.Duration(rand.Int64N(int64(2*j+1))) - j //nolint:gosec // jitter, not a secret
	}
	return time.Now().Add(d)
}

// Close stops accepting, closes every forwarded connection and waits
// until the proxy's goroutines have ended.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// track remembers c for Close; it reports false (and closes c) once the
// proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := p.dial(ctx)
			cancel()
			if err != nil || !p.track(out) {
				p.untrack(in)
				return
			}
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.pipe(in, out) }()
			go func() { defer both.Done(); p.pipe(out, in) }()
			both.Wait()
			p.untrack(in, out)
		}()
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk after its delay, in order. When
// either side fails it closes both, which ends the other direction too.
func (p *Proxy) pipe(src, dst net.Conn) {
	queue := make(chan chunk, 256) // bounds what one direction holds
	go func() {
		defer close(queue)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				due := p.due()
				if due.Before(last) {
					due = last // jitter never reorders bytes
				}
				last = due
				queue <- chunk{buf[:n], due}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			time.Sleep(wait) // the link's delay itself
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	_ = src.Close()
	_ = dst.Close()
	for range queue { // let the reader end
	}
}

// inNetns runs f on an OS thread that has entered the network namespace
// ns (a name of `ip netns`), so sockets f opens belong to ns; they stay in
// it whatever thread uses them later. The thread is never returned to the
// Go scheduler: it ends with the goroutine, locked.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, in another namespace, dies with the goroutine.
		runtime.LockOSThread()
		fd, err := os.Open("/run/netns/" + ns) //nolint:gosec // a namespace the harness named
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = fd.Close() }()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// ListenIn opens a TCP listener on addr inside the namespace ns.
func ListenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// DialIn opens a TCP connection to addr from inside the namespace ns.
func DialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}
