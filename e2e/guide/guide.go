// Package guide reads the step-by-step guides (docs/guide/*.md) as a test
// reads them: the shell blocks marked runnable, in order, with what each
// must print, and every link into the repository. docs/guide/README.md
// describes the markers for writers.
package guide

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind says what the harness does with a step.
type Kind int

// The kinds of steps.
const (
	// Foreground runs a block to its end, within its timeout.
	Foreground Kind = iota
	// Background starts a long-running block (make run) and waits until it
	// is ready; it is stopped at the next stop marker, chapter or the end.
	Background
	// Skip is a block the test does not run (Docker, several hosts).
	Skip
	// Stop stops the background blocks started so far, as Ctrl-C would.
	Stop
	// Chapter is a level-2 heading: it stops the background blocks too.
	Chapter
)

// DefaultTimeout bounds a foreground block without a timeout option.
const DefaultTimeout = 60 * time.Second

// ReadyTimeout bounds how long a background block may take to be ready
// (make run builds every command first).
const ReadyTimeout = 3 * time.Minute

// skipReasons are the skip markers and why the guide test does not run them.
var skipReasons = map[string]string{
	"docker": "needs a Docker engine; e2e/dockertest runs the images, compose and the stack",
	"hosts":  "needs several hosts or root for network namespaces; the multi-host tests cover it",
}

// Step is one thing the harness does, in the guide's order.
type Step struct {
	Kind Kind
	Line int    // line in the guide (1-based): of the block's fence, marker or heading
	Code string // the block's shell text (Foreground, Background, Skip)
	// Title is the chapter's heading (Chapter) or why a block is skipped (Skip).
	Title string

	Status      int              // the exit status a foreground block must end with
	Timeout     time.Duration    // foreground: at most this long
	UntilURL    string           // background: ready when a GET answers 200
	UntilOutput *regexp.Regexp   // background: ready when a printed line matches
	Expects     []*regexp.Regexp // output that must match (background: by the time it is stopped)
}

var (
	markerRe  = regexp.MustCompile(`^\s*<!--\s*(run|expect)\b(?::\s*(.*?))?\s*-->\s*$`)
	fenceRe   = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z-]*)")
	chapterRe = regexp.MustCompile(`^##\s+(.+?)\s*$`)
)

// Parse reads a guide and returns its steps. A marker must be followed,
// after blank lines or further markers only, by a fenced block; a run
// marker's block must be sh, bash or shell.
func Parse(path string) ([]Step, error) {
	f, err := os.Open(path) //nolint:gosec // the guides of this repository
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var (
		steps   []Step
		pending *Step // the block the markers seen so far describe
		fence   string
		code    strings.Builder
		inBlock bool
		n       int
	)
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		n++
		line := s.Text()
		if inBlock {
			if strings.HasPrefix(strings.TrimSpace(line), fence) && strings.Trim(strings.TrimSpace(line), fence[:1]) == "" {
				inBlock = false
				if pending != nil {
					pending.Code = code.String()
					steps = append(steps, *pending)
					pending = nil
				}
				continue
			}
			code.WriteString(line)
			code.WriteByte('\n')
			continue
		}
		if m := fenceRe.FindStringSubmatch(line); m != nil {
			inBlock, fence = true, m[1]
			code.Reset()
			if pending != nil {
				switch m[2] {
				case "sh", "bash", "shell":
				default:
					return nil, fmt.Errorf("%s:%d: a run marker's block must be sh or bash, not %q", path, n, m[2])
				}
				pending.Line = n
			}
			continue
		}
		if m := markerRe.FindStringSubmatch(line); m != nil {
			if m[1] == "expect" {
				if pending == nil || m[2] == "" {
					return nil, fmt.Errorf("%s:%d: an expect marker belongs after a run marker, with a regular expression", path, n)
				}
				re, err := regexp.Compile(m[2])
				if err != nil {
					return nil, fmt.Errorf("%s:%d: expect: %w", path, n, err)
				}
				pending.Expects = append(pending.Expects, re)
				continue
			}
			st, err := parseRun(m[2])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: a second run marker before the first one's block", path, n)
			}
			st.Line = n
			if st.Kind == Stop {
				steps = append(steps, st)
				continue
			}
			pending = &st
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if pending != nil {
			return nil, fmt.Errorf("%s:%d: text between a run marker and its block", path, n)
		}
		if m := chapterRe.FindStringSubmatch(line); m != nil {
			steps = append(steps, Step{Kind: Chapter, Line: n, Title: m[1]})
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if inBlock {
		return nil, fmt.Errorf("%s: a code block is not closed", path)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s: a run marker at the end without a block", path)
	}
	return steps, nil
}

// parseRun reads the options of a run marker: nothing (run it), stop,
// docker|hosts (skip), or any of background, until URL, until-output
// REGEX (the rest of the marker), status N, timeout DURATION.
func parseRun(opts string) (Step, error) {
	st := Step{Kind: Foreground, Timeout: DefaultTimeout}
	words := strings.Fields(opts)
	for i := 0; i < len(words); i++ {
		w := words[i]
		next := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("run: %s needs a value", w)
			}
			i++
			return words[i], nil
		}
		switch w {
		case "stop":
			st.Kind = Stop
		case "background":
			st.Kind = Background
		case "docker", "hosts":
			st.Kind, st.Title = Skip, w+": "+skipReasons[w]
		case "until":
			v, err := next()
			if err != nil {
				return st, err
			}
			st.UntilURL = v
		case "until-output":
			rest := strings.TrimSpace(opts[strings.Index(opts, "until-output")+len("until-output"):])
			re, err := regexp.Compile(rest)
			if err != nil || rest == "" {
				return st, fmt.Errorf("run: until-output needs a regular expression: %v", err)
			}
			st.UntilOutput = re
			i = len(words)
		case "status":
			v, err := next()
			if err != nil {
				return st, err
			}
			if st.Status, err = strconv.Atoi(v); err != nil {
				return st, fmt.Errorf("run: status %q: %w", v, err)
			}
		case "timeout":
			v, err := next()
			if err != nil {
				return st, err
			}
			if st.Timeout, err = time.ParseDuration(v); err != nil {
				return st, fmt.Errorf("run: timeout %q: %w", v, err)
			}
		default:
			return st, fmt.Errorf("run: unknown option %q", w)
		}
	}
	if st.Kind == Background && st.UntilURL == "" && st.UntilOutput == nil {
		return st, fmt.Errorf("run: background needs until URL or until-output REGEX, so the next block does not race it")
	}
	return st, nil
}

var (
	linkRe       = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	inlineCodeRe = regexp.MustCompile("`[^`]*`")
)

// Links returns the guide's links into the repository that do not exist
// (relative links, resolved from the guide's folder), that point outside
// root, or whose #fragment names no heading of the Markdown file they lead
// to. Links in code are not links.
func Links(path, root string) (missing []string, checked int, err error) {
	b, err := os.ReadFile(path) //nolint:gosec // the guides of this repository
	if err != nil {
		return nil, 0, err
	}
	inBlock := false
	for i, line := range strings.Split(string(b), "\n") {
		if fenceRe.MatchString(line) {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			continue
		}
		for _, m := range linkRe.FindAllStringSubmatch(inlineCodeRe.ReplaceAllString(line, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, fragment, _ := strings.Cut(target, "#")
			full := path
			if target != "" {
				full = filepath.Join(filepath.Dir(path), filepath.FromSlash(target))
			}
			checked++
			rel, err := filepath.Rel(root, full)
			if err != nil || strings.HasPrefix(rel, "..") {
				missing = append(missing, fmt.Sprintf("line %d: %s (outside the repository)", i+1, m[1]))
				continue
			}
			if _, err := os.Stat(full); err != nil { //nolint:gosec // a path inside root, checked above
				missing = append(missing, fmt.Sprintf("line %d: %s", i+1, m[1]))
				continue
			}
			if fragment != "" && strings.HasSuffix(full, ".md") {
				anchors, err := Anchors(full)
				if err != nil {
					return nil, checked, err
				}
				if !anchors[fragment] {
					missing = append(missing, fmt.Sprintf("line %d: %s (no heading of %s has the anchor #%s)", i+1, m[1], filepath.Base(full), fragment))
				}
			}
		}
	}
	return missing, checked, nil
}

// Anchors returns the anchors GitHub gives the headings of a Markdown
// file: the heading's text in lower case, without punctuation but - and _,
// spaces turned into -, and -1, -2 … after a repeated one.
func Anchors(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the repository's own files
	if err != nil {
		return nil, err
	}
	anchors := map[string]bool{}
	seen := map[string]int{}
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		if fenceRe.MatchString(line) {
			inBlock = !inBlock
			continue
		}
		if inBlock || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteByte('-')
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors, nil
}
