package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

// peerRun is one line of the file `make bench-peers` writes: one
// chat-bench run of a scenario against a system.
type peerRun struct {
	System   string `json:"system"`
	Scenario string `json:"scenario"`
	Round    int    `json:"round"`
	Result   Result `json:"result"`
}

// peerFigure is one figure of the side-by-side table.
type peerFigure struct {
	scenario, name, unit string
	higherBetter         bool
	value                func(Result) float64
}

// peerFigures are the figures bench-peers.sh measures, by scenario name.
var peerFigures = []peerFigure{
	{"fanout-100k", "p50 at 100,000 deliveries/s (1,000 subscribers, 100 msg/s)", "ms", false, func(r Result) float64 { return r.P50ms }},
	{"fanout-100k", "p99 at 100,000 deliveries/s (1,000 subscribers, 100 msg/s)", "ms", false, func(r Result) float64 { return r.P99ms }},
	{"fanout-1m", "deliveries/s offered 1,000,000/s (1,000 subscribers, 1,000 msg/s)", "/s", true, func(r Result) float64 { return r.DeliveriesSec }},
	{"fanout-1m", "messages published, per cent of those offered (rate × duration; the publisher gives up at twice the duration)", "%", true, publishedPercent},
	{"fanout-1m", "lost of those, per cent", "%", false, lostPercent},
	{"fanout-1m", "p99 at 1,000,000 deliveries/s offered", "ms", false, func(r Result) float64 { return r.P99ms }},
	{"fanout-1m", "server CPU per message (to 1,000 subscribers)", "µs", false, func(r Result) float64 { return r.CPUPerOpUS }},
	{"latency", "p50, 1 listener, 200 msg/s", "ms", false, func(r Result) float64 { return r.P50ms }},
	{"latency", "p99, 1 listener, 200 msg/s", "ms", false, func(r Result) float64 { return r.P99ms }},
	{"publish", "publish ingest, 50 concurrent publishers", "/s", true, func(r Result) float64 { return r.PublishesSec }},
	{"publish", "server CPU per publish", "µs", false, func(r Result) float64 { return r.CPUPerOpUS }},
	{"idle", "idle memory per SSE connection (10,000)", "KB", false, func(r Result) float64 { return r.KBPerConn }},
	{"room-10k", "deliveries/s, 10,000 listeners in one room, 10 msg/s", "/s", true, func(r Result) float64 { return r.DeliveriesSec }},
	{"room-10k", "p99, 10,000 listeners in one room, 10 msg/s", "ms", false, func(r Result) float64 { return r.P99ms }},
	{"room-10k", "lost, 10,000 listeners, per cent", "%", false, lostPercent},
	{"room-10k", "server memory (peak RSS), 10,000 listeners in one room", "MB", false, peakRSSMB},
	{"rooms-5k", "p50, 5,000 rooms × 2 listeners, 1,000 msg/s", "ms", false, func(r Result) float64 { return r.P50ms }},
	{"rooms-5k", "p99, 5,000 rooms × 2 listeners, 1,000 msg/s", "ms", false, func(r Result) float64 { return r.P99ms }},
	{"rooms-5k", "messages published, per cent of those offered, 5,000 rooms", "%", true, publishedPercent},
	{"rooms-5k", "lost, 5,000 rooms, per cent", "%", false, lostPercent},
	{"rooms-5k", "server CPU per message, 5,000 rooms", "µs", false, func(r Result) float64 { return r.CPUPerOpUS }},
	{"rooms-5k", "server memory (peak RSS), 5,000 rooms × 2 listeners", "MB", false, peakRSSMB},
}

func publishedPercent(r Result) float64 {
	if r.Offered == 0 {
		return 0
	}
	return 100 * float64(r.Published) / float64(r.Offered)
}

func peakRSSMB(r Result) float64 { return float64(r.PeakRSSKB) / 1024 }

func lostPercent(r Result) float64 {
	if r.Expected == 0 {
		return 0
	}
	return 100 * float64(r.Lost) / float64(r.Expected)
}

// peersReport reads the runs of `make bench-peers` and writes the side by
// side table (medians, every run, ratios ours/peer) into the report
// between the peers markers.
func peersReport(args []string, stdout, stderr io.Writer) int {
	fs := envflag.NewPrefixed("chat-bench peers-report", "", nil, stdout)
	fs.Intro = "chat-bench peers-report writes the side-by-side table of make bench-peers into a report.\n\nUsage: chat-bench peers-report --in runs.jsonl [--out docs/BENCHMARKS.md]"
	var in, out, ours, note string
	fs.String(&in, "in", "", "JSON lines of {system, scenario, round, result} (deployments/local/bench-peers.sh writes them)")
	fs.String(&out, "out", "docs/BENCHMARKS.md", "Markdown file whose peers section to replace")
	fs.String(&ours, "ours", "ChatScalable", "the system the ratios are of")
	fs.String(&note, "note", "", "conditions of the run, printed under the table")
	if code, ok := parseCommand(fs, args, stderr); !ok {
		return code
	}
	if in == "" {
		fmt.Fprintln(stderr, "chat-bench peers-report: needs --in")
		return 2
	}
	runs, err := readPeerRuns(in)
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench peers-report: %v\n", err)
		return 1
	}
	table := peersTable(runs, ours)
	section := fmt.Sprintf("Measured %s with `make bench-peers`: %s. %s\n\n%s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), note, table)
	if err := replaceSection(out, "<!-- peers: begin -->", "<!-- peers: end -->", section); err != nil {
		fmt.Fprintf(stderr, "chat-bench peers-report: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, table)
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return 0
}

func readPeerRuns(path string) ([]peerRun, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var runs []peerRun
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r peerRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if r.System == "" || r.Scenario == "" {
			return nil, fmt.Errorf("%s line %d: no system or scenario", path, n)
		}
		runs = append(runs, r)
	}
	return runs, sc.Err()
}

// peersTable is the Markdown table: a row per figure measured, a column
// per system with its median and every run, and the ratio ours/peer for
// each peer ("better" says whose figure is the better one).
func peersTable(runs []peerRun, ours string) string {
	var systems []string
	seen := map[string]bool{}
	for _, r := range runs {
		if !seen[r.System] {
			seen[r.System] = true
			systems = append(systems, r.System)
		}
	}
	// Ours first, the peers in the order they appear.
	sort.SliceStable(systems, func(i, j int) bool { return systems[i] == ours && systems[j] != ours })
	var b strings.Builder
	b.WriteString("| figure |")
	for _, s := range systems {
		fmt.Fprintf(&b, " %s: median (runs) |", s)
	}
	for _, s := range systems {
		if s != ours {
			fmt.Fprintf(&b, " %s / %s |", ours, s)
		}
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", 2*len(systems)-1))
	b.WriteString("\n")
	for _, f := range peerFigures {
		medians := map[string]float64{}
		cells := map[string]string{}
		for _, s := range systems {
			var vals []float64
			for _, r := range runs {
				if r.System == s && r.Scenario == f.scenario {
					vals = append(vals, f.value(r.Result))
				}
			}
			if len(vals) == 0 {
				continue
			}
			all := make([]string, len(vals))
			for i, v := range vals {
				all[i] = formatFigure(v, f.unit)
			}
			sort.Float64s(vals)
			medians[s] = vals[len(vals)/2]
			cells[s] = fmt.Sprintf("**%s** (%s)", formatFigure(medians[s], f.unit), strings.Join(all, ", "))
		}
		if len(cells) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s (%s) |", f.name, f.unit)
		for _, s := range systems {
			c := cells[s]
			if c == "" {
				c = "–"
			}
			fmt.Fprintf(&b, " %s |", c)
		}
		for _, s := range systems {
			if s != ours {
				fmt.Fprintf(&b, " %s |", ratio(medians, ours, s, f.higherBetter))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ratio is ours/peer with whose figure is better; "–" when either is
// missing or the peer's is zero.
func ratio(medians map[string]float64, ours, peer string, higherBetter bool) string {
	a, okA := medians[ours]
	p, okP := medians[peer]
	switch {
	case !okA || !okP:
		return "–"
	case a == p:
		return "1.00 (equal)"
	case p == 0:
		return "– (" + peer + " 0)"
	}
	better := ours
	if (a > p) != higherBetter {
		better = peer
	}
	if r := a / p; r < 0.01 {
		return fmt.Sprintf("%.4f (%s better)", r, better)
	}
	return fmt.Sprintf("%.2f (%s better)", a/p, better)
}

func formatFigure(v float64, unit string) string {
	switch {
	case unit == "/s" && v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case unit == "/s" && v >= 1e4:
		return fmt.Sprintf("%.1f k", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// machine names the CPU, its cores and the Go that built chat-bench.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s, Go %s", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// replaceSection puts text between the markers begin and end of the file
// at path, appending the markers when the file lacks them.
func replaceSection(path, begin, end, text string) error {
	old, err := os.ReadFile(path) //nolint:gosec // the report file the operator names
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	gen := begin + "\n" + text + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n" + gen + "\n"
	} else {
		s = s[:i] + gen + s[j+len(end):]
	}
	return os.WriteFile(path, []byte(s), 0o644) //nolint:gosec // a document of the repository, readable by all
}
