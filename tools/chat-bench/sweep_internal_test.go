package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJudge checks a step is sustained only without loss, with the p99
// within 250 ms and the publisher at 95 % of the rate, and that a failing
// step gives every reason.
func TestJudge(t *testing.T) {
	ok := stepResult{Rate: 1000, PublishesSec: 999, P99ms: 40, Expected: 5000000, Delivered: 5000000}
	for _, tc := range []struct {
		name      string
		change    func(*stepResult)
		sustained bool
		reasons   []string
	}{
		{"all met", func(*stepResult) {}, true, nil},
		{"p99 at the bound", func(r *stepResult) { r.P99ms = 250 }, true, nil},
		{"publisher at 95 %", func(r *stepResult) { r.PublishesSec = 950 }, true, nil},
		{"one lost", func(r *stepResult) { r.Lost = 1 }, false, []string{"lost 1 of 5000000"}},
		{"p99 over", func(r *stepResult) { r.P99ms = 250.5 }, false, []string{"p99 250.5 ms > 250 ms"}},
		{"publisher short", func(r *stepResult) { r.PublishesSec = 949 }, false, []string{"publisher reached 949 of 1000 msg/s"}},
		{"all three", func(r *stepResult) { r.Lost, r.P99ms, r.PublishesSec = 7, 900, 10 }, false,
			[]string{"lost 7", "p99 900.0 ms", "publisher reached 10 of 1000"}},
	} {
		r := ok
		tc.change(&r)
		sustained, reason := judge(r)
		if sustained != tc.sustained || (sustained && reason != "") {
			t.Errorf("%s: sustained %v, reason %q", tc.name, sustained, reason)
		}
		for _, want := range tc.reasons {
			if !strings.Contains(reason, want) {
				t.Errorf("%s: reason %q lacks %q", tc.name, reason, want)
			}
		}
	}
	steps := []stepResult{{TargetSec: 1, Sustained: true}, {TargetSec: 2, Sustained: true}, {TargetSec: 3, Reason: "x"}}
	if s := summarize(steps); s.Best != &steps[1] || s.Failed != &steps[2] {
		t.Errorf("summarize: %+v", s)
	}
	if s := summarize(steps[:2]); s.Best != &steps[1] || s.Failed != nil {
		t.Errorf("summarize of sustained steps: %+v", s)
	}
}

// TestPlotDrawsEachSystem writes three systems' sweeps, one of them in
// two files and one without a sustained step, and checks the SVG parses
// as XML and names each system.
func TestPlotDrawsEachSystem(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, steps ...stepResult) string {
		var b strings.Builder
		for _, s := range steps {
			s.Mode = "sweep"
			line, _ := json.Marshal(s)
			b.Write(line)
			b.WriteByte('\n')
		}
		b.WriteString(`{"mode":"fanout","deliveries_per_sec":5}` + "\n") // not a sweep: skipped
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := write("a.jsonl",
		stepResult{System: "chatscalable", TargetSec: 1e5, DeliveriesSec: 99e3, P99ms: 20, Sustained: true},
		stepResult{System: "chatscalable", TargetSec: 5e5, DeliveriesSec: 498e3, P99ms: 60, Sustained: true},
		stepResult{System: "centrifugo", TargetSec: 1e5, DeliveriesSec: 97e3, P99ms: 0, Sustained: true})
	b := write("b.jsonl",
		stepResult{System: "centrifugo", TargetSec: 5e5, DeliveriesSec: 300e3, P99ms: 700, Lost: 9, Reason: "lost 9"},
		stepResult{System: "mercure", TargetSec: 1e5, DeliveriesSec: 20e3, P99ms: 900, Lost: 9, Reason: "lost 9"})
	out := filepath.Join(dir, "fanout.svg")
	var stdout, stderr strings.Builder
	if code := run([]string{"plot", "--in", a + "," + b, "--out", out, "--title", "test"}, &stdout, &stderr); code != 0 {
		t.Fatalf("plot: exit %d: %s", code, stderr.String())
	}
	svg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
	}
	for _, name := range []string{"chatscalable", "centrifugo", "mercure"} {
		if !strings.Contains(string(svg), name) {
			t.Errorf("the SVG does not name %s", name)
		}
	}
	if code := run([]string{"plot", "--in", filepath.Join(dir, "none.jsonl"), "--out", out}, &stdout, &stderr); code == 0 {
		t.Error("plot of a missing file succeeded")
	}
}
