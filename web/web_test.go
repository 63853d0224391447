package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestStaticFiles(t *testing.T) {
	for _, name := range []string{"app.js", "style.css"} {
		b, err := fs.ReadFile(Static(), name)
		if err != nil {
			t.Errorf("Static(): %s: %v", name, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("Static(): %s is empty", name)
		}
	}
}

func render(t *testing.T, data PageData) string {
	t.Helper()
	var sb strings.Builder
	if err := Index().Execute(&sb, data); err != nil {
		t.Fatalf("Index().Execute: %v", err)
	}
	return sb.String()
}

func TestIndexEscapesAndLinks(t *testing.T) {
	out := render(t, PageData{Node: "<b>gw-1</b>", Room: "lobby", Version: "test"})

	if !strings.Contains(out, "&lt;b&gt;gw-1&lt;/b&gt;") {
		t.Errorf("node name not HTML-escaped:\n%s", out)
	}
	if strings.Contains(out, "<b>gw-1</b>") {
		t.Errorf("raw node markup in output:\n%s", out)
	}
	for _, want := range []string{
		`action="/publish"`,
		`/static/app.js`,
		`/static/style.css`,
		`data-room="lobby"`,
		`id="send-form"`,
		`id="messages"`,
		`<title>ChatScalable</title>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

var (
	scriptTag  = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	srcAttr    = regexp.MustCompile(`(?i)\ssrc\s*=`)
	styleAttr  = regexp.MustCompile(`(?i)\sstyle\s*=`)
	handlerAtt = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

func TestIndexCSPSafe(t *testing.T) {
	out := render(t, PageData{Node: "gw-1", Room: "lobby"})

	tags := scriptTag.FindAllString(out, -1)
	if len(tags) == 0 {
		t.Fatal("no <script> element found")
	}
	for _, tag := range tags {
		if !srcAttr.MatchString(tag) {
			t.Errorf("inline <script> without src: %s", tag)
		}
	}
	if styleAttr.MatchString(out) {
		t.Error(`output contains a style="…" attribute`)
	}
	if strings.Contains(strings.ToLower(out), "<style") {
		t.Error("output contains an inline <style> element")
	}
	if m := handlerAtt.FindString(out); m != "" {
		t.Errorf("output contains an inline event handler %q", m)
	}
}
