package hoststest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/ssetest"
)

// Report is what a Checker found.
type Report struct {
	Scenario string
	// Acked publishes got 201 and a position; Refused got another
	// status (503 during a partition); Failed got no answer in time.
	Acked, Refused, Failed int
	// Lost counts acknowledged messages missing from history (or stored at
	// another position than acknowledged); Duplicated, texts stored more
	// than once. Both must be 0.
	Lost, Duplicated int
	// Missed counts acknowledged messages a listener never received;
	// Disorder, messages a listener received out of order or twice;
	// Resets, reset events (retention here is far above any test's
	// load, so none is explained). All must be 0.
	Missed, Disorder, Resets int
	// Reconnects counts listeners' reconnections (allowed: they resume).
	Reconnects int
	// Unavailable is the longest span in which no publish on one gateway
	// succeeded, and UnavailableOn that gateway.
	Unavailable   time.Duration
	UnavailableOn string
	// UnavailableBy is the longest such span of each gateway, and
	// UnavailableFrom when it began (since the checker started).
	UnavailableBy, UnavailableFrom map[string]time.Duration
	start                          time.Time
	// SlowestPublish is the longest a publish took to be answered;
	// slowest describes it.
	SlowestPublish time.Duration
	slowest        string
	// P50 and P99 are of publish → delivery, over every acknowledged
	// message and every listener.
	P50, P99 time.Duration
	Duration time.Duration
}

func (r *Report) unavailable(node string, from, to time.Time) {
	gap := to.Sub(from)
	if gap > r.UnavailableBy[node] {
		r.UnavailableBy[node], r.UnavailableFrom[node] = gap, from.Sub(r.start)
	}
	if gap > r.Unavailable {
		r.Unavailable, r.UnavailableOn = gap, node
	}
}

// unavailableBy lists each gateway's longest unavailability, and when
// it began.
func (r Report) unavailableBy(when bool) string {
	by := make([]string, 0, len(r.UnavailableBy))
	for n, d := range r.UnavailableBy {
		s := fmt.Sprintf("%s %s", n, d.Round(100*time.Millisecond))
		if when {
			s += fmt.Sprintf(" from %s", r.UnavailableFrom[n].Round(100*time.Millisecond))
		}
		by = append(by, s)
	}
	slices.Sort(by)
	return strings.Join(by, ", ")
}

// OK reports whether nothing acknowledged was lost, duplicated or missed.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Missed == 0 && r.Disorder == 0 && r.Resets == 0
}

func (r Report) String() string {
	return fmt.Sprintf("acked %d, refused %d, failed %d, lost %d, duplicated %d; listeners missed %d, disorder %d, resets %d, reconnects %d; longest unavailability %s on %s (each gateway: %s); slowest publish %s (%s); publish→delivery p50 %s p99 %s",
		r.Acked, r.Refused, r.Failed, r.Lost, r.Duplicated, r.Missed, r.Disorder, r.Resets, r.Reconnects,
		r.Unavailable.Round(time.Millisecond), r.UnavailableOn, r.unavailableBy(true), r.SlowestPublish.Round(time.Millisecond), r.slowest,
		r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
}

var (
	reportsMu sync.Mutex
	reports   []Report
)

// Verify stops the publishers, then checks through the gateway via (which
// must reach the history stream) that every acknowledged message is in
// the room's history exactly once at its acknowledged position, and that
// every listener received every acknowledged message, in order, once. It
// waits up to settle for history and listeners to catch up, logs the
// report, adds it to the summary, and fails the test on any loss.
func (c *Checker) Verify(t testing.TB, scenario string, via *Node, settle time.Duration) Report {
	t.Helper()
	c.Stop()
	end := time.Now()
	r := Report{Scenario: scenario, Duration: end.Sub(c.start), UnavailableBy: map[string]time.Duration{}, UnavailableFrom: map[string]time.Duration{}, start: c.start}
	acked := map[string]attempt{}
	for _, p := range c.pubs {
		last := c.start
		for _, a := range p.snapshot() {
			if a.took > r.SlowestPublish {
				r.SlowestPublish = a.took
				r.slowest = fmt.Sprintf("%s, status %d, sent at %s", p.node.Name, a.status, a.sent.Sub(c.start).Round(10*time.Millisecond))
			}
			switch a.status {
			case http.StatusCreated:
				r.Acked++
				acked[a.text] = a
				done := a.sent.Add(a.took)
				r.unavailable(p.node.Name, last, done)
				last = done
			case 0:
				r.Failed++
			case noPosition:
				r.Lost++
				t.Errorf("%s: 201 without the message's position", a.text)
			default:
				r.Refused++
			}
		}
		r.unavailable(p.node.Name, last, end)
	}

	// History holds every acknowledged message, once, where it was acked.
	var stored map[string][]uint64
	deadline := time.Now().Add(settle)
	for {
		var err error
		stored, err = history(via.URL, c.room)
		missing := 0
		for text := range acked {
			if len(stored[text]) == 0 {
				missing++
			}
		}
		if err == nil && missing == 0 || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("history through %s: %v", via.Name, err)
			}
			break
		}
		time.Sleep(200 * time.Millisecond) // the poll interval of a wait with a deadline
	}
	for text, seqs := range stored {
		if len(seqs) > 1 {
			r.Duplicated++
			t.Errorf("%s is stored %d times, at %v", text, len(seqs), seqs)
		}
	}
	for text, a := range acked {
		if seqs := stored[text]; len(seqs) == 0 || seqs[0] != a.seq {
			r.Lost++
			t.Errorf("acknowledged %s (seq %d, on %s after %s) is not in history at its position: %v",
				text, a.seq, a.sent.Format("15:04:05.000"), a.took, seqs)
		}
	}

	// Every listener received every acknowledged message, once, in order.
	var lat []time.Duration
	for _, l := range c.lis {
		var got []received
		for {
			got = l.messages()
			if !missingAny(got, acked) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // the poll interval of a wait with a deadline
		}
		seen := map[string]bool{}
		var prev uint64
		for _, g := range got {
			if g.msg.Seq <= prev || seen[g.msg.Text] {
				r.Disorder++
				t.Errorf("listener on %s got %s (seq %d) after seq %d", l.node.Name, g.msg.Text, g.msg.Seq, prev)
			}
			prev = max(prev, g.msg.Seq)
			seen[g.msg.Text] = true
			if a, ok := acked[g.msg.Text]; ok {
				lat = append(lat, g.at.Sub(a.sent))
			}
		}
		missed := 0
		for text := range acked {
			if !seen[text] {
				missed++
			}
		}
		r.Missed += missed
		if n := missed; n > 0 {
			t.Errorf("listener on %s missed %d acknowledged messages (has %d)", l.node.Name, n, len(got))
		}
		for _, reset := range l.resetEvents() {
			r.Resets++
			t.Errorf("listener on %s got a reset no retention explains: %s", l.node.Name, reset)
		}
		r.Reconnects += l.reconnectCount()
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50, r.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	t.Logf("%s: %s", scenario, r)
	reportsMu.Lock()
	reports = append(reports, r)
	reportsMu.Unlock()
	return r
}

func missingAny(got []received, acked map[string]attempt) bool {
	seen := make(map[string]bool, len(got))
	for _, g := range got {
		seen[g.msg.Text] = true
	}
	for text := range acked {
		if !seen[text] {
			return true
		}
	}
	return false
}

// history returns the positions of every text in a room's history,
// reading it page by page from the newest back.
func history(base, room string) (map[string][]uint64, error) {
	client := http.Client{Timeout: 10 * time.Second}
	out := map[string][]uint64{}
	before := ""
	for {
		u := base + "/rooms/" + room + "/messages?limit=500"
		if before != "" {
			u += "&before=" + url.QueryEscape(before)
		}
		resp, err := client.Get(u)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("history of %s: %d %s", room, resp.StatusCode, body)
		}
		var page struct{ Messages []ssetest.Message }
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			out[m.Text] = append(out[m.Text], m.Seq)
		}
		if len(page.Messages) < 500 {
			return out, nil
		}
		before = page.Messages[0].Cursor // pages run oldest to newest
	}
}

// Summary is the table of every report of this run, for the soak's output.
func Summary() string {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if len(reports) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| scenario | acked | refused | failed | lost | duplicated | listeners missed/disorder/resets | longest unavailability, each gateway | slowest publish | p50 / p99 publish→delivery | run |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reports {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d/%d/%d | %s | %s | %s / %s | %s |\n",
			r.Scenario, r.Acked, r.Refused, r.Failed, r.Lost, r.Duplicated, r.Missed, r.Disorder, r.Resets,
			r.unavailableBy(false), r.SlowestPublish.Round(time.Millisecond),
			r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Duration.Round(time.Second))
	}
	return b.String()
}
