package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// What a sweep step must meet to count as sustained.
const (
	sweepMaxP99     = 250.0 // ms, the probes' p99
	sweepMinReached = 0.95  // of the target message rate, by the publisher
)

// stepResult is one step of a sweep, printed and written as a JSON line;
// deployments' scripts and `chat-bench plot` read these fields.
type stepResult struct {
	System      string  `json:"system"`
	Mode        string  `json:"mode"` // "sweep"
	URLs        int     `json:"urls"`
	Mercure     bool    `json:"mercure,omitempty"`
	Subscribers int     `json:"subscribers"`
	Rate        int     `json:"rate"` // the target publish rate, msg/s
	TargetSec   float64 `json:"target_deliveries_per_sec"`
	Published   int64   `json:"published"`
	Expected    int64   `json:"expected"`
	Delivered   int64   `json:"delivered"`
	Lost        int64   `json:"lost"`
	Seconds     float64 `json:"seconds"`
	// DeliveriesSec is the step's deliveries over the time from its first
	// publish to its last delivery (or the drain deadline); PublishesSec
	// the publisher's stored messages over its own time.
	DeliveriesSec float64 `json:"deliveries_per_sec"`
	PublishesSec  float64 `json:"publishes_per_sec"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	Maxms         float64 `json:"max_ms"`
	// ServerCPUPct is the CPU time of the --pid processes over the step,
	// in % of one core; ServerRSSKB the most their resident memory summed
	// to in samples every 100 ms.
	ServerCPUPct float64 `json:"server_cpu_pct"`
	ServerRSSKB  int64   `json:"server_rss_kb"`
	Errors       int64   `json:"errors"`
	// Ended is how many subscribers' streams the server had closed by
	// the step's end (since the sweep began).
	Ended     int    `json:"ended_streams"`
	Sustained bool   `json:"sustained"`
	Reason    string `json:"reason"`
}

// judge decides whether a step was sustained: nothing lost, the probes'
// p99 within sweepMaxP99, and the publisher at sweepMinReached of the
// target rate or more. Otherwise it says why, every reason that holds.
func judge(r stepResult) (bool, string) {
	var why []string
	if r.Lost > 0 {
		why = append(why, fmt.Sprintf("lost %d of %d", r.Lost, r.Expected))
	}
	if r.Ended > 0 {
		why = append(why, fmt.Sprintf("the server closed %d streams", r.Ended))
	}
	if r.P99ms > sweepMaxP99 {
		why = append(why, fmt.Sprintf("p99 %.1f ms > %.0f ms", r.P99ms, sweepMaxP99))
	}
	if r.PublishesSec < sweepMinReached*float64(r.Rate) {
		why = append(why, fmt.Sprintf("publisher reached %.0f of %d msg/s", r.PublishesSec, r.Rate))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// sweepSummary is a sweep's outcome: the highest sustained step and the
// first failing one (nil when there is none).
type sweepSummary struct {
	Best, Failed *stepResult
}

func summarize(steps []stepResult) sweepSummary {
	var s sweepSummary
	for i := range steps {
		if !steps[i].Sustained {
			s.Failed = &steps[i]
			break
		}
		s.Best = &steps[i]
	}
	return s
}

// sweep opens the subscribers once, then runs each step of o.steps (a
// target in deliveries per second) until the first that is not sustained.
// Each step's row is printed to w as it ends, after a header, and passed
// to each.
func sweep(ctx context.Context, o options, w io.Writer, each func(stepResult) error) ([]stepResult, error) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ep, rooms, err := o.roomsEndpoint()
	if err != nil {
		return nil, err
	}
	subs, err := openSubscribers(sctx, o.urls, ep, o.subs, rooms, o.readers)
	if err != nil {
		return nil, err
	}
	o.rooms = rooms // the probes' places (isProbe)
	fmt.Fprintf(w, "%-10s %10s %12s %12s %9s %9s %9s %7s %9s %s\n",
		"target/s", "msg/s", "sent msg/s", "delivered/s", "lost", "p50 ms", "p99 ms", "cpu %", "rss MB", "")
	var steps []stepResult
	for _, target := range o.steps {
		r, err := sweepStep(ctx, o, ep, subs, target)
		if err != nil {
			return steps, err
		}
		steps = append(steps, r)
		verdict := "sustained"
		if !r.Sustained {
			verdict = "FAILED: " + r.Reason
		}
		fmt.Fprintf(w, "%-10d %10d %12.0f %12.0f %9d %9.2f %9.2f %7.0f %9.1f %s\n",
			target, r.Rate, r.PublishesSec, r.DeliveriesSec, r.Lost, r.P50ms, r.P99ms, r.ServerCPUPct, float64(r.ServerRSSKB)/1024, verdict)
		if err := each(r); err != nil {
			return steps, err
		}
		if !r.Sustained {
			break
		}
		time.Sleep(time.Second) // a breath between steps
	}
	return steps, nil
}

// sweepStep publishes at target/subscribers messages per second for the
// step's duration, then waits until every subscriber has every message
// of the step, or the drain deadline.
func sweepStep(ctx context.Context, o options, ep *endpoint, subs []*subscriber, target int) (stepResult, error) {
	n := len(subs)
	reach := max(1, n/max(o.rooms, 1)) // the listeners a message reaches: its room's
	r := stepResult{System: o.system, Mode: "sweep", URLs: len(o.urls), Mercure: o.mercure, Subscribers: n,
		Rate: max(1, (target+reach/2)/reach), TargetSec: float64(target)}
	delivered := func() int64 {
		var got int64
		for _, s := range subs {
			got += s.count.Load()
		}
		return got
	}
	base := delivered()
	seen := map[int]int{} // each probe's latencies measured before the step
	for i, s := range subs {
		if isProbe(i, n, len(o.urls), o.rooms) {
			s.mu.Lock()
			seen[i] = len(s.lat)
			s.mu.Unlock()
		}
	}
	cpu, err := totalCPU(o.pids)
	if err != nil {
		return r, err
	}
	rss := startRSSSampler(o.pids)
	p := &publisher{urls: o.urls, ep: ep}
	start := time.Now()
	p.paced(ctx, r.Rate, o.stepDuration)
	sent := time.Since(start)
	r.Published = p.stored.Load()
	r.Errors = p.failures.Load()
	r.Expected = r.Published * int64(reach)
	for deadline := time.Now().Add(o.drain); ; time.Sleep(5 * time.Millisecond) {
		r.Delivered = delivered() - base
		if r.Delivered >= r.Expected || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
	}
	elapsed := time.Since(start)
	r.ServerRSSKB = rss.stop()
	after, err := totalCPU(o.pids)
	if err != nil {
		return r, err
	}
	r.Seconds = elapsed.Seconds()
	r.Lost = max(0, r.Expected-r.Delivered)
	r.DeliveriesSec = float64(r.Delivered) / r.Seconds
	r.PublishesSec = float64(r.Published) / sent.Seconds()
	r.ServerCPUPct = 100 * float64(after-cpu) / float64(elapsed)
	for _, s := range subs {
		if s.ended.Load() {
			r.Ended++
		}
	}
	var lat []float64
	for i, from := range seen {
		s := subs[i]
		s.mu.Lock()
		lat = append(lat, s.lat[from:]...)
		s.mu.Unlock()
	}
	var pr Result
	percentiles(lat, &pr)
	r.P50ms, r.P99ms, r.Maxms = pr.P50ms, pr.P99ms, pr.Maxms
	r.Sustained, r.Reason = judge(r)
	return r, nil
}

// rssSampler reads the summed RSS of pids every 100 ms and keeps the
// highest.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int64
}

func startRSSSampler(pids []int) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	if len(pids) == 0 {
		return s
	}
	sample := func() {
		if kb, err := totalRSS(pids); err == nil {
			s.peak = max(s.peak, kb)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-s.done:
				sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak
}

// runSweep is `chat-bench sweep`: the steps as a table and JSON lines,
// appended to o.jsonl too, then the verdict.
func runSweep(ctx context.Context, o options, stdout io.Writer) error {
	var jsonl *os.File
	if o.jsonl != "" {
		f, err := os.OpenFile(o.jsonl, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644) //nolint:gosec // the operator names the file
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		jsonl = f
	}
	var lines []string
	steps, err := sweep(ctx, o, stdout, func(r stepResult) error {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
		if jsonl != nil {
			if _, err := jsonl.Write(append(b, '\n')); err != nil {
				return fmt.Errorf("--jsonl: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, describeSweep(steps))
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

// describeSweep says in a line what the sweep reached.
func describeSweep(steps []stepResult) string {
	s := summarize(steps)
	var b strings.Builder
	if s.Best != nil {
		fmt.Fprintf(&b, "highest sustained: %.0f deliveries/s (target %.0f, p99 %.1f ms)", s.Best.DeliveriesSec, s.Best.TargetSec, s.Best.P99ms)
	} else {
		b.WriteString("no step sustained")
	}
	if s.Failed != nil {
		fmt.Fprintf(&b, "; first failing: target %.0f (%.0f deliveries/s): %s", s.Failed.TargetSec, s.Failed.DeliveriesSec, s.Failed.Reason)
	} else {
		b.WriteString("; every step sustained")
	}
	return b.String()
}
