// Command chat-lb is a small TCP load balancer for running several
// chat-gateway replicas behind one published port where no orchestrator
// balances for you (the compose deployment; swarm's routing mesh does it
// by itself). Each new connection goes to the next backend, round robin,
// over the addresses the backend name resolves to now (Docker's DNS
// returns one per replica); a backend that refuses is skipped. Connections
// are spliced byte for byte, so SSE streams pass untouched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck())
	}
	os.Exit(run(os.Args[1:]))
}

// healthcheck exits 0 when the balancer accepts connections on its port.
func healthcheck() int {
	listen := os.Getenv("CHAT_LISTEN")
	if listen == "" {
		listen = ":8080"
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "unhealthy: %v\n", err)
		return 1
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 2*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "unhealthy: %v\n", err)
		return 1
	}
	c.Close()
	return 0
}

func run(args []string) int {
	fs := envflag.New("chat-lb", os.Getenv, os.Stderr)
	var listen, backend string
	fs.String(&listen, "listen", ":8080", "address to accept connections on")
	fs.String(&backend, "backend", "gateway:8080", "host:port of the backends; the host may resolve to many addresses")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "chat-lb: %v\n", err)
		return 2
	}
	host, port, err := net.SplitHostPort(backend)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-lb: --backend: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	log.Info("balancing", "listen", ln.Addr().String(), "backend", backend)
	var next atomic.Uint64
	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("accept", "err", err)
			time.Sleep(100 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(ctx, log, c, host, port, next.Add(1))
		}()
	}
	wg.Wait()
	return 0
}

// serve splices c to a backend, trying each address once from the n-th.
func serve(ctx context.Context, log *slog.Logger, c net.Conn, host, port string, n uint64) {
	defer c.Close()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil || len(addrs) == 0 {
		log.Warn("resolve backends", "host", host, "err", err)
		return
	}
	sort.Strings(addrs)
	var b net.Conn
	for i := range addrs {
		addr := net.JoinHostPort(addrs[(n+uint64(i))%uint64(len(addrs))], port)
		if b, err = net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			break
		}
	}
	if b == nil {
		log.Warn("no backend answers", "host", host, "err", err)
		return
	}
	defer b.Close()
	// Stopping cuts every spliced connection.
	defer context.AfterFunc(ctx, func() { c.Close(); b.Close() })()
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); closeWrite(b); done <- struct{}{} }()
	go func() { io.Copy(c, b); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
