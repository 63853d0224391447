package guide

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// Ports are the ones the guides' commands use as written: the quickstart,
// make cluster and make cluster-brokers. They must be free before a guide
// runs.
var Ports = []int{8080, 4222, 8081, 8082, 8083, 4231, 4232, 4233, 6231, 6232, 6233, 8231, 8232, 8233}

// stopTimeout bounds a background block's exit after Ctrl-C (cluster.sh
// itself waits up to 30 s for its nodes).
const stopTimeout = 40 * time.Second

// expectTimeout bounds how long a background block's output may take to
// show what it expects, once it is to be stopped.
const expectTimeout = 15 * time.Second

// CheckPorts fails the test, naming them, when any of ports is in use.
func CheckPorts(t testing.TB, ports []int) {
	t.Helper()
	var busy []string
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			busy = append(busy, strconv.Itoa(p))
			continue
		}
		_ = l.Close()
	}
	if len(busy) > 0 {
		t.Fatalf("the guide's commands use fixed ports, and these are in use: %s. Stop what listens there (ss -ltnp shows it) and run the test again",
			strings.Join(busy, ", "))
	}
}

// Copy copies the repository's files (tracked, and untracked ones git does
// not ignore: the guide being written) from root into dir, so the guide's
// commands build and keep data there, never in the repository itself. The
// nats CLI is linked from root's tools/bin.
func Copy(t testing.TB, root, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output() //nolint:gosec // the test's own repository
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(root, f)
		info, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src) //nolint:gosec // the repository's own files
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil { //nolint:gosec // a file git lists, into the test's folder
			t.Fatal(err)
		}
	}
	nats := filepath.Join(root, "tools/bin/nats")
	if _, err := os.Stat(nats); err != nil {
		t.Logf("installing the nats CLI: make nats (about two minutes, once)")
		if out, err := exec.Command("make", "-C", root, "nats").CombinedOutput(); err != nil { //nolint:gosec // the test's own repository
			t.Fatalf("make nats: %v\n%s", err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tools/bin"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(nats, filepath.Join(dir, "tools/bin/nats")); err != nil {
		t.Fatal(err)
	}
}

// buildTimeout bounds make build in the copy: on a machine whose Go build
// cache is cold, compiling every command takes minutes.
const buildTimeout = 10 * time.Minute

// Build runs make build in the copy in dir first, so a cold build cache
// costs the set-up, not the guide's first make run.
func Build(t testing.TB, dir string) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "build")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build in the copy: %v\n%s", err, out)
	}
	t.Logf("make build in the copy: %s", time.Since(start).Round(time.Millisecond))
}

// Runner runs a guide's steps in a copy of the repository.
type Runner struct {
	Dir   string   // the copy: where every block starts
	Guide string   // the guide's name, for messages
	Env   []string // the blocks' environment

	state string // the shell state one foreground block leaves to the next
	bg    []*background
}

type background struct {
	step Step
	proc *proctest.Proc
}

// NewRunner prepares a runner for the copy in dir; the blocks get the
// test's environment without CHAT_ variables (so defaults are the
// guide's), with a config folder of their own (no nats CLI context).
func NewRunner(t testing.TB, dir, guide string) *Runner {
	r := &Runner{Dir: dir, Guide: guide, state: filepath.Join(t.TempDir(), "state.sh")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "NATS_") {
			r.Env = append(r.Env, kv)
		}
	}
	r.Env = append(r.Env, "XDG_CONFIG_HOME="+t.TempDir(), "NO_COLOR=1")
	t.Cleanup(func() { r.stopAll(t, false) })
	t.Cleanup(func() { killRecorded(dir) })
	return r
}

// prelude starts every block: at the folder and with the variables the
// previous foreground block left, errexit and pipefail on; a foreground
// block saves its variables and folder when it ends.
func (r *Runner) prelude(save bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cd %q\n[ -f %q ] && source %q 2>/dev/null\n", r.Dir, r.state, r.state)
	if save {
		fmt.Fprintf(&b, `__guide_save() {
	local __guide_n __guide_keep=()
	for __guide_n in $(compgen -v); do
		case $__guide_n in
		__guide* | BASH* | EUID | PPID | UID | GROUPS | SHELLOPTS | FUNCNAME | DIRSTACK | PIPESTATUS | RANDOM | SRANDOM | SECONDS | LINENO | HISTCMD | EPOCHREALTIME | EPOCHSECONDS | _ | OPTIND | OPTARG | OPTERR | IFS | PS4 | SHLVL | PWD | OLDPWD | COLUMNS | LINES | HOSTNAME | HOSTTYPE | MACHTYPE | OSTYPE) continue ;;
		esac
		__guide_keep+=("$__guide_n")
	done
	{ declare -p "${__guide_keep[@]}"; printf 'cd %%q\n' "$PWD"; } >%q 2>/dev/null
}
trap __guide_save EXIT
`, r.state)
	}
	b.WriteString("set -e -o pipefail\n")
	return b.String()
}

func (r *Runner) script(t testing.TB, st Step, save bool) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), fmt.Sprintf("block-%d.sh", st.Line))
	if err := os.WriteFile(f, []byte(r.prelude(save)+st.Code), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Run runs every step in order.
func (r *Runner) Run(t *testing.T, steps []Step) {
	chapter := "(before the first chapter)"
	for _, st := range steps {
		where := fmt.Sprintf("%s:%d (%s)", r.Guide, st.Line, chapter)
		switch st.Kind {
		case Chapter:
			r.stopAll(t, true)
			chapter = st.Title
			t.Logf("%s:%d ## %s", r.Guide, st.Line, st.Title)
		case Stop:
			t.Logf("%s: stop (Ctrl-C) the %d running blocks", where, len(r.bg))
			r.stopAll(t, true)
		case Skip:
			t.Logf("%s: not run, %s:\n%s", where, st.Title, indent(st.Code))
		case Foreground:
			r.foreground(t, where, st)
		case Background:
			r.background(t, where, st)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	r.stopAll(t, true)
}

func (r *Runner) foreground(t *testing.T, where string, st Step) {
	t.Helper()
	start := time.Now()
	p := proctest.StartEnv(t, where, r.Env, "bash", r.script(t, st, true))
	exited, err := p.Wait(st.Timeout)
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL) // the block's own jobs (&) end with it
	p.Kill()
	out := p.Log()
	t.Logf("%s: ran in %s:\n%s--- output ---\n%s", where, time.Since(start).Round(time.Millisecond), indent(st.Code), indent(out))
	if !exited {
		t.Fatalf("%s: still running after %s", where, st.Timeout)
	}
	status := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", where, err)
		}
		status = ee.ExitCode()
	}
	if status != st.Status {
		t.Fatalf("%s: exit status %d, want %d", where, status, st.Status)
	}
	for _, re := range st.Expects {
		if !re.MatchString(out) {
			t.Fatalf("%s: the output does not match %q", where, re)
		}
	}
}

func (r *Runner) background(t *testing.T, where string, st Step) {
	t.Helper()
	start := time.Now()
	p := proctest.StartEnv(t, where, r.Env, "bash", r.script(t, st, false))
	r.bg = append(r.bg, &background{step: st, proc: p})
	if st.UntilOutput != nil {
		p.WaitLog(t, st.UntilOutput, ReadyTimeout)
	}
	if st.UntilURL != "" {
		deadline := time.Now().Add(ReadyTimeout)
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			resp, err := client.Get(st.UntilURL)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if exited, _ := p.Wait(0); exited {
				t.Fatalf("%s: ended before %s answered 200:\n%s", where, st.UntilURL, p.Log())
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s did not answer 200 within %s:\n%s", where, st.UntilURL, ReadyTimeout, p.Log())
			}
			time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
		}
	}
	t.Logf("%s: started in the background, ready in %s:\n%s", where, time.Since(start).Round(time.Millisecond), indent(st.Code))
}

// stopAll stops the background blocks, newest first, as Ctrl-C in their
// terminal would (SIGINT to the process group); check makes it a failure
// when one does not show what it expects or does not end in time.
func (r *Runner) stopAll(t testing.TB, check bool) {
	for i := len(r.bg) - 1; i >= 0; i-- {
		b := r.bg[i]
		if check {
			deadline := time.Now().Add(expectTimeout)
			for _, re := range b.step.Expects {
				for !re.MatchString(b.proc.Log()) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
				}
				if !re.MatchString(b.proc.Log()) {
					t.Errorf("%s:%d: the background block's output does not match %q within %s:\n%s",
						r.Guide, b.step.Line, re, expectTimeout, b.proc.Log())
				}
			}
		}
		_ = syscall.Kill(-b.proc.Cmd.Process.Pid, syscall.SIGINT)
		exited, _ := b.proc.Wait(stopTimeout)
		if !exited && check {
			t.Errorf("%s:%d: still running %s after Ctrl-C", r.Guide, b.step.Line, stopTimeout)
		}
		_ = syscall.Kill(-b.proc.Cmd.Process.Pid, syscall.SIGKILL) // whatever of its group is left
		b.proc.Kill()
		if check {
			t.Logf("%s:%d: stopped; its output:\n%s", r.Guide, b.step.Line, indent(tail(b.proc.Log(), 12)))
		}
	}
	r.bg = nil
	killRecorded(r.Dir)
}

// killRecorded kills, with SIGKILL, every cluster node whose pid
// cluster.sh recorded under dir/data and that still runs a binary of
// dir/bin from dir: nodes run in sessions of their own, out of reach of
// the script's process group, if the script itself could not stop them.
func killRecorded(dir string) {
	proctest.KillRecorded(filepath.Join(dir, "data", "*", "run", "*.pid"), func(pid int, cmdline string) bool {
		if !strings.HasPrefix(cmdline, filepath.Join(dir, "bin")+"/") && !strings.HasPrefix(cmdline, "bin/") {
			return false
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		return err == nil && cwd == dir
	})
}

func indent(s string) string {
	if s == "" {
		return "    (nothing)\n"
	}
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
