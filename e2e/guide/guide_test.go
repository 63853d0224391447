package guide_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/guide"
	"github.com/chatscalable/chatscalable/e2e/proctest"
)

// guides are the guide's languages, run in this order.
var guides = []string{"en.md", "pt-BR.md"}

// TestGuideLinks checks that every link of every guide to a file of the
// repository leads to one, and that their markers parse.
func TestGuideLinks(t *testing.T) {
	root := proctest.Root(t)
	for _, g := range append(guides, "README.md") {
		path := filepath.Join(root, "docs/guide", g)
		missing, checked, err := guide.Links(path, root)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range missing {
			t.Errorf("%s: a link to a file that does not exist: %s", g, m)
		}
		t.Logf("%s: %d links into the repository", g, checked)
		if g == "README.md" {
			continue
		}
		if _, err := guide.Parse(path); err != nil {
			t.Error(err)
		}
	}
}

// TestGuides runs the runnable shell blocks of each guide, English then
// Portuguese, in order, in a fresh copy of the repository, as a reader
// would type them: make run and make cluster build into the copy's bin/
// and keep their data in its data/. Blocks that need Docker, several
// hosts or minutes are logged and skipped.
func TestGuides(t *testing.T) {
	if testing.Short() {
		t.Skip("the guides start gateways and clusters: not in -short")
	}
	for _, tool := range []string{"bash", "curl", "make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the guides need %s on PATH", tool)
		}
	}
	root := proctest.Root(t)
	for _, g := range guides {
		ok := t.Run(g, func(t *testing.T) {
			start := time.Now()
			steps, err := guide.Parse(filepath.Join(root, "docs/guide", g))
			if err != nil {
				t.Fatal(err)
			}
			guide.CheckPorts(t, guide.Ports)
			dir := t.TempDir()
			guide.Copy(t, root, dir)
			guide.Build(t, dir)
			r := guide.NewRunner(t, dir, g)
			r.Run(t, steps)
			t.Logf("%s: every runnable block passed in %s", g, time.Since(start).Round(time.Second))
		})
		if !ok {
			break // the next guide would meet what this one left failing
		}
	}
}
