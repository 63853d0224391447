//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// epollSupported says whether counting subscribers can be read by the
// epoll readers rather than a goroutine each.
const epollSupported = true

// epollPool is a few reader goroutines that each read many event streams
// through an epoll instance of their own, so a message fanned out to a
// thousand subscribers costs the load generator a few wake-ups and one
// read per ready socket rather than a goroutine wake-up per subscriber:
// the subscribers are then never the bottleneck of a fan-out run.
type epollPool struct {
	readers []*epollReader
	wg      sync.WaitGroup
}

// epollReader owns one epoll instance and the streams added to it. The
// epoll descriptor itself is non-blocking and registered with Go's
// network poller (through os.File), so the reader parks like any
// goroutine waiting on a socket instead of blocking a thread in
// epoll_wait.
type epollReader struct {
	epfd    int
	file    *os.File // the epoll descriptor, for Go's poller
	mu      sync.Mutex
	streams map[int32]*epollStream
}

type epollStream struct {
	fd      int
	counter *streamCounter
	sub     *subscriber
}

// newEpollPool starts n readers, which stop and close their streams once
// ctx ends.
func newEpollPool(ctx context.Context, n int) (*epollPool, error) {
	p := &epollPool{}
	for range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		if err := unix.SetNonblock(epfd, true); err != nil {
			_ = unix.Close(epfd)
			p.closeAll()
			return nil, err
		}
		r := &epollReader{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), streams: map[int32]*epollStream{}}
		p.readers = append(p.readers, r)
	}
	for _, r := range p.readers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			r.run()
		}()
	}
	go func() {
		<-ctx.Done()
		p.closeAll()
	}()
	return p, nil
}

// closeAll closes the epoll descriptors, which ends the readers' waits.
func (p *epollPool) closeAll() {
	for _, r := range p.readers {
		_ = r.file.Close()
	}
}

// add hands the opened stream rs to reader i (mod the readers) and
// closes rs's connection: from now on only the reader reads the socket.
func (p *epollPool) add(i int, rs *rawStream) error {
	fd, err := takeFD(rs.conn)
	if err != nil {
		_ = rs.conn.Close()
		return err
	}
	r := p.readers[i%len(p.readers)]
	s := &epollStream{fd: fd, counter: rs.counter, sub: rs.sub}
	r.mu.Lock()
	r.streams[int32(fd)] = s //nolint:gosec // descriptors fit in int32, as struct epoll_event has them
	r.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)} //nolint:gosec // as above
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.mu.Lock()
		delete(r.streams, int32(fd)) //nolint:gosec // as above
		r.mu.Unlock()
		_ = unix.Close(fd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// run reads the ready streams until the epoll descriptor is closed, then
// closes the streams.
func (r *epollReader) run() {
	defer func() {
		r.mu.Lock()
		for fd := range r.streams {
			_ = unix.Close(int(fd))
		}
		r.streams = nil
		r.mu.Unlock()
	}()
	rc, err := r.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 256<<10) // shared by every stream of this reader
	// The callback drains the ready list and returns false, so Go's
	// poller parks the goroutine until the epoll descriptor is readable
	// again (a stream has data); closing the file ends the wait.
	_ = rc.Read(func(uintptr) bool {
		for {
			n, err := unix.EpollWait(r.epfd, events, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return true
			}
			if n == 0 {
				return false
			}
			for _, ev := range events[:n] {
				r.mu.Lock()
				s := r.streams[ev.Fd]
				r.mu.Unlock()
				if s != nil {
					r.read(s, buf)
				}
			}
		}
	})
}

// read reads what stream s has ready into buf and counts it; at the
// stream's end (or on an error) it drops and closes the stream.
func (r *epollReader) read(s *epollStream, buf []byte) {
	for {
		n, err := unix.Read(s.fd, buf)
		if n > 0 {
			s.sub.count.Add(s.counter.feed(buf[:n]))
			if n == len(buf) {
				continue // there may be more
			}
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		// n == 0 (the server closed the stream) or a socket error.
		s.sub.ended.Store(true)
		_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
		r.mu.Lock()
		delete(r.streams, int32(s.fd)) //nolint:gosec // as in add
		r.mu.Unlock()
		_ = unix.Close(s.fd)
		return
	}
}

// takeFD duplicates the socket of conn (close-on-exec; it shares the
// original's non-blocking mode, which Go sets) and closes conn, so the
// socket is then read through the returned descriptor alone, outside Go's
// network poller.
func takeFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	_ = conn.Close() // the duplicate keeps the socket open
	return fd, nil
}
