// Package browsertest drives a real headless Chromium against real
// gateways for the chat page's tests. Without Chromium the tests skip with
// a message, except under CI=true, where a missing browser fails them.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/chromedp/chromedp"
)

// Chromium returns the browser's path, or ends the test when there is none.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs it with apt-get install -y chromium")
	}
	t.Skip("SKIPPING BROWSER TESTS: chromium is not installed (apt-get install -y chromium)")
	return ""
}

// NewBrowser starts a headless Chromium with a fresh profile; it is
// closed when the test ends. Tabs are made with NewTab.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1000, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// NewTab opens a tab of browser. When the test fails, a screenshot of the
// tab is saved as an artifact (see ArtifactsDir).
func NewTab(t testing.TB, browser context.Context, name string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			saveScreenshot(t, ctx, name)
		}
		cancel()
	})
	return ctx
}

// ArtifactsDir is where failure screenshots go: $CHAT_ARTIFACTS, or
// artifacts/ at the workspace root.
func ArtifactsDir() string {
	if d := os.Getenv("CHAT_ARTIFACTS"); d != "" {
		return d
	}
	if root := proctest.WorkspaceRoot(); root != "" {
		return filepath.Join(root, "artifacts")
	}
	return os.TempDir()
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func saveScreenshot(t testing.TB, tab context.Context, name string) {
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Logf("screenshot of %s: %v", name, err)
		return
	}
	dir := ArtifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // screenshots of a failed test, for the developer
		t.Logf("artifacts: %v", err)
		return
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil { //nolint:gosec // screenshots of a failed test, for the developer
		t.Logf("save screenshot: %v", err)
		return
	}
	t.Logf("screenshot of %s saved to %s", name, path)
}

// Within runs action on tab with a deadline.
func Within[T any](t testing.TB, tab context.Context, d time.Duration, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, d)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}
