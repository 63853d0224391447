package envflag_test

import (
	"bytes"
	"errors"
	"flag"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/envflag"
)

func newSet(env map[string]string, out *bytes.Buffer) (*envflag.Set, *string, *time.Duration) {
	fs := envflag.New("cmd", func(k string) string { return env[k] }, out)
	var addr string
	var d time.Duration
	fs.String(&addr, "http-addr", ":8080", "HTTP listen `address`")
	fs.Duration(&d, "heartbeat", 15*time.Second, "interval")
	fs.Version("1.2.3")
	return fs, &addr, &d
}

func TestEnvironmentAndFlags(t *testing.T) {
	var out bytes.Buffer
	fs, addr, d := newSet(map[string]string{"CHAT_HTTP_ADDR": ":9000", "CHAT_HEARTBEAT": "2s"}, &out)
	if err := fs.Parse([]string{"--heartbeat", "3s"}); err != nil {
		t.Fatal(err)
	}
	if *addr != ":9000" || *d != 3*time.Second {
		t.Errorf("addr %q, heartbeat %s", *addr, *d)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q", out.String())
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var out bytes.Buffer
		fs, _, _ := newSet(nil, &out)
		fs.Intro = "cmd does things.\n\nUsage: cmd [flags]\n"
		err := fs.Parse([]string{arg})
		if !errors.Is(err, flag.ErrHelp) || !envflag.Answered(err) {
			t.Fatalf("%s: %v", arg, err)
		}
		want := "cmd does things.\n\nUsage: cmd [flags]\n\nFlags:\n" +
			"  --heartbeat duration\n    \tinterval (env CHAT_HEARTBEAT) (default 15s)\n" +
			"  --http-addr address\n    \tHTTP listen address (env CHAT_HTTP_ADDR) (default \":8080\")\n" +
			"  --version\n    \tprint the version and exit\n"
		if out.String() != want {
			t.Errorf("%s printed\n%s\nwant\n%s", arg, out.String(), want)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	fs, _, _ := newSet(map[string]string{"CHAT_HEARTBEAT": "soon"}, &out)
	err := fs.Parse([]string{"--version"})
	if !errors.Is(err, envflag.ErrVersion) || !envflag.Answered(err) {
		t.Fatalf("--version: %v", err)
	}
	want := "cmd 1.2.3 (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}

func TestBuildVersion(t *testing.T) {
	if v := envflag.BuildVersion("1.2.3-4-gabcdef"); v != "1.2.3-4-gabcdef" {
		t.Errorf("a set version became %q", v)
	}
	// A test binary records no module version and no VCS revision.
	for _, v := range []string{"", "dev"} {
		if got := envflag.BuildVersion(v); got == "" || !strings.HasPrefix(got, "dev") && !strings.HasPrefix(got, "v") {
			t.Errorf("BuildVersion(%q) = %q", v, got)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--nope"}, "flag provided but not defined: -nope (cmd --help lists the flags)"},
		{nil, []string{"--heartbeat", "x"}, `invalid value "x" for flag -heartbeat`},
		{map[string]string{"CHAT_HEARTBEAT": "x"}, nil, `CHAT_HEARTBEAT="x"`},
		{nil, []string{"extra"}, `unexpected argument "extra"`},
	} {
		var out bytes.Buffer
		fs, _, _ := newSet(c.env, &out)
		err := fs.Parse(c.args)
		if err == nil || envflag.Answered(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want %s", c.env, c.args, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v %v printed %q", c.env, c.args, out.String())
		}
	}
}

func TestFlagsOnly(t *testing.T) {
	var out bytes.Buffer
	fs := envflag.NewPrefixed("bench", "", nil, &out)
	var n int
	fs.Int(&n, "subs", 1000, "subscribers")
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "env") || !strings.Contains(out.String(), "--subs int\n    \tsubscribers (default 1000)") {
		t.Errorf("help:\n%s", out.String())
	}
}
