// Command chat-bench measures a ChatScalable deployment by URL:
//
//	chat-bench fanout  --urls URL[,URL…] --subs 1000 --rate 1000 --duration 10s
//	chat-bench fanout  --mercure --mercure-secret-file F --urls URL[,URL…] --subs 1000 --rate 1000
//	chat-bench latency --urls URL[,URL…] --rate 200 --duration 10s
//	chat-bench idle    --urls URL --conns 19000 --pid <gateway pid> [--workers 2]
//	chat-bench publish --urls URL --concurrency 50 --duration 10s
//	chat-bench sweep   --urls URL[,URL…] --subs 1000 --steps 100000,250000,… --step-duration 5s --pid PID --system NAME [--jsonl FILE]
//	chat-bench plot    --in FILE.jsonl[,FILE…] --out FILE.svg [--title T]
//	chat-bench suite   --cluster URL,URL,URL --single URL --idle-pid PID --runs 3
//	chat-bench fanout  --centrifugo --centrifugo-config config.json --urls URL --subs 1000 --rate 100
//	chat-bench peers-report --in runs.jsonl --out docs/BENCHMARKS.md
//
// fanout opens SSE subscribers in one room, spread over the URLs, publishes
// at a fixed rate and reports deliveries per second, loss, and latency from
// each message's envelope timestamp (measured on one subscriber per URL).
// latency is fanout with one subscriber per URL. idle holds connections
// open and reads the gateway's memory from /proc/<pid>/status. publish
// counts stored messages per second. sweep raises fanout's rate step by
// step until a step is not sustained (loss, a p99 over 250 ms, or a
// publisher short of the rate), and plot draws sweeps' p99 against their
// deliveries per second. The subscribers that only count are read by a
// few epoll readers on Linux (--readers), so they are not what limits a
// run. Every run is bounded in time and count. It prints a table and then
// one JSON line (sweep: one per step). With --workers it
// spreads its connections over child processes, so it can hold more than
// one process's file limit. With --mercure, fanout, latency, idle and
// publish go through the gateway's Mercure hub (/.well-known/mercure) in
// place of a room: subscribers of one topic, updates published by form
// POST, latency from the publisher's timestamp in the update's data.
// With --centrifugo they go through a Centrifugo v6 as a peer to compare
// with: its uni_sse endpoint and its HTTP API (centrifugo.go).
// peers-report writes the side-by-side table of `make bench-peers`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

// Limits that keep every run bounded.
const (
	maxDuration = 10 * time.Minute
	maxConns    = 200000
	maxRate     = 1000000
)

// Result is what a run reports, printed as the JSON line.
type Result struct {
	Mode        string `json:"mode"`
	URLs        int    `json:"urls"`
	Mercure     bool   `json:"mercure,omitempty"`
	Centrifugo  bool   `json:"centrifugo,omitempty"`
	Subscribers int    `json:"subscribers,omitempty"`
	Rooms       int    `json:"rooms,omitempty"`
	Published   int64  `json:"published,omitempty"`
	// Offered is what fanout and latency meant to publish (rate ×
	// duration); they give up at twice the duration.
	Offered       int64   `json:"offered,omitempty"`
	Delivered     int64   `json:"delivered,omitempty"`
	Expected      int64   `json:"expected,omitempty"`
	Lost          int64   `json:"lost"`
	Seconds       float64 `json:"seconds"`
	DeliveriesSec float64 `json:"deliveries_per_sec,omitempty"`
	PublishesSec  float64 `json:"publishes_per_sec,omitempty"`
	P50ms         float64 `json:"p50_ms,omitempty"`
	P99ms         float64 `json:"p99_ms,omitempty"`
	P999ms        float64 `json:"p999_ms,omitempty"`
	Maxms         float64 `json:"max_ms,omitempty"`
	Conns         int     `json:"conns,omitempty"`
	RSSBeforeKB   int64   `json:"rss_before_kb,omitempty"`
	RSSAfterKB    int64   `json:"rss_after_kb,omitempty"`
	KBPerConn     float64 `json:"kb_per_conn,omitempty"`
	// CPUPerOpUS is the CPU time the processes of --pid spent per publish
	// (publish), per message published and delivered to every subscriber
	// (fanout, latency) or per connection opened (idle), in microseconds:
	// the cost of one operation, which a shared machine's noise moves far
	// less than a rate.
	CPUPerOpUS float64 `json:"cpu_us_per_op,omitempty"`
	// PeakRSSKB is the most resident memory of the --pid processes
	// together, sampled every 100 ms while a fanout or latency run lasts.
	PeakRSSKB int64 `json:"peak_rss_kb,omitempty"`
	Errors    int64 `json:"errors"`
}

type options struct {
	urls        []string
	room        string
	rooms       int
	subs        int
	rate        int
	duration    time.Duration
	size        int
	concurrency int
	conns       int
	pids        []int
	workers     int
	// readers is how many epoll readers read the counting subscribers
	// (0: a goroutine each).
	readers   int
	settle    time.Duration
	drain     time.Duration
	tokenFile string
	// bearer is the Authorization header of every request, from
	// --token-file, or with --mercure from --mercure-token-file or
	// --mercure-secret-file ("" sends none).
	bearer string
	// mercure goes through the Mercure hub: subscribers of selector,
	// updates published to topic.
	mercure                         bool
	clientTS                        bool
	topic, selector                 string
	mercureTokenFile, mercureSecret string
	// centrifugo goes through a Centrifugo: subscribers of channel on its
	// uni_sse endpoint with centrifugoToken, publishes through its HTTP
	// API with the key.
	centrifugo                         bool
	channel                            string
	centrifugoConfig                   string
	centrifugoSecret, centrifugoAPIKey string
	centrifugoKeys                     centrifugoKeys
	centrifugoToken                    string
	// A sweep's steps (targets in deliveries/s), how long each publishes,
	// the name its JSON lines carry and the file they are appended to.
	steps        []int
	stepDuration time.Duration
	system       string
	jsonl        string
	// publishFirst publishes on the first URL only and listens on the
	// others, so latency crosses nodes.
	publishFirst bool
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usage is what `chat-bench --help` prints.
const usage = `chat-bench measures a ChatScalable deployment by URL.

Usage:
  chat-bench fanout|latency|idle|publish|sweep [flags]  a measurement (chat-bench MODE --help)
  chat-bench suite [flags]         the standard scenarios of make bench
  chat-bench plot [flags]          draw sweeps' p99 latency against deliveries/s
  chat-bench peers-report [flags]  the side-by-side table of make bench-peers
  chat-bench --version             print the version

Flags only, no environment variables; CHAT_BENCH_CPUPROFILE=FILE writes a
CPU profile of chat-bench itself.`

// modeIntro says what each measurement does, above its flags in --help.
var modeIntro = map[string]string{
	"fanout":  "chat-bench fanout opens --subs SSE subscribers spread over --urls, publishes at --rate\nfor --duration, and reports deliveries/s, loss and latency.",
	"latency": "chat-bench latency is fanout with one listener per URL after the first, which takes\nthe publishes, at 200 messages/s unless --rate is given: latency across nodes.",
	"idle":    "chat-bench idle holds --conns idle SSE connections and reads the memory and CPU time\nof the gateways of --pid per connection.",
	"publish": "chat-bench publish counts the messages --concurrency publishers store per second.",
	"sweep":   "chat-bench sweep raises fanout's rate step by step (--steps) to the first step that\nis not sustained (loss, a p99 over 250 ms, or a publisher short of its rate).",
	"worker":  "chat-bench worker is a child process of --workers: it holds --conns connections.",
}

func main() {
	version = envflag.BuildVersion(version)
	// CHAT_BENCH_CPUPROFILE=file profiles the load generator itself, to
	// see what the machine spends on generating load rather than serving it.
	if path := os.Getenv("CHAT_BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil { //nolint:gosec // the operator names the profile file
			if pprof.StartCPUProfile(f) == nil {
				code := run(os.Args[1:], os.Stdout, os.Stderr)
				pprof.StopCPUProfile()
				_ = f.Close()
				os.Exit(code)
			}
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	mode := args[0]
	switch mode {
	case "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	case "-version", "--version":
		fmt.Fprintln(stdout, envflag.VersionLine("chat-bench", version))
		return 0
	case "worker": // a child process of --workers
		return worker(args[1:], stdout, stderr)
	case "suite":
		return suite(args[1:], stdout, stderr)
	case "peers-report":
		return peersReport(args[1:], stdout, stderr)
	case "plot":
		return plotMain(args[1:], stdout, stderr)
	case "fanout", "latency", "idle", "publish", "sweep":
	default:
		// Before parsing, so that `chat-bench MODE --help` fails for a
		// mode this build lacks (bench-peers.sh asks it of sweep).
		fmt.Fprintf(stderr, "chat-bench: unknown mode %q (chat-bench --help lists the modes)\n", mode)
		return 2
	}
	o, err := parse(mode, args[1:], stdout)
	if envflag.Answered(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench: %v\n", err)
		return 2
	}
	bound := o.duration + o.settle + o.drain
	if mode == "sweep" {
		bound = time.Duration(len(o.steps)) * (o.stepDuration + o.drain + 2*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound+2*time.Minute)
	defer cancel()
	var res Result
	switch mode {
	case "fanout", "latency":
		res, err = fanout(ctx, mode, o)
	case "idle":
		res, err = idle(ctx, o)
	case "publish":
		res, err = publishOnly(ctx, o)
	case "sweep":
		if err := runSweep(ctx, o, stdout); err != nil {
			fmt.Fprintf(stderr, "chat-bench sweep: %v\n", err)
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench %s: %v\n", mode, err)
		return 1
	}
	printTable(stdout, res)
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return 0
}

// parseCommand parses the flags of a command that is not a measurement
// (suite, plot, peers-report); ok false means stop with code: 0 after
// --help, 2 after a bad flag, which it reports on stderr.
func parseCommand(fs *envflag.Set, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if envflag.Answered(err) {
			return 0, false
		}
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return 2, false
	}
	return 0, true
}

// parse reads a measurement's flags; --help prints its usage on out.
func parse(mode string, args []string, out io.Writer) (options, error) {
	var o options
	fs := envflag.NewPrefixed("chat-bench "+mode, "", nil, out)
	fs.Intro = modeIntro[mode] + "\n\nUsage: chat-bench " + mode + " [flags]\n\nEvery measurement takes the same flags; each says which modes use it."
	var urls, pids, steps string
	fs.String(&urls, "urls", "http://127.0.0.1:8080", "comma-separated gateway base URLs")
	fs.String(&o.room, "room", "", "room to use (default: a new one per run)")
	fs.Int(&o.subs, "subs", 1000, "fanout: SSE subscribers, spread over the URLs")
	fs.Int(&o.rooms, "rooms", 1, "fanout, publish, idle: spread the subscribers evenly over this many rooms (ROOM-1 … ROOM-N; Mercure topics and Centrifugo channels likewise), the publisher taking them in turn")
	fs.Int(&o.rate, "rate", 1000, "fanout/latency: messages published per second")
	fs.Duration(&o.duration, "duration", 10*time.Second, "how long to publish (at most 10m)")
	fs.Int(&o.size, "size", 100, "bytes of text per message")
	fs.Int(&o.concurrency, "concurrency", 50, "publish: concurrent publishers")
	fs.Int(&o.conns, "conns", 1000, "idle: connections to hold")
	fs.String(&pids, "pid", "", "idle, publish and fanout: comma-separated gateway pids whose RSS and CPU time to read")
	fs.Int(&o.readers, "readers", 1, "fanout/latency/sweep: epoll readers that read the counting subscribers on Linux (0: a goroutine per subscriber, as the probes always have)")
	fs.Int(&o.workers, "workers", 1, "child processes to spread the connections over")
	fs.Duration(&o.settle, "settle", 3*time.Second, "idle: wait after connecting before reading memory")
	fs.Duration(&o.drain, "drain", 10*time.Second, "fanout: longest wait for the last deliveries")
	fs.String(&o.tokenFile, "token-file", "", "file holding a token sent with every request, for a gateway with --auth jwt (its sub must be bench: the publisher posts as bench)")
	fs.Bool(&o.mercure, "mercure", false, "go through the gateway's Mercure hub (/.well-known/mercure, chat-gateway --mercure) instead of a room")
	fs.Bool(&o.clientTS, "client-ts", false, "fanout/latency: measure latency from the publisher's clock before it sends, put at the start of each message's text, not from the gateway's timestamp (a Mercure update always carries the publisher's)")
	fs.String(&o.topic, "mercure-topic", "", "with --mercure: the topic updates are published to (default: https://chatscalable.example/bench/<room>)")
	fs.String(&o.selector, "mercure-selector", "", "with --mercure: the topic selector subscribers ask for (default: the topic)")
	fs.String(&o.mercureTokenFile, "mercure-token-file", "", "with --mercure: file holding the token sent with every request (its mercure.publish claim must cover the topic)")
	fs.String(&o.mercureSecret, "mercure-secret-file", "", "with --mercure: file holding the hub's HS256 secret (chat-gateway --mercure-jwt-secret-file), to sign a token that may publish and receive every topic")
	fs.Bool(&o.centrifugo, "centrifugo", false, "go through a Centrifugo v6 instead of a room: subscribers on its uni_sse endpoint, publishes through its HTTP API (POST /api/publish)")
	fs.String(&o.channel, "centrifugo-channel", "", "with --centrifugo: the channel (default: the room's name)")
	fs.String(&o.centrifugoConfig, "centrifugo-config", "", "with --centrifugo: the server's JSON config file, to read client.token.hmac_secret_key and http_api.key from")
	fs.String(&o.centrifugoSecret, "centrifugo-secret-file", "", "with --centrifugo: file holding the HMAC secret of connection tokens (client.token.hmac_secret_key)")
	fs.String(&o.centrifugoAPIKey, "centrifugo-api-key-file", "", "with --centrifugo: file holding the HTTP API key (http_api.key)")
	fs.String(&steps, "steps", "100000,250000,500000,1000000,1500000,2000000,2500000,3000000,3500000,4000000", "sweep: target deliveries/s of each step (the publish rate is the target over --subs)")
	fs.Duration(&o.stepDuration, "step-duration", 5*time.Second, "sweep: how long each step publishes")
	fs.String(&o.system, "system", "chatscalable", "sweep: the name of the system measured, in each JSON line (the plot's legend)")
	fs.String(&o.jsonl, "jsonl", "", "sweep: file each step's JSON line is appended to")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.urls = envflag.SplitList(urls)
	for _, s := range envflag.SplitList(steps) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("--steps: %q is not a positive number of deliveries/s", s)
		}
		o.steps = append(o.steps, n)
	}
	if err := o.readToken(); err != nil {
		return o, err
	}
	for _, p := range envflag.SplitList(pids) {
		var pid int
		if _, err := fmt.Sscanf(p, "%d", &pid); err != nil {
			return o, fmt.Errorf("--pid %q", p)
		}
		o.pids = append(o.pids, pid)
	}
	switch {
	case len(o.urls) == 0:
		return o, errors.New("--urls is empty")
	case o.duration <= 0 || o.duration > maxDuration:
		return o, fmt.Errorf("--duration must be in (0, %s]", maxDuration)
	case o.subs < 0 || o.subs > maxConns || o.conns < 0 || o.conns > maxConns:
		return o, fmt.Errorf("--subs and --conns must be at most %d", maxConns)
	case o.rate <= 0 || o.rate > maxRate:
		return o, fmt.Errorf("--rate must be in (0, %d]", maxRate)
	case o.size < 1 || o.size > 4096:
		return o, errors.New("--size must be from 1 to 4096")
	case o.concurrency < 1 || o.concurrency > 1000:
		return o, errors.New("--concurrency must be from 1 to 1000")
	case o.readers < 0 || o.readers > 64:
		return o, errors.New("--readers must be from 0 to 64")
	case o.workers < 1 || o.workers > 64:
		return o, errors.New("--workers must be from 1 to 64")
	case o.rooms < 1 || o.rooms > maxRooms:
		return o, fmt.Errorf("--rooms must be from 1 to %d", maxRooms)
	case mode == "fanout" && o.subs%o.rooms != 0:
		return o, fmt.Errorf("--subs %d is not a multiple of --rooms %d", o.subs, o.rooms)
	case mode == "latency" && o.rooms != 1:
		return o, errors.New("latency has one listener: --rooms must be 1")
	case mode == "sweep" && (len(o.steps) == 0 || len(o.steps) > 50):
		return o, errors.New("--steps must list 1 to 50 targets")
	case mode == "sweep" && (o.stepDuration <= 0 || o.stepDuration > time.Minute):
		return o, errors.New("--step-duration must be in (0, 1m]")
	case mode == "sweep" && (o.subs < 1 || o.system == ""):
		return o, errors.New("sweep needs --subs of 1 or more and a --system name")
	}
	if mode == "sweep" {
		for _, t := range o.steps {
			if (t+o.subs/2)/o.subs > maxRate {
				return o, fmt.Errorf("--steps: %d deliveries/s to %d subscribers is over %d msg/s", t, o.subs, maxRate)
			}
		}
	}
	if mode == "latency" {
		o.publishFirst = true
		o.subs = max(1, len(o.urls)-1)
		rateSet := false
		fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate" })
		if !rateSet {
			o.rate = 200
		}
	}
	if o.room == "" {
		o.room = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	}
	if o.topic == "" {
		o.topic = "https://chatscalable.example/bench/" + o.room
	}
	if o.selector == "" {
		o.selector = o.topic
	}
	if o.centrifugo {
		if err := o.centrifugoSetup(); err != nil {
			return o, err
		}
	}
	return o, nil
}

// readToken sets o.bearer from the token file of the run's endpoint, or
// from a Mercure token it signs with --mercure-secret-file.
func (o *options) readToken() error {
	file, name := o.tokenFile, "--token-file"
	if o.mercure {
		file, name = o.mercureTokenFile, "--mercure-token-file"
		if o.mercureTokenFile != "" && o.mercureSecret != "" {
			return errors.New("--mercure-token-file and --mercure-secret-file exclude each other")
		}
		if o.mercureSecret != "" {
			t, err := mintMercureToken(o.mercureSecret, maxDuration+time.Hour)
			if err != nil {
				return fmt.Errorf("--mercure-secret-file: %w", err)
			}
			o.bearer = "Bearer " + t
			return nil
		}
	}
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file) //nolint:gosec // the operator names the token file
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	o.bearer = "Bearer " + strings.TrimSpace(string(b))
	return nil
}

func printTable(w io.Writer, r Result) {
	fmt.Fprintf(w, "%-22s %s\n", "mode", r.Mode)
	row := func(name string, v any) { fmt.Fprintf(w, "%-22s %v\n", name, v) }
	if r.Mercure {
		row("through", "the Mercure hub")
	}
	if r.Centrifugo {
		row("through", "Centrifugo (uni_sse, HTTP API)")
	}
	switch r.Mode {
	case "fanout", "latency":
		row("subscribers", r.Subscribers)
		if r.Rooms > 1 {
			row("rooms", fmt.Sprintf("%d (%d subscribers each)", r.Rooms, r.Subscribers/r.Rooms))
		}
		row("published", fmt.Sprintf("%d of %d offered", r.Published, r.Offered))
		row("delivered", fmt.Sprintf("%d of %d (lost %d)", r.Delivered, r.Expected, r.Lost))
		row("deliveries/s", fmt.Sprintf("%.0f", r.DeliveriesSec))
		row("latency p50/p99/p999", fmt.Sprintf("%.2f / %.2f / %.2f ms (max %.2f)", r.P50ms, r.P99ms, r.P999ms, r.Maxms))
		if r.CPUPerOpUS > 0 {
			row("gateway CPU/message", fmt.Sprintf("%.1f µs", r.CPUPerOpUS))
		}
		if r.PeakRSSKB > 0 {
			row("gateway RSS, peak", fmt.Sprintf("%d KB", r.PeakRSSKB))
		}
	case "idle":
		row("connections", r.Conns)
		row("gateway RSS", fmt.Sprintf("%d KB -> %d KB", r.RSSBeforeKB, r.RSSAfterKB))
		row("per connection", fmt.Sprintf("%.1f KB", r.KBPerConn))
		row("gateway CPU/connect", fmt.Sprintf("%.1f µs", r.CPUPerOpUS))
	case "publish":
		row("stored", r.Published)
		row("publishes/s", fmt.Sprintf("%.0f", r.PublishesSec))
		row("p50/p99", fmt.Sprintf("%.2f / %.2f ms", r.P50ms, r.P99ms))
		row("gateway CPU/publish", fmt.Sprintf("%.1f µs", r.CPUPerOpUS))
	}
	row("errors", r.Errors)
	row("seconds", fmt.Sprintf("%.1f", r.Seconds))
}
