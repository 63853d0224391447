package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotCaption says how the plot marks steps, under its x axis.
const plotCaption = "filled points joined: sustained steps; hollow point: the first failing step"

// plotMain is `chat-bench plot`: the sweeps' steps read from JSON lines,
// drawn as p99 latency against delivered deliveries/s, one line per system.
func plotMain(args []string, stdout, stderr io.Writer) int {
	fs := envflag.NewPrefixed("chat-bench plot", "", nil, stdout)
	fs.Intro = "chat-bench plot draws sweeps' p99 latency against deliveries/s, one line per system.\n\nUsage: chat-bench plot --in FILE.jsonl[,FILE…] --out FILE.svg [--title T]"
	var in, out, title string
	fs.String(&in, "in", "", "comma-separated JSON-lines files written by chat-bench sweep --jsonl")
	fs.String(&out, "out", "", "the picture to write (.svg, or .png, .pdf)")
	fs.String(&title, "title", "Fan-out: p99 latency against deliveries/s", "the picture's title")
	if code, ok := parseCommand(fs, args, stderr); !ok {
		return code
	}
	if in == "" || out == "" {
		fmt.Fprintln(stderr, "chat-bench plot: needs --in and --out")
		return 2
	}
	series, err := readSweeps(envflag.SplitList(in))
	if err == nil {
		err = drawSweeps(series, title, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-bench plot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d systems)\n", out, len(series))
	return 0
}

// sweepSeries is one system's steps, in the order of their targets.
type sweepSeries struct {
	system string
	steps  []stepResult
}

// readSweeps reads the sweep steps of the files, grouped by system in
// the order the systems first appear. Lines of other modes are skipped.
func readSweeps(files []string) ([]sweepSeries, error) {
	var series []sweepSeries
	index := map[string]int{}
	for _, name := range files {
		f, err := os.Open(name) //nolint:gosec // the operator names the files
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			var r stepResult
			if err := json.Unmarshal([]byte(text), &r); err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			if r.Mode != "sweep" {
				continue
			}
			i, ok := index[r.System]
			if !ok {
				i = len(series)
				index[r.System] = i
				series = append(series, sweepSeries{system: r.System})
			}
			series[i].steps = append(series[i].steps, r)
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(series) == 0 {
		return nil, errors.New("no sweep steps in the input")
	}
	for _, s := range series {
		sort.SliceStable(s.steps, func(i, j int) bool { return s.steps[i].TargetSec < s.steps[j].TargetSec })
	}
	return series, nil
}

// minPlotMS keeps a p99 of 0 (a step without probe samples) on the log
// scale.
const minPlotMS = 0.1

// drawSweeps draws each series as points joined by a line, a filled point
// for a sustained step and a hollow one, left off the line, for a failing
// step, and saves the
// picture in the format of out's extension.
func drawSweeps(series []sweepSeries, title, out string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "delivered deliveries/s\n(" + plotCaption + ")"
	p.Y.Label.Text = "p99 latency, ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.TickerFunc(logTicks)
	p.X.Tick.Marker = plot.TickerFunc(rateTicks)
	p.X.Min = 0
	p.Add(plotter.NewGrid())
	// Bottom right: the curves rise to the right, so that corner is empty.
	p.Legend.Top = false
	p.Legend.Left = false
	for i, s := range series {
		pts := make(plotter.XYs, len(s.steps))
		for j, st := range s.steps {
			pts[j] = plotter.XY{X: st.DeliveriesSec, Y: max(st.P99ms, minPlotMS)}
		}
		// The line joins the sustained steps only: a failing step often
		// delivered less than the one before, and a line back to it would
		// read as the system's curve turning back.
		var joined plotter.XYs
		for j, st := range s.steps {
			if st.Sustained {
				joined = append(joined, pts[j])
			}
		}
		points, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("%s: %w", s.system, err)
		}
		line := &plotter.Line{XYs: joined, LineStyle: plotter.DefaultLineStyle}
		c := plotutil.Color(i)
		line.Color = c
		points.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}} // the legend's
		points.GlyphStyleFunc = func(j int) draw.GlyphStyle {
			g := draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
			if !s.steps[j].Sustained {
				g.Shape = draw.RingGlyph{}
			}
			return g
		}
		if len(joined) == 0 { // no step sustained: the failing point alone
			p.Add(points)
			p.Legend.Add(s.system, points)
			continue
		}
		p.Add(line, points)
		p.Legend.Add(s.system, line, points)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, out)
}

// logTicks labels 1, 2, 3 and 5 times each power of ten in [lo, hi].
func logTicks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for p := 0.01; p <= hi*10; p *= 10 {
		for _, m := range []float64{1, 2, 3, 5} {
			if v := p * m; v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64)})
			}
		}
	}
	if len(ticks) < 2 {
		return plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	}
	return ticks
}

// rateTicks are the default ticks labelled as 250k, 1M, 1.5M.
func rateTicks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label == "" {
			continue
		}
		switch v := t.Value; {
		case v >= 1e6:
			ticks[i].Label = strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
		case v >= 1e3:
			ticks[i].Label = strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
		default:
			ticks[i].Label = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return ticks
}
