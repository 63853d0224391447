package browsertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chatscalable/chatscalable/e2e/ssetest"
	"github.com/chromedp/chromedp"
)

// TestPresenceBurstCostsFewRequests: forty people joining at once send the
// page forty presence events; it refetches the members and the rooms a
// few times, not forty, and ends up showing everyone.
func TestPresenceBurstCostsFewRequests(t *testing.T) {
	const people = 40
	nodes := startNodes(t, 1)
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "burst")
	openChat(t, tab, nodes[0].URL()+"/?room=lobby", "ana")
	members := func(want int) {
		t.Helper()
		browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](
			`(n) => document.querySelectorAll("#members li[data-user]").length === n`, chromedp.WithPollingArgs(want)))
	}
	members(1)
	// Count the page's requests from here: resource timing entries.
	browsertest.Within(t, tab, wait, chromedp.Evaluate[any](`performance.setResourceTimingBufferSize(10000), performance.clearResourceTimings()`))
	requests := func() (membersN, roomsN int) {
		t.Helper()
		n := browsertest.Within(t, tab, wait, chromedp.Evaluate[[]int](`(() => {
			const urls = performance.getEntriesByType("resource").map((e) => new URL(e.name).pathname);
			return [urls.filter((p) => p.endsWith("/members")).length, urls.filter((p) => p === "/rooms").length];
		})()`))
		return n[0], n[1]
	}

	start := time.Now()
	for i := range people {
		ssetest.Open(t, nodes[0].URL()+fmt.Sprintf("/rooms/lobby/events?user=guest-%02d", i), nil)
	}
	members(people + 1)
	m, r := requests()
	t.Logf("%d joins over %s: %d members and %d rooms requests", people, time.Since(start).Round(time.Millisecond), m, r)
	// At most one request per 250 ms of the burst, plus the last.
	limit := int(time.Since(start)/(250*time.Millisecond)) + 2
	if m < 1 || m > limit || m >= people/2 {
		t.Errorf("%d members requests for %d joins; want from 1 to %d", m, people, min(limit, people/2-1))
	}
	if r > limit || r >= people/2 {
		t.Errorf("%d rooms requests for %d joins; want at most %d", r, people, min(limit, people/2-1))
	}
}
