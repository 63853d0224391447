package guide_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/e2e/guide"
)

func parseText(t *testing.T, text string) ([]guide.Step, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.md")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return guide.Parse(path)
}

// TestParse reads each kind of marker, and refuses markers a writer got
// wrong rather than skipping the block they meant to run.
func TestParse(t *testing.T) {
	steps, err := parseText(t, strings.Join([]string{
		"# Title", "", "## One", "",
		"<!-- run: background until http://localhost:8080/readyz -->", "```sh", "make run", "```", "",
		"<!-- run: status 28 timeout 10s -->", "<!-- expect: (?s)a.*b -->", "", "```bash", "curl -sN x", "```",
		"<!-- run: stop -->",
		"```sh", "not run", "```",
		"<!-- run: docker -->", "```sh", "make images", "```",
		"<!-- run: background until-output ^retry: \\d+ -->", "```sh", "curl -sN y", "```",
	}, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := []guide.Kind{guide.Chapter, guide.Background, guide.Foreground, guide.Stop, guide.Skip, guide.Background}
	if len(steps) != len(kinds) {
		t.Fatalf("%d steps, want %d: %+v", len(steps), len(kinds), steps)
	}
	for i, k := range kinds {
		if steps[i].Kind != k {
			t.Errorf("step %d: kind %d, want %d", i, steps[i].Kind, k)
		}
	}
	if s := steps[1]; s.UntilURL != "http://localhost:8080/readyz" || s.Code != "make run\n" || s.Line != 6 {
		t.Errorf("background step: %+v", s)
	}
	if s := steps[2]; s.Status != 28 || s.Timeout.String() != "10s" || len(s.Expects) != 1 || !s.Expects[0].MatchString("a\nb") {
		t.Errorf("foreground step: %+v", s)
	}
	if s := steps[5]; s.UntilOutput == nil || !s.UntilOutput.MatchString("retry: 2000") {
		t.Errorf("until-output step: %+v", s)
	}

	for name, bad := range map[string]string{
		"text between":       "<!-- run -->\ntext\n```sh\nx\n```\n",
		"not shell":          "<!-- run -->\n```go\nx\n```\n",
		"expect alone":       "<!-- expect: x -->\n```sh\nx\n```\n",
		"unknown option":     "<!-- run: sometimes -->\n```sh\nx\n```\n",
		"background waiting": "<!-- run: background -->\n```sh\nx\n```\n",
		"marker at the end":  "<!-- run -->\n",
		"bad regexp":         "<!-- run -->\n<!-- expect: ( -->\n```sh\nx\n```\n",
	} {
		if _, err := parseText(t, bad); err == nil {
			t.Errorf("%s: parsed without an error", name)
		}
	}
}

// TestLinks finds links to missing files and to headings that are not
// there, and leaves links in code and to the web alone.
func TestLinks(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "other.md"), []byte("# Other\n## Três nós, já\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "g.md")
	text := strings.Join([]string{
		"# Guide", "## One thing", "",
		"[ok](other.md) [ok](other.md#três-nós-já) [ok](#one-thing) [web](https://example.com/x.md)",
		"`[code](nowhere.md)`", "```sh", "[block](nowhere.md)", "```",
		"[bad](nowhere.md) [bad](other.md#nothing) [bad](#two) [bad](../outside.md)",
	}, "\n")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	missing, checked, err := guide.Links(path, root)
	if err != nil {
		t.Fatal(err)
	}
	if checked != 7 || len(missing) != 4 {
		t.Fatalf("checked %d links, want 7; missing %q, want the 4 bad ones", checked, missing)
	}
}
