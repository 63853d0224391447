package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// pubConns are the keep-alive HTTP/1.1 connections of one publishing
// goroutine, one per server, each written and read on that goroutine.
// net/http's Transport costs the load generator about 35 µs of CPU per
// publish on this machine (its pool, and a read and a write goroutine
// woken for every request), which capped every server measured here
// below about 20,000 publishes/s; a request written and its response read
// straight from the socket costs a fraction of it, the same for every
// system a run measures. https URLs still go through the Transport.
type pubConns map[string]*pubConn

type pubConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// maxRoundTrip bounds one publish whose context has no earlier deadline.
const maxRoundTrip = 30 * time.Second

// roundTrip sends req and returns its response with the body read into
// body (at most 64 KiB kept). A connection that failed is closed and the
// next request dials again; a failed request is not retried, because a
// publish may have been stored before its connection broke.
func (cs pubConns) roundTrip(ctx context.Context, req *http.Request) (status int, body []byte, err error) {
	if req.URL.Scheme != "http" {
		resp, err := transport.RoundTrip(req)
		if err != nil {
			return 0, nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, body, err
	}
	host := req.URL.Host
	pc := cs[host]
	if pc == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return 0, nil, err
		}
		pc = &pubConn{c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
		cs[host] = pc
	}
	deadline := time.Now().Add(maxRoundTrip)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	status, body, keep, err := pc.exchange(req, deadline)
	if err != nil || !keep {
		_ = pc.c.Close()
		delete(cs, host)
	}
	return status, body, err
}

// exchange writes req and reads its whole response before deadline; keep
// says the connection may carry the next request.
func (pc *pubConn) exchange(req *http.Request, deadline time.Time) (status int, body []byte, keep bool, err error) {
	if err := pc.c.SetDeadline(deadline); err != nil {
		return 0, nil, false, err
	}
	if err := req.Write(pc.bw); err != nil {
		return 0, nil, false, err
	}
	if err := pc.bw.Flush(); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil {
		var n int64
		if n, err = io.Copy(io.Discard, resp.Body); err == nil && n > 0 {
			err = fmt.Errorf("response body over 64 KiB")
		}
	}
	_ = resp.Body.Close()
	if err != nil {
		return resp.StatusCode, body, false, err
	}
	return resp.StatusCode, body, !resp.Close, nil
}

// close closes every connection.
func (cs pubConns) close() {
	for host, pc := range cs {
		_ = pc.c.Close()
		delete(cs, host)
	}
}
