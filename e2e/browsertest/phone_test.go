package browsertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// phone makes tab a phone's screen, 390×844 CSS pixels, with touch.
func phone(t *testing.T, tab context.Context) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
}

// panelState is what a test sees of the side panel and its button.
type panelState struct {
	Expanded string  // the button's aria-expanded
	Shown    bool    // the panel takes room on the screen
	Focus    string  // the id of the focused element
	Left     float64 // the panel's box
	Right    float64
	Top      float64
	Bottom   float64
}

const panelJS = `(() => {
	const side = document.getElementById("side");
	const r = side.getBoundingClientRect();
	return {
		Expanded: document.getElementById("side-toggle").getAttribute("aria-expanded"),
		Shown: getComputedStyle(side).display !== "none" && r.width > 0 && r.height > 0,
		Focus: document.activeElement ? document.activeElement.id : "",
		Left: r.left, Right: r.right, Top: r.top, Bottom: r.bottom,
	};
})()`

func panel(t *testing.T, tab context.Context) panelState {
	t.Helper()
	return browsertest.Within(t, tab, wait, chromedp.Evaluate[panelState](panelJS))
}

// On a phone the chat fills the screen, the people and rooms are one
// button away (a disclosure button: aria-expanded, Escape closes and the
// focus goes back to it), and a room of the panel opens with a tap.
// CHAT_PHONE_SCREENSHOT=<file.png> saves the screen with the panel open.
func TestPhonePanelShowsMembersAndSwitchesRoom(t *testing.T) {
	nodes := startNodes(t, 1)
	base := nodes[0].URL()
	publish(t, base, "dev", "bo", "only in dev")
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "phone")
	phone(t, tab)
	openChat(t, tab, base+"/?room=lobby", "ana")

	// The chat fits the screen: the composer is in view, the page does
	// not scroll, the panel waits behind its button.
	fit := browsertest.Within(t, tab, wait, chromedp.Evaluate[map[string]float64](`({
		width: window.innerWidth,
		height: window.innerHeight,
		scroll: document.scrollingElement.scrollHeight,
		send: document.getElementById("send").getBoundingClientRect().bottom,
	})`))
	if fit["width"] != 390 || fit["height"] != 844 {
		t.Fatalf("the window is %v×%v, want 390×844", fit["width"], fit["height"])
	}
	if fit["scroll"] > fit["height"]+1 || fit["send"] > fit["height"] {
		t.Errorf("the page is %v px high and Send ends at %v px on an %v px screen", fit["scroll"], fit["send"], fit["height"])
	}
	if p := panel(t, tab); p.Shown || p.Expanded != "false" {
		t.Errorf("before the button is pressed: %+v; want the panel hidden, aria-expanded false", p)
	}
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS("#side-toggle")))

	// The button opens the panel over the chat, within the screen, and
	// moves the focus into it; ana is among the members.
	browsertest.Within(t, tab, wait, chromedp.Click(chromedp.CSS("#side-toggle")))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS(`#members li[data-user="ana"]`)))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS(`#rooms a[data-room="dev"]`)))
	p := panel(t, tab)
	if !p.Shown || p.Expanded != "true" || p.Focus != "side" {
		t.Errorf("after the button: %+v; want the panel shown, aria-expanded true, the focus on it", p)
	}
	if p.Left < 0 || p.Right > 390 || p.Top <= 0 || p.Bottom > 844 {
		t.Errorf("the panel spans x %v–%v, y %v–%v: not within the screen below the header", p.Left, p.Right, p.Top, p.Bottom)
	}
	if path := os.Getenv("CHAT_PHONE_SCREENSHOT"); path != "" {
		png := browsertest.Within(t, tab, wait, chromedp.CaptureScreenshot())
		if err := os.WriteFile(path, png, 0o644); err != nil { //nolint:gosec // a picture for the developer
			t.Fatal(err)
		}
	}

	// Escape closes it and gives the focus back to the button; Enter on
	// the button opens it again.
	browsertest.Within(t, tab, wait, chromedp.KeyEvent(kb.Escape))
	browsertest.Within(t, tab, wait, chromedp.WaitNotVisible(chromedp.CSS("#side")))
	if p := panel(t, tab); p.Shown || p.Expanded != "false" || p.Focus != "side-toggle" {
		t.Errorf("after Escape: %+v; want the panel hidden, aria-expanded false, the focus on the button", p)
	}
	browsertest.Within(t, tab, wait, chromedp.KeyEvent("\r"))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS(`#rooms a[data-room="dev"]`)))

	// A tap on a room opens it.
	browsertest.Within(t, tab, wait, chromedp.Click(chromedp.CSS(`#rooms a[data-room="dev"]`)))
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(tab, 2*time.Second)
		defer cancel()
		at, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? document.body.dataset.room : ""`))
		if err != nil || at != "dev" {
			return fmt.Errorf("the tab shows room %q (%v)", at, err)
		}
		return nil
	})
	waitState(t, tab, "connected")
	waitText(t, tab, "only in dev")
	if p := panel(t, tab); p.Shown {
		t.Errorf("the new room opens with the panel shown: %+v", p)
	}
}

// Without JavaScript a phone still gets everything: no button (it would
// do nothing), the panel after the chat, and the form posts the message.
func TestPhoneWithoutJavaScript(t *testing.T) {
	nodes := startNodes(t, 1)
	base := nodes[0].URL()
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "nojs")
	phone(t, tab)
	browsertest.Within(t, tab, wait, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	browsertest.Within(t, tab, wait, chromedp.Navigate(base+"/?room=lobby"))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS("#room-input")))
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS("#user")))
	browsertest.Within(t, tab, wait, chromedp.WaitNotVisible(chromedp.CSS("#side-toggle")))
	browsertest.Within(t, tab, wait, chromedp.WaitNotVisible(chromedp.CSS("#status")))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#user"), "ana"))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#message"), "posted without JavaScript"))
	browsertest.Within(t, tab, wait, chromedp.Click(chromedp.CSS("#send")))
	nodetest.CheckFor(t, wait, 100*time.Millisecond, func() error {
		got := history(t, base, "lobby")
		if len(got) != 1 || got[0] != "ana: posted without JavaScript" {
			return fmt.Errorf("history holds %q", got)
		}
		return nil
	})
}

// history returns the room's stored messages as "user: text".
func history(t *testing.T, base, room string) []string {
	t.Helper()
	resp, err := http.Get(base + "/rooms/" + room + "/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Messages []struct{ User, Text string } }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("history of %s: %v", room, err)
	}
	var out []string
	for _, m := range page.Messages {
		out = append(out, m.User+": "+m.Text)
	}
	return out
}
