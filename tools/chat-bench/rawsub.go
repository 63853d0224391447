package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// handshakeTimeout bounds opening one raw subscriber: dialling, the
// request, the response head and the stream's first line.
const handshakeTimeout = 30 * time.Second

// rawStream is one SSE stream opened by hand for the epoll readers: its
// connection (the head and the first line read), the counter holding
// what it has counted so far, and the subscriber it counts for.
type rawStream struct {
	conn    net.Conn
	counter *streamCounter
	sub     *subscriber
}

// dialStream opens the event stream of ep at base over plain HTTP/1.1:
// it writes the GET request itself, reads the response head up to the
// blank line, checks the status is 200 and reads until the stream's
// first line (the gateway writes it once it has joined the listener), as
// the goroutine subscriber does. Bytes read past the head are counted.
func dialStream(ctx context.Context, ep *endpoint, base string, sub *subscriber) (*rawStream, error) {
	u, err := url.Parse(ep.eventsURL(base))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: the epoll subscribers speak plain http only", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = conn.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", u.RequestURI(), u.Host)
	if ep.auth != "" {
		fmt.Fprintf(&req, "Authorization: %s\r\n", ep.auth)
	}
	req.WriteString("\r\n")
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("response head: %w", err)
	}
	code, err := statusCode(status)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("status %d", code)
	}
	head, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("response head: %w", err)
	}
	chunked := false
	for _, te := range head.Values("Transfer-Encoding") {
		chunked = chunked || strings.Contains(strings.ToLower(te), "chunked")
	}
	c := newStreamCounter(ep.marker, !ep.markerInLine, chunked)
	// Read until the first line (and the endpoint's ready text, when it
	// has one: Centrifugo's connect push) has arrived and nothing is left
	// in br: from here on, the epoll reader reads the socket itself.
	buf := make([]byte, 4<<10)
	var early []byte // what came before the ready text, to find it in
	waiting := ep.ready != nil
	for !c.lines || waiting || br.Buffered() > 0 {
		n, err := br.Read(buf)
		sub.count.Add(c.feed(buf[:n]))
		if waiting {
			early = append(early, buf[:n]...)
			waiting = !bytes.Contains(early, ep.ready)
			if len(early) > maxEarly {
				return nil, fmt.Errorf("no %q in the stream's first %d bytes", ep.ready, maxEarly)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("first line: %w", err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	ok = true
	return &rawStream{conn: conn, counter: c, sub: sub}, nil
}

// maxEarly bounds what dialStream reads looking for an endpoint's ready
// text.
const maxEarly = 64 << 10

// statusCode parses the code of an HTTP/1.x status line.
func statusCode(line string) (int, error) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, fmt.Errorf("not an HTTP/1 status line: %q", line)
	}
	return strconv.Atoi(f[1])
}
