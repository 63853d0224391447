package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

// scenario is one standard benchmark with its target.
type scenario struct {
	name, target string
	runs         int // 0: the suite's --runs
	run          func(ctx context.Context) (Result, error)
	figure       func(Result) float64
	unit         string
	format       func(Result) string
}

// suite runs the standard scenarios against a local cluster several times
// and writes the medians as Markdown.
func suite(args []string, stdout, stderr io.Writer) int {
	fs := envflag.NewPrefixed("chat-bench suite", "", nil, stdout)
	fs.Intro = "chat-bench suite runs the standard scenarios of make bench several times and writes\ntheir medians as Markdown.\n\nUsage: chat-bench suite --cluster URL,URL,URL --single URL --idle-url URL [flags]"
	var cluster, single, idleURL, pid, out, clusterPids, singlePid, jsonl, svg string
	var runs int
	var short bool
	fs.String(&cluster, "cluster", "", "comma-separated base URLs of the 3 gateway nodes")
	fs.String(&single, "single", "", "base URL of a single-node gateway (publish ingest)")
	fs.String(&idleURL, "idle-url", "", "base URL of a fresh gateway for the idle scenario, measured once: its memory is not returned between runs")
	fs.String(&pid, "idle-pid", "", "pid of that gateway")
	fs.Int(&runs, "runs", 3, "runs of each scenario; the report gives medians")
	fs.String(&out, "out", "docs/BENCHMARKS.md", "Markdown file to write")
	fs.BoolVar(&short, "short", false, "small, quick versions of the scenarios")
	fs.String(&clusterPids, "cluster-pids", "", "comma-separated pids of the cluster's gateways, for the fan-out sweep's server CPU and memory")
	fs.String(&singlePid, "single-pid", "", "pid of the single-node gateway, likewise")
	fs.String(&jsonl, "sweep-jsonl", "docs/bench-fanout.jsonl", "file the fan-out sweeps' steps are written to (emptied first)")
	fs.String(&svg, "plot", "docs/bench-fanout.svg", "picture of the fan-out sweeps drawn from those steps")
	if code, ok := parseCommand(fs, args, stderr); !ok {
		return code
	}
	urls := envflag.SplitList(cluster)
	if len(urls) < 2 || single == "" || idleURL == "" || runs < 1 || runs > 10 {
		fmt.Fprintln(stderr, "chat-bench suite: needs --cluster (2+ URLs), --single, --idle-url, and --runs 1..10")
		return 2
	}
	base := options{urls: urls, rooms: 1, size: 100, duration: 10 * time.Second, drain: 15 * time.Second, concurrency: 50, workers: 2, settle: 3 * time.Second, readers: 1}
	subs, idleConns := 1000, 19000
	if short {
		base.duration, subs, idleConns = 2*time.Second, 100, 500
	}
	fanoutOpts := func(rate int) options {
		o := base
		o.subs, o.rate, o.room = subs, rate, fmt.Sprintf("bench-%d", time.Now().UnixNano())
		return o
	}
	scenarios := []scenario{
		{
			name: "Latency across nodes at 200 msg/s", target: "p50 ≤ 1 ms, p99 ≤ 5 ms",
			run: func(ctx context.Context) (Result, error) {
				o := base
				o.rate, o.publishFirst, o.subs = 200, true, len(urls)-1
				o.room = fmt.Sprintf("bench-%d", time.Now().UnixNano())
				return fanout(ctx, "latency", o)
			},
			figure: func(r Result) float64 { return r.P99ms }, unit: "ms p99",
			format: func(r Result) string {
				return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, lost %d", r.P50ms, r.P99ms, r.P999ms, r.Lost)
			},
		},
		{
			name: fmt.Sprintf("Latency at 100 msg/s to %d subscribers", subs), target: "p99 ≤ 50 ms",
			run:    func(ctx context.Context) (Result, error) { return fanout(ctx, "fanout", fanoutOpts(100)) },
			figure: func(r Result) float64 { return r.P99ms }, unit: "ms p99",
			format: func(r Result) string {
				return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %.0f deliveries/s, lost %d", r.P50ms, r.P99ms, r.DeliveriesSec, r.Lost)
			},
		},
		{
			name: fmt.Sprintf("Idle memory: %d SSE connections on one gateway", idleConns), target: "≤ 12 KB RSS per connection",
			runs: 1,
			run: func(ctx context.Context) (Result, error) {
				o := base
				o.urls, o.conns, o.room = []string{idleURL}, idleConns, fmt.Sprintf("idle-%d", time.Now().UnixNano())
				if pid != "" {
					var p int
					_, _ = fmt.Sscanf(pid, "%d", &p) // no pid: no memory figure
					o.pids = []int{p}
				}
				return idle(ctx, o)
			},
			figure: func(r Result) float64 { return r.KBPerConn }, unit: "KB/connection",
			format: func(r Result) string {
				return fmt.Sprintf("%.1f KB per connection (%d connections, RSS %d → %d KB)", r.KBPerConn, r.Conns, r.RSSBeforeKB, r.RSSAfterKB)
			},
		},
		{
			name: "Publish ingest, single node, concurrency 50", target: "≥ 20,000 persisted messages/s",
			run: func(ctx context.Context) (Result, error) {
				o := base
				o.urls, o.room = []string{single}, fmt.Sprintf("ingest-%d", time.Now().UnixNano())
				return publishOnly(ctx, o)
			},
			figure: func(r Result) float64 { return r.PublishesSec }, unit: "messages/s",
			format: func(r Result) string {
				return fmt.Sprintf("%.0f messages/s (p50 %.1f ms, p99 %.1f ms)", r.PublishesSec, r.P50ms, r.P99ms)
			},
		},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | target | median | all runs |\n|---|---|---|---|\n")
	sweeps := []fanoutSweep{
		{system: fmt.Sprintf("chatscalable, %d-node mesh", len(urls)), urls: urls, pids: clusterPids},
		{system: "chatscalable, single node", urls: []string{single}, pids: singlePid},
	}
	steps, stepDuration := []int{100000, 250000, 500000, 1000000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}, 5*time.Second
	if short {
		steps, stepDuration = []int{10000, 25000, 50000, 100000}, time.Second
	}
	if err := os.WriteFile(jsonl, nil, 0o644); err != nil { //nolint:gosec // a document of the repository, readable by all
		fmt.Fprintf(stderr, "chat-bench suite: %v\n", err)
		return 1
	}
	for _, sw := range sweeps {
		o := fanoutOpts(1)
		o.urls, o.steps, o.stepDuration, o.system, o.jsonl, o.drain = sw.urls, steps, stepDuration, sw.system, jsonl, 10*time.Second
		for _, p := range envflag.SplitList(sw.pids) {
			var n int
			if _, err := fmt.Sscanf(p, "%d", &n); err != nil {
				fmt.Fprintf(stderr, "chat-bench suite: pid %q\n", p)
				return 2
			}
			o.pids = append(o.pids, n)
		}
		fmt.Fprintf(stdout, "Fan-out sweep, %s, %d subscribers:\n", sw.system, o.subs)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err := runSweep(ctx, o, stdout)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "fan-out sweep, %s: %v\n", sw.system, err)
			return 1
		}
		time.Sleep(2 * time.Second) // let the cluster settle
	}
	if err := sweepRows(&b, jsonl, svg, len(steps), stepDuration); err != nil {
		fmt.Fprintf(stderr, "chat-bench suite: %v\n", err)
		return 1
	}
	for _, sc := range scenarios {
		var results []Result
		n := runs
		if sc.runs > 0 {
			n = sc.runs
		}
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			r, err := sc.run(ctx)
			cancel()
			if err != nil {
				fmt.Fprintf(stderr, "%s, run %d: %v\n", sc.name, i+1, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s, run %d: %s\n", sc.name, i+1, sc.format(r))
			results = append(results, r)
			time.Sleep(2 * time.Second) // let the cluster settle between runs
		}
		sort.Slice(results, func(i, j int) bool { return sc.figure(results[i]) < sc.figure(results[j]) })
		var all []string
		for _, r := range results {
			all = append(all, fmt.Sprintf("%.1f", sc.figure(r)))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s |\n", sc.name, sc.target, sc.format(results[len(results)/2]), strings.Join(all, ", "), sc.unit)
	}
	if err := writeReport(out, b.String(), runs, short); err != nil {
		fmt.Fprintf(stderr, "chat-bench suite: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return 0
}

// writeReport replaces the generated table between the markers of the
// report at path, keeping the hand-written analysis around it.
func writeReport(path, table string, runs int, short bool) error {
	const begin, end = "<!-- results: begin -->", "<!-- results: end -->"
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	kind := "the standard scenarios"
	if short {
		kind = "the SHORT scenarios (not comparable with the targets)"
	}
	gen := fmt.Sprintf("%s\nMeasured %s with `make bench` (%s, %d runs each): %d cores (%s), %s, Go %s.\n\n%s%s",
		begin, time.Now().UTC().Format("2006-01-02 15:04 UTC"), kind, runs, runtime.NumCPU(), cpu, runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), table, end)
	old, err := os.ReadFile(path) //nolint:gosec // the report file the operator names
	if err != nil || !strings.Contains(string(old), begin) || !strings.Contains(string(old), end) {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+gen+"\n"), 0o644) //nolint:gosec // a document of the repository, readable by all
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)+len(end)
	return os.WriteFile(path, []byte(s[:i]+gen+s[j:]), 0o644) //nolint:gosec // a document of the repository, readable by all
}

// fanoutSweep is one topology the suite sweeps.
type fanoutSweep struct {
	system string
	urls   []string
	pids   string
}

// sweepRows adds a row per swept system, read back from the JSON lines,
// and draws them to svg.
func sweepRows(b *strings.Builder, jsonl, svg string, steps int, stepDuration time.Duration) error {
	series, err := readSweeps([]string{jsonl})
	if err != nil {
		return err
	}
	for _, s := range series {
		sum := summarize(s.steps)
		best, failed := "no step sustained", "every step sustained"
		if sum.Best != nil {
			best = fmt.Sprintf("%.0f deliveries/s sustained (p99 %.1f ms, server CPU %.0f %%, RSS %.0f MB)",
				sum.Best.DeliveriesSec, sum.Best.P99ms, sum.Best.ServerCPUPct, float64(sum.Best.ServerRSSKB)/1024)
		}
		if sum.Failed != nil {
			failed = fmt.Sprintf("first failing step: %.0f target, %.0f delivered: %s", sum.Failed.TargetSec, sum.Failed.DeliveriesSec, sum.Failed.Reason)
		}
		var all []string
		for _, st := range s.steps {
			all = append(all, fmt.Sprintf("%.0f", st.DeliveriesSec))
		}
		fmt.Fprintf(b, "| Fan-out sweep, %s: %d subscribers, 100-byte texts, up to %d steps of %s | ≥ 1,000,000 deliveries/s sustained (no loss, p99 ≤ 250 ms) | %s; %s | %s deliveries/s |\n",
			s.system, s.steps[0].Subscribers, steps, stepDuration, best, failed, strings.Join(all, ", "))
	}
	return drawSweeps(series, "Fan-out sweep: p99 latency against deliveries/s", svg)
}
