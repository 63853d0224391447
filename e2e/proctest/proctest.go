// Package proctest builds the project's commands and runs them as real
// processes in tests: it captures their logs, waits for log lines with
// deadlines, and stops every process it started when the test ends.
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the Go package pkg (an import path or a directory) into a
// temporary folder and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	name := filepath.Base(pkg)
	if name == "." {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		name = filepath.Base(wd)
	}
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg) //nolint:gosec // a test builds its own package
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Proc is a running process.
type Proc struct {
	Cmd  *exec.Cmd
	name string

	mu     sync.Mutex
	lines  []string
	notify chan struct{}
	exited chan struct{}
	err    error
}

// Start runs bin with args; its stdout and stderr are captured line by line
// and shown in the test log if the test fails. The process is killed when
// the test ends, if it still runs.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, name, nil, bin, args...)
}

// StartEnv is Start with extra environment variables ("KEY=value"). The
// process leads a process group of its own, so a signal to the group (as
// Ctrl-C sends) reaches its children too; Kill kills the whole group.
func StartEnv(t testing.TB, name string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{name: name, notify: make(chan struct{}, 1), exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...) //nolint:gosec // a test runs the binary it built
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		p.collect(pr)
	}()
	go func() {
		p.err = p.Cmd.Wait()
		_ = pw.Close() // ends collect
		// Exited means every line is in the log: a test reading the log
		// of a process that ended sees all of it.
		<-collected
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", name, p.Log())
		}
	})
	return p
}

func (p *Proc) collect(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, s.Text())
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
}

// Log returns everything the process has printed so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b bytes.Buffer
	for _, l := range p.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// WaitLog waits until a printed line matches re and returns the line's
// submatches.
func (p *Proc) WaitLog(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	m, err := p.waitLog(re, timeout)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return m
}

func (p *Proc) waitLog(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		lines := p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		}
		select {
		case <-p.notify:
		case <-p.exited:
			// Read what was printed before the exit, once more.
			p.mu.Lock()
			rest := p.lines[seen:]
			p.mu.Unlock()
			for _, l := range rest {
				if m := re.FindStringSubmatch(l); m != nil {
					return m, nil
				}
			}
			return nil, fmt.Errorf("exited (%v) before printing a line matching %q", p.err, re)
		case <-deadline:
			return nil, fmt.Errorf("no line matching %q within %s", re, timeout)
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits at most timeout for the process to exit; it reports whether
// it exited and its exit error (nil for exit status 0).
func (p *Proc) Wait(timeout time.Duration) (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}

// Kill kills the process and its process group (SIGKILL) if it still runs
// and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// WorkspaceRoot returns the folder holding go.work above the current
// folder (tests run in their package's folder), or "" when there is none.
func WorkspaceRoot() string {
	dir, _ := os.Getwd()
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
	}
	return ""
}

// Root is WorkspaceRoot for a test: it fails the test when there is none.
func Root(t testing.TB) string {
	t.Helper()
	root := WorkspaceRoot()
	if root == "" {
		t.Fatal("no go.work above the test's folder")
	}
	return root
}
