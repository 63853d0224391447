package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

var transport = &http.Transport{
	MaxIdleConnsPerHost: 1024,
	DisableCompression:  true,
	ReadBufferSize:      32 << 10,
}

// subscriber counts the message events of one SSE stream; a probe also
// measures each message's latency from the timestamp in its data (see
// endpoint.stamp).
type subscriber struct {
	count atomic.Int64
	// ended is set when the stream ended before the run did: the server
	// closed it (a gateway drops a listener too slow to keep up).
	ended atomic.Bool
	mu    sync.Mutex
	lat   []float64 // milliseconds, probes only
}

// subscribe opens the SSE stream of ep at base and reads it until ctx
// ends; ready is called once the stream is open (the gateway has
// registered it: it joins before writing the stream's first line).
func (s *subscriber) subscribe(ctx context.Context, ep *endpoint, base string, probe bool, ready func(error)) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ep.eventsURL(base), nil)
	if ep.auth != "" {
		req.Header.Set("Authorization", ep.auth)
	}
	resp, err := transport.RoundTrip(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		ready(err)
		return
	}
	defer func() {
		_ = resp.Body.Close()
		s.ended.Store(ctx.Err() == nil)
	}()
	r := bufio.NewReaderSize(resp.Body, 32<<10)
	for {
		line, err := r.ReadSlice('\n') // "retry: …", Mercure's ":", or up to Centrifugo's connect push
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			ready(err)
			return
		}
		if ep.ready == nil || bytes.Contains(line, ep.ready) {
			break
		}
	}
	ready(nil)
	marker := ep.marker
	if probe {
		s.probe(r, marker, ep.stamp)
		return
	}
	// Count markers in raw blocks, carrying the tail over so a marker
	// split between two reads is still found.
	buf := make([]byte, 64<<10)
	carry := 0
	for {
		n, err := r.Read(buf[carry:])
		if n > 0 {
			block := buf[:carry+n]
			s.count.Add(int64(bytes.Count(block, marker)))
			keep := min(len(marker)-1, len(block))
			// Drop whole markers from the carried tail so none is counted twice.
			tail := block[len(block)-keep:]
			if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
				tail = tail[i+1:]
			}
			carry = copy(buf, tail)
		}
		if err != nil {
			return
		}
	}
}

func (s *subscriber) probe(r *bufio.Reader, marker, stamp []byte) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		// The marker starts its own line, or (Centrifugo) sits in the data
		// line that also carries the stamp.
		s.count.Add(int64(bytes.Count(line, marker)))
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		i := bytes.Index(line, stamp)
		if i < 0 {
			continue
		}
		rest := line[i+len(stamp):]
		j := bytes.IndexAny(rest, `" `)
		if j < 0 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
		if err != nil {
			continue
		}
		ms := float64(time.Since(ts).Microseconds()) / 1000
		s.mu.Lock()
		s.lat = append(s.lat, ms)
		s.mu.Unlock()
	}
}

// isProbe reports whether subscriber i of n, spread over urls gateways
// and rooms rooms, measures latency: one per gateway, from the middle of
// the joining order, since a gateway writes a room's listeners in the
// order they joined and the middle one sees the median wait. Over many
// rooms every subscriber is a probe: each gets only its room's share of
// the messages, too few for one probe to measure.
func isProbe(i, n, urls, rooms int) bool {
	if rooms > 1 {
		return true
	}
	first := n / 2 / urls * urls // a multiple of urls: one probe per gateway
	return i >= first && i < first+urls
}

// openSubscribers opens n subscribers of ep spread over urls and rooms
// rooms, with probes among them (isProbe). It returns once all are open.
// With readers > 0 (and on Linux) the counting subscribers are read by
// that many epoll readers, the probes each by a goroutine of its own, so
// they timestamp every message as it arrives; with readers 0 every
// subscriber has its goroutine.
func openSubscribers(ctx context.Context, urls []string, ep *endpoint, n, rooms, readers int) ([]*subscriber, error) {
	var pool *epollPool
	if readers > 0 && epollSupported {
		var err error
		if pool, err = newEpollPool(ctx, readers); err != nil {
			return nil, err
		}
	}
	subs := make([]*subscriber, n)
	errs := make(chan error, n)
	for i := range subs {
		subs[i] = &subscriber{}
		base, probe := urls[i%len(urls)], isProbe(i, n, len(urls), rooms)
		ready := func(err error) { errs <- err }
		// The epoll readers speak plain HTTP only: https streams keep a
		// goroutine each.
		if pool == nil || probe || !strings.HasPrefix(base, "http:") {
			go subs[i].subscribe(ctx, ep, base, probe, ready)
		} else {
			go func() {
				rs, err := dialStream(ctx, ep, base, subs[i])
				if err == nil {
					err = pool.add(i, rs)
				}
				ready(err)
			}()
		}
		if i%100 == 99 {
			time.Sleep(5 * time.Millisecond) // pace connection setup a little
		}
	}
	for range n {
		if err := <-errs; err != nil {
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	return subs, nil
}

// publisher sends messages through the URLs round robin.
type publisher struct {
	urls     []string
	ep       *endpoint
	stored   atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	lat      []float64
}

func (p *publisher) publishOne(ctx context.Context, conns pubConns, i int64) {
	start := time.Now()
	req := p.ep.publish(ctx, p.urls[int(i)%len(p.urls)], start)
	status, body, err := conns.roundTrip(ctx, req)
	if err != nil && ended(ctx) {
		return // cut by the end of the run, not refused
	}
	if err != nil || status != p.ep.stored || (p.ep.refused != nil && bytes.Contains(body, p.ep.refused)) {
		p.failures.Add(1)
		return
	}
	p.stored.Add(1)
	ms := float64(time.Since(start).Microseconds()) / 1000
	p.mu.Lock()
	p.lat = append(p.lat, ms)
	p.mu.Unlock()
}

// paced publishes rate messages per second for d with a pool of senders.
// It gives up at 2d: a server that cannot take the rate then shows in
// fewer messages published than offered, not in a run without end.
func (p *publisher) paced(ctx context.Context, rate int, d time.Duration) {
	jobs := make(chan int64, rate)
	var wg sync.WaitGroup
	// Enough senders that each may take 200 ms and the rate still holds:
	// with one per 50 msg/s (20 ms each), a mesh answering publishes in
	// 24 ms on average under a fan-out's load (30 senders, 1,243 msg/s)
	// fell short of 1,500 msg/s: a limit of the harness, not the server.
	for range min(1024, max(16, rate/5)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns := pubConns{}
			defer conns.close()
			for i := range jobs {
				p.publishOne(ctx, conns, i)
			}
		}()
	}
	start := time.Now()
	total := int64(float64(rate) * d.Seconds())
	for i := int64(0); i < total && ctx.Err() == nil && time.Since(start) < 2*d; i++ {
		// Send message i at its due time.
		if wait := time.Until(start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// ended says ctx is done or its deadline has passed: a connection's
// deadline, set from ctx's, can fire before ctx's own timer does, and a
// publisher that only asked ctx would then dial again and again, failing
// at once, until that timer ran.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func percentiles(ms []float64, r *Result) {
	if len(ms) == 0 {
		return
	}
	sort.Float64s(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	r.P50ms, r.P99ms, r.P999ms, r.Maxms = at(0.50), at(0.99), at(0.999), ms[len(ms)-1]
}

func fanout(ctx context.Context, mode string, o options) (Result, error) {
	res := Result{Mode: mode, URLs: len(o.urls), Subscribers: o.subs, Rooms: o.rooms, Mercure: o.mercure, Centrifugo: o.centrifugo}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	subURLs := o.urls
	if o.publishFirst && len(o.urls) > 1 {
		subURLs = o.urls[1:] // listeners on other nodes than the publisher's
	}
	ep, rooms, err := o.roomsEndpoint()
	if err != nil {
		return res, err
	}
	subs, err := openSubscribers(sctx, subURLs, ep, o.subs, rooms, o.readers)
	if err != nil {
		return res, err
	}
	pubURLs := o.urls
	if o.publishFirst {
		pubURLs = o.urls[:1]
	}
	p := &publisher{urls: pubURLs, ep: ep}
	cpu, err := totalCPU(o.pids)
	if err != nil {
		return res, err
	}
	rss := startRSSSampler(o.pids)
	start := time.Now()
	p.paced(ctx, o.rate, o.duration)
	res.Published = p.stored.Load()
	res.Offered = int64(float64(o.rate) * o.duration.Seconds())
	res.Expected = res.Published * int64(o.subs/rooms) // each message reaches its room's listeners
	deadline := time.Now().Add(o.drain)
	for {
		var got int64
		for _, s := range subs {
			got += s.count.Load()
		}
		res.Delivered = got
		if got >= res.Expected || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.Seconds = time.Since(start).Seconds()
	res.PeakRSSKB = rss.stop()
	res.Lost = res.Expected - res.Delivered
	res.DeliveriesSec = float64(res.Delivered) / res.Seconds
	res.Errors = p.failures.Load()
	if res.CPUPerOpUS, err = cpuPerOp(o.pids, cpu, res.Published); err != nil {
		return res, err
	}
	var lat []float64
	for i, s := range subs {
		if !isProbe(i, len(subs), len(subURLs), rooms) {
			continue
		}
		s.mu.Lock()
		lat = append(lat, s.lat...)
		s.mu.Unlock()
	}
	percentiles(lat, &res)
	return res, nil
}

func publishOnly(ctx context.Context, o options) (Result, error) {
	res := Result{Mode: "publish", URLs: len(o.urls), Mercure: o.mercure, Centrifugo: o.centrifugo}
	ep, _, err := o.roomsEndpoint()
	if err != nil {
		return res, err
	}
	p := &publisher{urls: o.urls, ep: ep}
	pctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu, err := totalCPU(o.pids)
	if err != nil {
		return res, err
	}
	start := time.Now()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns := pubConns{}
			defer conns.close()
			for !ended(pctx) {
				p.publishOne(pctx, conns, next.Add(1))
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Published = p.stored.Load()
	res.PublishesSec = float64(res.Published) / res.Seconds
	res.Errors = p.failures.Load()
	percentiles(p.lat, &res)
	if res.CPUPerOpUS, err = cpuPerOp(o.pids, cpu, res.Published); err != nil {
		return res, err
	}
	return res, nil
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime reads a process's user and system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after its closing parenthesis, where utime and stime are the 12th
	// and 13th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("pid %d: unexpected /proc stat %q", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// totalCPU is the CPU time of pids together (0 without pids).
func totalCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		d, err := cpuTime(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// cpuPerOp returns the CPU time pids spent since before, per operation,
// in microseconds (0 without pids or operations).
func cpuPerOp(pids []int, before time.Duration, ops int64) (float64, error) {
	if len(pids) == 0 || ops == 0 {
		return 0, nil
	}
	after, err := totalCPU(pids)
	if err != nil {
		return 0, err
	}
	return float64((after - before).Microseconds()) / float64(ops), nil
}

// rssKB reads a process's resident memory from /proc/<pid>/status.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func totalRSS(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		kb, err := rssKB(p)
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

// workerResult is what a worker process reports.
type workerResult struct {
	Opened int   `json:"opened"`
	Errors int64 `json:"errors"`
}

func idle(ctx context.Context, o options) (Result, error) {
	res := Result{Mode: "idle", URLs: len(o.urls), Conns: o.conns}
	var err error
	if len(o.pids) > 0 {
		if res.RSSBeforeKB, err = totalRSS(o.pids); err != nil {
			return res, err
		}
	}
	per := (o.conns + o.workers - 1) / o.workers
	cpu, err := totalCPU(o.pids)
	if err != nil {
		return res, err
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	var stdins []io.Closer
	var cmds []*exec.Cmd
	defer func() {
		for _, in := range stdins {
			_ = in.Close()
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	opened := 0
	for w := range o.workers {
		n := min(per, o.conns-w*per)
		if n <= 0 {
			break
		}
		args := []string{"worker", "--urls", strings.Join(o.urls, ","), "--room", o.room, "--rooms", strconv.Itoa(o.rooms), "--conns", strconv.Itoa(n), "--token-file", o.tokenFile}
		if o.mercure {
			args = append(args, "--mercure", "--mercure-topic", o.topic, "--mercure-selector", o.selector,
				"--mercure-token-file", o.mercureTokenFile, "--mercure-secret-file", o.mercureSecret)
		}
		if o.centrifugo {
			args = append(args, "--centrifugo", "--centrifugo-channel", o.channel, "--centrifugo-config", o.centrifugoConfig,
				"--centrifugo-secret-file", o.centrifugoSecret, "--centrifugo-api-key-file", o.centrifugoAPIKey)
		}
		cmd := exec.CommandContext(ctx, self, args...) //nolint:gosec // runs itself as a worker
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return res, err
		}
		stdins, cmds = append(stdins, in), append(cmds, cmd)
		var wr workerResult
		if err := json.NewDecoder(out).Decode(&wr); err != nil {
			return res, fmt.Errorf("worker %d: %w", w, err)
		}
		opened += wr.Opened
		res.Errors += wr.Errors
	}
	res.Conns = opened
	if res.CPUPerOpUS, err = cpuPerOp(o.pids, cpu, int64(opened)); err != nil {
		return res, err
	}
	time.Sleep(o.settle) // let the gateway settle before reading its memory
	if len(o.pids) > 0 {
		if res.RSSAfterKB, err = totalRSS(o.pids); err != nil {
			return res, err
		}
		if opened > 0 {
			res.KBPerConn = float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(opened)
		}
	}
	return res, nil
}

// worker holds --conns idle SSE connections, reports how many it opened
// as JSON, and keeps them until its standard input closes.
func worker(args []string, stdout, stderr io.Writer) int {
	o, err := parse("worker", args, stdout)
	if envflag.Answered(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench worker: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	ep, _, err := o.roomsEndpoint()
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench worker: %v\n", err)
		return 2
	}
	for i := range o.conns {
		wg.Add(1)
		s := &subscriber{}
		go s.subscribe(ctx, ep, o.urls[i%len(o.urls)], false, func(err error) {
			if err != nil {
				failed.Add(1)
			} else {
				opened.Add(1)
			}
			wg.Done()
		})
		if i%200 == 199 {
			time.Sleep(10 * time.Millisecond) // pace connection setup
		}
	}
	wg.Wait()
	_ = json.NewEncoder(stdout).Encode(workerResult{Opened: int(opened.Load()), Errors: failed.Load()})
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes our stdin
	return 0
}
