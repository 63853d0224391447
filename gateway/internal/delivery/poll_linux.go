package delivery

import (
	"fmt"
	"golang.org/x/sys/unix"
	"sync"
)

const pollSupported = true

// poller watches the attached connections with one edge-triggered epoll
// set: input or hang-up means the client closed (an SSE client sends
// nothing after its request), output means a full socket can be written
// again. Go's own network poller watches the same sockets for net/http;
// an epoll set of our own lets one goroutine watch them all.
type poller struct {
	loop *Loop
	epfd int
	wake [2]int // a pipe that stops run

	mu     sync.Mutex
	byFD   map[int32]*Stream
	exited bool // run returned and closed the descriptors
	buf    [512]byte
}

// fd32 is a file descriptor as epoll carries it: the kernel's are ints,
// epoll's 32 bits, and descriptors are small numbers.
func fd32(fd int) int32 { return int32(fd) } //nolint:gosec // see above

func newPoller(l *Loop) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &poller{loop: l, epfd: epfd, byFD: map[int32]*Stream{}}
	if err := unix.Pipe2(p.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("epoll wake pipe: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: fd32(p.wake[0])}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return p, nil
}

func (p *poller) add(s *Stream) error {
	p.mu.Lock()
	p.byFD[fd32(s.fd)] = s
	p.mu.Unlock()
	// The stream's id rides along, so an event for a socket closed and
	// reused meanwhile is not taken for its new owner's.
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     fd32(s.fd),
		Pad:    int32(s.id), //nolint:gosec // the id round-trips through the event as 32 bits
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.byFD, fd32(s.fd))
		p.mu.Unlock()
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// remove stops watching s; the caller closes its connection after.
func (p *poller) remove(s *Stream) {
	p.mu.Lock()
	if p.byFD[fd32(s.fd)] == s {
		delete(p.byFD, fd32(s.fd))
	}
	p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, &unix.EpollEvent{})
}

// run watches the connections until close; it returns an error if epoll
// fails.
func (p *poller) run() error {
	defer func() {
		p.mu.Lock()
		p.exited = true
		p.closeFDs()
		p.mu.Unlock()
	}()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.loop.opts.Log.Error("epoll wait", "err", err)
			return fmt.Errorf("epoll wait: %w", err)
		}
		for _, ev := range events[:n] {
			if ev.Fd == fd32(p.wake[0]) {
				return nil
			}
			p.mu.Lock()
			s := p.byFD[ev.Fd]
			p.mu.Unlock()
			if s == nil || uint32(ev.Pad) != s.id { //nolint:gosec // the id round-trips through the event as 32 bits
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && p.gone(s) {
				s.end(ErrClientGone)
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				// The socket has room again after a write that did not fit
				// (the kernel signals nothing else). Always run the stream:
				// the edge may come before the worker has recorded that it
				// is waiting, and a missed edge would never come again.
				s.Notify()
			}
		}
	}
}

// gone reads what the client sent, without blocking, and reports whether
// it closed its side. Anything it sent after its request is ignored.
func (p *poller) gone(s *Stream) bool {
	closed := false
	err := s.raw.Read(func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), p.buf[:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return true
			}
			if n <= 0 || err != nil {
				closed = true
				return true
			}
		}
	})
	return closed || err != nil
}

// writeNonBlocking writes what the socket fd takes of b and returns how
// much that was; a full socket is not an error.
func writeNonBlocking(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(fd, b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return n, nil
		case err != nil:
			return n, err
		case m <= 0:
			return n, nil
		}
	}
	return n, nil
}

func setSendBuffer(fd, n int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

// close stops run.
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		_, _ = unix.Write(p.wake[1], []byte{0})
	}
}

func (p *poller) closeFDs() {
	_ = unix.Close(p.wake[0])
	_ = unix.Close(p.wake[1])
	_ = unix.Close(p.epfd)
}
