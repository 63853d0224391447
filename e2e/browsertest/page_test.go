package browsertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/browsertest"
	"github.com/chatscalable/chatscalable/gateway"
	"github.com/chatscalable/chatscalable/services/inprocess"
	"github.com/chromedp/chromedp"
)

const wait = 20 * time.Second

// node is a gateway that can be stopped and started again on the same
// address, as a restarted server would be.
type node struct {
	t    *testing.T
	opts gateway.Options
	g    *gateway.Gateway
}

func (n *node) URL() string { return "http://" + n.opts.HTTPAddr }

func (n *node) start() {
	n.t.Helper()
	g, err := gateway.Start(context.Background(), n.opts)
	if err != nil {
		n.t.Fatalf("start %s: %v", n.opts.NodeName, err)
	}
	n.g = g
	nodetest.CheckFor(n.t, wait, 20*time.Millisecond, g.Ready)
}

func (n *node) stop() {
	n.t.Helper()
	if n.g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.g.Shutdown(ctx); err != nil {
		n.t.Errorf("stop %s: %v", n.opts.NodeName, err)
	}
	n.g = nil
}

// startNodes starts n gateways sharing one NATS node, on fixed loopback
// ports; the first also runs the presence and rooms services.
func startNodes(t *testing.T, count int, mod ...func(*gateway.Options)) []*node {
	t.Helper()
	bus := nodetest.StartNode(t)
	var nodes []*node
	for i := range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		services := gateway.ServicesOff
		if i == 0 {
			services = gateway.ServicesInProcess
		}
		n := &node{t: t, opts: gateway.Options{
			HTTPAddr:      addr,
			NodeName:      fmt.Sprintf("gw-%d", i+1),
			NATSURL:       bus.ClientURL(),
			Services:      services,
			StartServices: inprocess.Starter(inprocess.Options{PresenceWarmUp: 100 * time.Millisecond}),
		}}
		for _, m := range mod {
			m(&n.opts)
		}
		n.start()
		t.Cleanup(n.stop)
		nodes = append(nodes, n)
	}
	return nodes
}

// openChat opens url in tab, answers the nickname question with nick and
// waits until the live connection is up.
func openChat(t *testing.T, tab context.Context, url, nick string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.Navigate(url))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("nick-dialog").open`))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#nick-input"), nick+"\r"))
	waitState(t, tab, "connected")
}

func waitState(t *testing.T, tab context.Context, state string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](
		`(s) => document.getElementById("status").dataset.state === s`, chromedp.WithPollingArgs(state)))
}

// send types text into the message box and presses Enter.
func send(t *testing.T, tab context.Context, text string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#message"), text+"\r"))
}

func waitText(t *testing.T, tab context.Context, text string) {
	t.Helper()
	browsertest.Within(t, tab, wait, chromedp.PollFunction[bool](
		`(t) => [...document.querySelectorAll("#messages li.message .text")].some((e) => e.textContent === t)`,
		chromedp.WithPollingArgs(text)))
}

func texts(t *testing.T, tab context.Context) []string {
	t.Helper()
	return browsertest.Within(t, tab, wait, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#messages li.message .text")].map((e) => e.textContent)`))
}

func publish(t *testing.T, base, room, user, text string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"user": user, "text": text})
	resp, err := http.Post(base+"/rooms/"+room+"/messages", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}

func TestTwoTabsOnTwoNodesChat(t *testing.T) {
	nodes := startNodes(t, 2)
	browser := browsertest.NewBrowser(t)
	a := browsertest.NewTab(t, browser, "ana")
	b := browsertest.NewTab(t, browser, "bo")
	openChat(t, a, nodes[0].URL(), "ana")
	openChat(t, b, nodes[1].URL(), "bo")
	for tab, want := range map[context.Context]string{a: "gw-1", b: "gw-2"} {
		if got := browsertest.Within(t, tab, wait, chromedp.Text(chromedp.CSS("#node"))); got != want {
			t.Errorf("#node shows %q, want %q", got, want)
		}
	}
	send(t, a, "hello from ana on gw-1")
	waitText(t, b, "hello from ana on gw-1")
	send(t, b, "hi ana, bo here on gw-2")
	waitText(t, a, "hi ana, bo here on gw-2")
	// Own messages are marked as such.
	own := browsertest.Within(t, a, wait, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#messages li.message.own .text")].map((e) => e.textContent)`))
	if len(own) != 1 || own[0] != "hello from ana on gw-1" {
		t.Errorf("ana's own messages: %q", own)
	}
	if path := os.Getenv("CHAT_SCREENSHOT"); path != "" {
		png := browsertest.Within(t, b, wait, chromedp.CaptureScreenshot())
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", filepath.Clean(path))
	}
}

func TestUserTextNeverBecomesHTML(t *testing.T) {
	nodes := startNodes(t, 1)
	browser := browsertest.NewBrowser(t)
	tab := browsertest.NewTab(t, browser, "xss")
	openChat(t, tab, nodes[0].URL(), `<b>nick</b>`)
	browsertest.Within(t, tab, wait, chromedp.Evaluate[bool](`window.__alerted = false; window.alert = () => { window.__alerted = true; }; true`))
	payloads := []string{`<img src=x onerror=alert(1)>`, `<script>window.__ran = true; alert(2)</script>`}
	for _, p := range payloads {
		publish(t, nodes[0].URL(), "lobby", `<img src=y onerror=alert(3)>`, p)
	}
	send(t, tab, `<svg onload=alert(4)>`)
	for _, p := range append(payloads, `<svg onload=alert(4)>`) {
		waitText(t, tab, p)
	}
	got := browsertest.Within(t, tab, wait, chromedp.Evaluate[map[string]any](`({
		elements: document.querySelectorAll("#messages img, #messages script, #messages svg, #messages b").length,
		alerted: window.__alerted,
		ran: window.__ran === true,
	})`))
	if got["elements"] != float64(0) || got["alerted"] != false || got["ran"] != false {
		t.Fatalf("user text became HTML: %v", got)
	}
}

func TestReloadShowsHistoryAndRoomsAreSeparate(t *testing.T) {
	nodes := startNodes(t, 1)
	base := nodes[0].URL()
	for i := range 3 {
		publish(t, base, "lobby", "ana", fmt.Sprintf("lobby %d", i))
	}
	publish(t, base, "dev", "bo", "only in dev")
	browser := browsertest.NewBrowser(t)
	tab := browsertest.NewTab(t, browser, "history")
	openChat(t, tab, base, "cy")
	waitText(t, tab, "lobby 2")
	browsertest.Within(t, tab, wait, chromedp.Reload())
	waitState(t, tab, "connected") // the nickname is remembered: no question
	waitText(t, tab, "lobby 2")
	if got := texts(t, tab); strings.Join(got, "|") != "lobby 0|lobby 1|lobby 2" {
		t.Fatalf("after reload: %q", got)
	}
	browsertest.Within(t, tab, wait, chromedp.Navigate(base+"/?room=dev"))
	waitState(t, tab, "connected")
	waitText(t, tab, "only in dev")
	if got := texts(t, tab); len(got) != 1 {
		t.Fatalf("room dev shows %q", got)
	}
	// A link with the room in the hash opens that room too.
	browsertest.Within(t, tab, wait, chromedp.Navigate(base+"/#lobby"))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.body.dataset.room === "lobby"`))
	waitText(t, tab, "lobby 0")
}

func TestTabCatchesUpAfterItsGatewayRestarts(t *testing.T) {
	nodes := startNodes(t, 2)
	browser := browsertest.NewBrowser(t)
	tab := browsertest.NewTab(t, browser, "restart")
	openChat(t, tab, nodes[1].URL(), "ana")
	publish(t, nodes[0].URL(), "lobby", "bo", "before")
	waitText(t, tab, "before")

	nodes[1].stop()
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`["reconnecting", "offline"].includes(document.getElementById("status").dataset.state)`))
	var missed []string
	for i := range 5 {
		missed = append(missed, fmt.Sprintf("missed %d", i))
		publish(t, nodes[0].URL(), "lobby", "bo", missed[i])
	}
	nodes[1].start()
	waitState(t, tab, "connected")
	waitText(t, tab, "missed 4")
	if got, want := strings.Join(texts(t, tab), "|"), "before|"+strings.Join(missed, "|"); got != want {
		t.Fatalf("after the restart the tab shows %q, want %q", got, want)
	}
}

func TestTooLongMessageShowsInlineErrorAndIsNotSent(t *testing.T) {
	nodes := startNodes(t, 1)
	browser := browsertest.NewBrowser(t)
	tab := browsertest.NewTab(t, browser, "too-long")
	openChat(t, tab, nodes[0].URL(), "ana")
	long := strings.Repeat("x", 4097)
	browsertest.Within(t, tab, wait, chromedp.SetValue(chromedp.CSS("#message"), long))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#message"), "\r"))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("error").textContent.includes("4096")`))
	resp, err := http.Get(nodes[0].URL() + "/rooms/lobby/messages")
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Messages []json.RawMessage }
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Messages) != 0 {
		t.Fatalf("a too-long message was sent: %d in history", len(page.Messages))
	}
}

// The page checks a message against the gateway's --max-message-bytes,
// not a limit of its own: a gateway that takes 8000 bytes gets a
// 5000-byte message, one that takes 100 refuses 101 in the page.
func TestPageFollowsTheGatewaysMessageLimit(t *testing.T) {
	browser := browsertest.NewBrowser(t)
	large := startNodes(t, 1, func(o *gateway.Options) { o.MaxMessageBytes = 8000 })
	tab := browsertest.NewTab(t, browser, "large")
	openChat(t, tab, large[0].URL(), "ana")
	browsertest.Within(t, tab, wait, chromedp.SetValue(chromedp.CSS("#message"), strings.Repeat("y", 5000)))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#message"), "\r"))
	nodetest.CheckFor(t, wait, 50*time.Millisecond, func() error {
		resp, err := http.Get(large[0].URL() + "/rooms/lobby/messages")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var page struct{ Messages []struct{ Text string } }
		json.NewDecoder(resp.Body).Decode(&page)
		if len(page.Messages) != 1 || len(page.Messages[0].Text) != 5000 {
			return fmt.Errorf("history holds %d messages, want the 5000-byte one", len(page.Messages))
		}
		return nil
	})

	small := startNodes(t, 1, func(o *gateway.Options) { o.MaxMessageBytes = 100 })
	tab = browsertest.NewTab(t, browser, "small")
	openChat(t, tab, small[0].URL(), "bo")
	browsertest.Within(t, tab, wait, chromedp.SetValue(chromedp.CSS("#message"), strings.Repeat("z", 101)))
	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#message"), "\r"))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("error").textContent.includes("100")`))
}

func TestKeyboardAlone(t *testing.T) {
	nodes := startNodes(t, 1)
	browser := browsertest.NewBrowser(t)
	tab := browsertest.NewTab(t, browser, "keyboard")
	openChat(t, tab, nodes[0].URL(), "ana")
	// Tab through the page until the message box has the focus.
	for i := 0; ; i++ {
		if i == 30 {
			t.Fatal("the message box cannot be reached with the Tab key")
		}
		browsertest.Within(t, tab, wait, chromedp.KeyEvent("\t"))
		if id := browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.activeElement && document.activeElement.id`)); id == "message" {
			break
		}
	}
	browsertest.Within(t, tab, wait, chromedp.KeyEvent("typed without a mouse"))
	browsertest.Within(t, tab, wait, chromedp.KeyEvent("\r"))
	waitText(t, tab, "typed without a mouse")
}

// Before a name is chosen the page already reads the room live, and the
// header offers to choose a name instead of a bare "You are".
func TestPageReadsBeforeANameIsChosen(t *testing.T) {
	nodes := startNodes(t, 1)
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "unnamed")
	browsertest.Within(t, tab, wait, chromedp.Navigate(nodes[0].URL()))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("nick-dialog").open`))
	waitState(t, tab, "connected")
	publish(t, nodes[0].URL(), "lobby", "bo", "said while you were choosing a name")
	waitText(t, tab, "said while you were choosing a name")
	me := func() string {
		return browsertest.Within(t, tab, wait, chromedp.Evaluate[string](`document.getElementById("me").innerText.replace(/\s+/g, " ").trim()`))
	}
	if got := me(); got != "Choose a name" {
		t.Errorf("with no name the header shows %q, want %q", got, "Choose a name")
	}
	if open := browsertest.Within(t, tab, wait, chromedp.Evaluate[bool](`document.getElementById("nick-dialog").open`)); !open {
		t.Error("the name dialog closed by itself")
	}

	browsertest.Within(t, tab, wait, chromedp.SendKeys(chromedp.CSS("#nick-input"), "ana\r"))
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](`document.getElementById("me").innerText.includes("Change name")`))
	if got := me(); got != "You are ana Change name" {
		t.Errorf("named, the header shows %q", got)
	}
	// The stream reconnects under the name, without losing what was read.
	browsertest.Within(t, tab, wait, chromedp.WaitVisible(chromedp.CSS(`#members li[data-user="ana"]`)))
	waitState(t, tab, "connected")
	publish(t, nodes[0].URL(), "lobby", "bo", "and after")
	waitText(t, tab, "and after")
	send(t, tab, "hi bo")
	waitText(t, tab, "hi bo")
	if got := strings.Join(texts(t, tab), "|"); got != "said while you were choosing a name|and after|hi bo" {
		t.Errorf("the tab shows %q", got)
	}
}

// The current room's message count in the rooms list changes in the same
// moment as the message appears, for one's own and for others' messages.
func TestRoomCountMovesWithTheMessage(t *testing.T) {
	nodes := startNodes(t, 1)
	base := nodes[0].URL()
	publish(t, base, "lobby", "bo", "one")
	publish(t, base, "lobby", "bo", "two")
	tab := browsertest.NewTab(t, browsertest.NewBrowser(t), "count")
	openChat(t, tab, base+"/?room=lobby", "ana")
	const meta = `(() => {
		const a = document.querySelector('#rooms a[data-room="lobby"]');
		const m = a && a.parentElement.querySelector(".room-meta");
		return m ? m.textContent : "";
	})()`
	browsertest.Within(t, tab, wait, chromedp.Poll[bool](meta+`.startsWith("2 messages")`))
	// Note the count in the moment each message is added to the list.
	browsertest.Within(t, tab, wait, chromedp.Evaluate[bool](`window.__counts = {};
		new MutationObserver(() => {
			const last = [...document.querySelectorAll("#messages li.message .text")].pop();
			if (last) window.__counts[last.textContent] = `+meta+`;
		}).observe(document.getElementById("messages"), { childList: true });
		true`))

	send(t, tab, "three")
	waitText(t, tab, "three")
	publish(t, base, "lobby", "bo", "four")
	waitText(t, tab, "four")
	got := browsertest.Within(t, tab, wait, chromedp.Evaluate[map[string]string](`window.__counts`))
	for text, want := range map[string]string{"three": "3 messages", "four": "4 messages"} {
		if !strings.HasPrefix(got[text], want) {
			t.Errorf("when %q appeared the room showed %q, want %q", text, got[text], want)
		}
	}
}
