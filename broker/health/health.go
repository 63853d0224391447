// Package health gives every ChatScalable command a `healthcheck`
// subcommand, so a container HEALTHCHECK needs no shell or curl: it checks
// an HTTP endpoint, or a file the running process keeps fresh while it is
// healthy (for processes without an HTTP listener).
package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// CheckURL answers nil when a GET of url answers 200 within timeout.
func CheckURL(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// CheckFile answers nil when path was modified within maxAge.
func CheckFile(path string, maxAge time.Duration) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if age := time.Since(st.ModTime()); age > maxAge {
		return fmt.Errorf("%s was last refreshed %s ago", path, age.Round(time.Second))
	}
	return nil
}

// KeepFile touches path every interval while healthy() is true, until ctx
// ends; then it removes the file.
func KeepFile(ctx context.Context, path string, interval time.Duration, healthy func() bool) {
	defer func() { _ = os.Remove(path) }() // gone already is fine
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if healthy() {
			now := time.Now()
			if err := os.Chtimes(path, now, now); err != nil {
				_ = os.WriteFile(path, []byte("ok\n"), 0o600) // read by the same user's healthcheck
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
