package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPeersTableMediansAndRatios(t *testing.T) {
	var runs []peerRun
	for i, v := range []float64{30, 10, 20} {
		runs = append(runs,
			peerRun{System: "Centrifugo", Scenario: "publish", Round: i + 1, Result: Result{PublishesSec: 2 * v * 1000}},
			peerRun{System: "ChatScalable", Scenario: "publish", Round: i + 1, Result: Result{PublishesSec: v * 1000}},
			peerRun{System: "ChatScalable", Scenario: "idle", Round: i + 1, Result: Result{KBPerConn: v / 10}},
			peerRun{System: "Centrifugo", Scenario: "idle", Round: i + 1, Result: Result{KBPerConn: v}},
		)
	}
	table := peersTable(runs, "ChatScalable")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.HasPrefix(lines[0], "| figure | ChatScalable: median (runs) | Centrifugo: median (runs) | ChatScalable / Centrifugo |") {
		t.Errorf("header, ours first: %s", lines[0])
	}
	want := map[string][]string{
		"publish ingest": {"**20.0 k** (30.0 k, 10.0 k, 20.0 k)", "**40.0 k**", "0.50 (Centrifugo better)"},
		"idle memory":    {"**2.00** (3.00, 1.00, 2.00)", "**20.0**", "0.10 (ChatScalable better)"},
	}
	for prefix, cells := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+prefix) {
				found = true
				for _, c := range cells {
					if !strings.Contains(l, c) {
						t.Errorf("row %q lacks %q", l, c)
					}
				}
			}
		}
		if !found {
			t.Errorf("no row %q in\n%s", prefix, table)
		}
	}
	if strings.Contains(table, "fan-out") || strings.Contains(table, "p99") {
		t.Errorf("rows for scenarios not measured:\n%s", table)
	}
}

func TestReplaceSectionKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(path, []byte("# B\n\nbefore\n<!-- peers: begin -->\nold\n<!-- peers: end -->\nafter\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := replaceSection(path, "<!-- peers: begin -->", "<!-- peers: end -->", "new\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "# B\n\nbefore\n<!-- peers: begin -->\nnew\n<!-- peers: end -->\nafter\n" {
		t.Errorf("got %q", b)
	}
	// Without the markers the section is appended.
	if err := os.WriteFile(path, []byte("# B\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := replaceSection(path, "<!-- peers: begin -->", "<!-- peers: end -->", "new\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != "# B\n\n<!-- peers: begin -->\nnew\n<!-- peers: end -->\n" {
		t.Errorf("got %q", b)
	}
}

func TestUnknownModeFailsBeforeParsing(t *testing.T) {
	if code := run([]string{"no-such-mode", "--help"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("chat-bench no-such-mode --help exited %d, want 2 (a mode this build lacks)", code)
	}
	if code := run([]string{"sweep", "--help"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("chat-bench sweep --help exited %d, want 0", code)
	}
}
