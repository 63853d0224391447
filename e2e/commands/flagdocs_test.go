package commands_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// commandLines are every command and subcommand whose flags are
// documented, by the package of their binary.
var commandLines = []struct{ line, pkg string }{
	{"chat-gateway", gatewayPkg},
	{"chat-gateway token", gatewayPkg},
	{"chat-gateway healthcheck", gatewayPkg},
	{"chat-signin", signinPkg},
	{"chat-signin healthcheck", signinPkg},
	{"chat-broker", brokerPkg},
	{"chat-broker healthcheck", brokerPkg},
	{"chat-presence", presencePkg},
	{"chat-presence healthcheck", presencePkg},
	{"chat-rooms", roomsPkg},
	{"chat-rooms healthcheck", roomsPkg},
	{"chat-bench fanout", benchPkg},
	{"chat-bench latency", benchPkg},
	{"chat-bench idle", benchPkg},
	{"chat-bench publish", benchPkg},
	{"chat-bench sweep", benchPkg},
	{"chat-bench suite", benchPkg},
	{"chat-bench plot", benchPkg},
	{"chat-bench peers-report", benchPkg},
}

const (
	brokerPkg   = "github.com/chatscalable/chatscalable/broker/cmd/chat-broker"
	presencePkg = "github.com/chatscalable/chatscalable/services/cmd/chat-presence"
	benchPkg    = "github.com/chatscalable/chatscalable/tools/chat-bench"
)

// TestCommandLines builds every command and runs it with --help, -h,
// --version and a flag it lacks: usage and version on stdout with exit 0,
// bad input on stderr with exit 2. Then it compares the flags each prints
// with the tables of docs/CONFIGURATION.md, which must list every flag, and
// with the README's tables, which may show a few: a flag, environment
// variable or default that differs fails the test.
func TestCommandLines(t *testing.T) {
	bins := map[string]string{}
	for _, c := range commandLines {
		if bins[c.pkg] == "" {
			bins[c.pkg] = proctest.Build(t, c.pkg)
		}
	}
	run := func(t *testing.T, pkg string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bins[pkg], args...) //nolint:gosec // the test runs the binaries it built
		cmd.Env = cleanEnv()
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("%v: still running after 30s", args)
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errOut.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String(), errOut.String(), 0
	}
	help := map[string]string{}
	t.Run("help", func(t *testing.T) {
		for _, c := range commandLines {
			sub := strings.Fields(c.line)[1:]
			for _, h := range []string{"--help", "-h"} {
				out, errOut, code := run(t, c.pkg, append(sub, h)...)
				if code != 0 || errOut != "" || !strings.Contains(out, "Flags:\n  --") {
					t.Errorf("%s %s: exit %d, stdout:\n%s\nstderr:\n%s", c.line, h, code, out, errOut)
				}
				help[c.line] = out
			}
			out, errOut, code := run(t, c.pkg, append(sub, "--no-such-flag")...)
			if code != 2 || out != "" || !strings.Contains(errOut, "no-such-flag") || !strings.Contains(errOut, "--help") {
				t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q", c.line, code, out, errOut)
			}
		}
		// chat-bench without a mode is bad input; asked for help, it lists
		// the modes.
		if out, errOut, code := run(t, benchPkg); code != 2 || out != "" || !strings.Contains(errOut, "Usage:") {
			t.Errorf("chat-bench: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		for _, h := range []string{"--help", "-h"} {
			if out, errOut, code := run(t, benchPkg, h); code != 0 || errOut != "" || !strings.Contains(out, "chat-bench fanout|latency|idle|publish|sweep") {
				t.Errorf("chat-bench %s: exit %d, stdout %q, stderr %q", h, code, out, errOut)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		for pkg, bin := range bins {
			name := filepath.Base(bin)
			out, errOut, code := run(t, pkg, "--version")
			// A go build without -ldflags "-X main.version=…" says dev.
			want := regexp.MustCompile(`^` + name + ` \S+ \(` + regexp.QuoteMeta(runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) + `\)\n$`)
			if code != 0 || errOut != "" || !want.MatchString(out) {
				t.Errorf("%s --version: exit %d, stdout %q, stderr %q", name, code, out, errOut)
			}
		}
	})
	if t.Failed() {
		return
	}
	t.Run("documented", func(t *testing.T) {
		hostname, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		flags := map[string]map[string]helpFlag{}
		for _, c := range commandLines {
			flags[c.line] = parseHelp(t, c.line, help[c.line])
		}
		full := readFlagTables(t, "../../docs/CONFIGURATION.md", "flags")
		for _, c := range commandLines {
			rows := full[c.line]
			if len(rows) == 0 {
				t.Errorf("docs/CONFIGURATION.md has no table of %s (<!-- flags: %s -->)", c.line, c.line)
				continue
			}
			documented := map[string]bool{}
			for _, r := range rows {
				if documented[r.flag] {
					t.Errorf("%s: --%s is documented twice for %s", r.at, r.flag, c.line)
				}
				documented[r.flag] = true
			}
			var missing []string
			for name := range flags[c.line] {
				if !documented[name] && name != "version" {
					missing = append(missing, "--"+name)
				}
			}
			slices.Sort(missing)
			if len(missing) > 0 {
				t.Errorf("docs/CONFIGURATION.md does not document these flags of %s: %s", c.line, strings.Join(missing, " "))
			}
		}
		tables := []map[string][]docRow{full, readFlagTables(t, "../../README.md", "some flags")}
		for _, byCommand := range tables {
			for line, rows := range byCommand {
				if _, ok := flags[line]; !ok {
					t.Errorf("%s: a table of %q, which is no command line the test knows", rows[0].at, line)
					continue
				}
				for _, r := range rows {
					if err := r.check(flags[line], hostname); err != nil {
						t.Errorf("%s: %s --%s: %v", r.at, line, r.flag, err)
					}
				}
			}
		}
	})
}

// cleanEnv is the test's environment without CHAT_ variables, so the
// defaults printed are the commands' own.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// helpFlag is a flag as --help prints it.
type helpFlag struct {
	arg, env string
	// def is the default, "" when --help prints none (the zero value).
	def string
}

var (
	helpFlagLine = regexp.MustCompile(`^  --([a-z0-9-]+)(?: (\S+))?$`)
	helpSuffix   = regexp.MustCompile(`(?: \(env ([A-Z0-9_]+)\))?(?: \(default (.*)\))?$`)
)

// parseHelp reads the flags of a --help: "  --name ARG" lines, each
// followed by its usage, which ends with "(env X)" and "(default V)" when
// the flag has them.
func parseHelp(t *testing.T, line, out string) map[string]helpFlag {
	t.Helper()
	flags := map[string]helpFlag{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "  -") {
			continue
		}
		m := helpFlagLine.FindStringSubmatch(l)
		if m == nil || i+1 == len(lines) || !strings.HasPrefix(lines[i+1], "    \t") {
			// A `quoted` phrase of a usage becomes the argument's name.
			t.Errorf("%s --help: flag line %q is not \"  --name ARG\" and a usage line", line, l)
			continue
		}
		s := helpSuffix.FindStringSubmatch(lines[i+1])
		f := helpFlag{arg: m[2], env: s[1], def: s[2]}
		if v, err := strconv.Unquote(f.def); err == nil {
			f.def = v
		}
		flags[m[1]] = f
	}
	if len(flags) == 0 {
		t.Errorf("%s --help lists no flags:\n%s", line, out)
	}
	return flags
}

// docRow is a row of a flag table: | `--flag` | `ENV` or — | default | what |.
type docRow struct {
	at                 string
	flag, env, def, do string
}

var tableMarker = regexp.MustCompile(`^<!-- (some flags|flags): (.+) -->$`)

// readFlagTables returns the rows of the tables of path under a marker of
// kind ("flags" for complete tables, "some flags" for a selection), by
// command line: "<!-- flags: chat-presence, chat-rooms -->" and the table
// right after it.
func readFlagTables(t *testing.T, path, kind string) map[string][]docRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]docRow{}
	var commands []string
	inTable := false
	for i, l := range strings.Split(string(b), "\n") {
		at := fmt.Sprintf("%s:%d", filepath.Base(path), i+1)
		if m := tableMarker.FindStringSubmatch(l); m != nil {
			commands = nil
			if m[1] == kind {
				for _, c := range strings.Split(m[2], ",") {
					commands = append(commands, strings.TrimSpace(c))
				}
			}
			inTable = false
			continue
		}
		if !strings.HasPrefix(l, "|") {
			if inTable {
				commands, inTable = nil, false
			}
			continue
		}
		if commands == nil {
			continue
		}
		header := !inTable
		inTable = true
		cells := strings.Split(strings.TrimSuffix(strings.TrimSpace(l), "|"), "|")
		if header || strings.HasPrefix(cells[1], "---") {
			continue
		}
		if len(cells) < 5 {
			t.Errorf("%s: a row of fewer than four cells", at)
			continue
		}
		r := docRow{at: at, env: strings.TrimSpace(cells[2]), def: strings.TrimSpace(cells[3]), do: strings.TrimSpace(strings.Join(cells[4:], "|"))}
		name := strings.TrimSpace(cells[1])
		if !strings.HasPrefix(name, "`--") || !strings.HasSuffix(name, "`") || strings.Count(name, "`") != 2 {
			t.Errorf("%s: the flag cell %q is not one `--flag`", at, name)
			continue
		}
		r.flag = strings.Trim(name, "`-")
		for _, c := range commands {
			tables[c] = append(tables[c], r)
		}
	}
	return tables
}

// check compares the row with the flags --help printed. A default in
// backquotes is the value itself; words ("(empty)", "the topic") say what
// an empty default means, and "hostname" is the machine's name.
func (r docRow) check(flags map[string]helpFlag, hostname string) error {
	f, ok := flags[r.flag]
	if !ok {
		return fmt.Errorf("no such flag")
	}
	switch {
	case r.do == "":
		return fmt.Errorf("says nothing of what the flag does")
	case f.env == "" && r.env != "—":
		return fmt.Errorf("has no environment variable; the table says %s (write —)", r.env)
	case f.env != "" && r.env != "`"+f.env+"`":
		return fmt.Errorf("environment variable %s, the table says %s", f.env, r.env)
	}
	literal := strings.HasPrefix(r.def, "`") && strings.HasSuffix(r.def, "`") && strings.Count(r.def, "`") == 2
	switch {
	case literal:
		v := strings.Trim(r.def, "`")
		if f.def == "" && !slices.Contains([]string{"0", "false", "0s"}, v) {
			return fmt.Errorf("the default is empty or zero, the table says %s", r.def)
		}
		if f.def != "" && !sameValue(f.arg, v, f.def) {
			return fmt.Errorf("default %q, the table says %s", f.def, r.def)
		}
	case r.def == "hostname":
		if f.def != hostname {
			return fmt.Errorf("default %q, not the hostname the table says", f.def)
		}
	case f.def != "":
		return fmt.Errorf("default %q, the table says %s (write it in backquotes)", f.def, r.def)
	}
	return nil
}

// sameValue compares a documented default with the printed one: durations
// by their value (168h is 168h0m0s), anything else as text.
func sameValue(arg, doc, printed string) bool {
	if arg == "duration" {
		a, errA := time.ParseDuration(doc)
		b, errB := time.ParseDuration(printed)
		return errA == nil && errB == nil && a == b
	}
	return doc == printed
}
