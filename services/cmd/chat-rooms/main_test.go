package main

import (
	"bytes"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, noEnv, &out, &bytes.Buffer{}); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	for _, want := range []string{"--nats-url", "CHAT_NATS_URL", "--log-level", "CHAT_LOG_LEVEL"} {
		if !strings.Contains(out.String(), strings.TrimLeft(want, "-")) {
			t.Errorf("usage does not mention %s:\n%s", want, out.String())
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "loud"}, {"extra"}, {"--no-such-flag"}, {"--nats-url", ""}} {
		var out bytes.Buffer
		if code := run(args, noEnv, &bytes.Buffer{}, &out); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}
