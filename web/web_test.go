package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestStaticFiles(t *testing.T) {
	for _, name := range []string{"app.js", "auth.js", "style.css", "nojs.css"} {
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

	if !strings.Contains(out, `<strong id="node">&lt;b&gt;gw-1&lt;/b&gt;</strong>`) {
		t.Errorf("node name not HTML-escaped in #node:\n%s", out)
	}
	if strings.Contains(out, "<b>gw-1</b>") {
		t.Errorf("raw node markup in output:\n%s", out)
	}
	for _, want := range []string{
		`action="/publish"`,
		`/static/app.js`,
		`/static/style.css`,
		`data-room="lobby"`,
		`<title>ChatScalable</title>`,
		`served by node`,
		`ChatScalable test`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestIndexEscapesRoomAndVersion(t *testing.T) {
	// The gateway only passes valid room names, but the template must not
	// rely on that.
	out := render(t, PageData{Node: "gw-1", Room: `"><script>x</script>`, Version: "<i>v</i>"})
	if strings.Contains(out, "<script>x</script>") || strings.Contains(out, "<i>v</i>") {
		t.Errorf("room or version not escaped:\n%s", out)
	}
}

// idAttr finds id="…" attributes; tagWithID the whole start tag holding one.
var idAttr = regexp.MustCompile(`\sid="([^"]+)"`)

func tagWithID(t *testing.T, out, id string) string {
	t.Helper()
	re := regexp.MustCompile(`<[a-z]+\b[^>]*\sid="` + regexp.QuoteMeta(id) + `"[^>]*>`)
	tag := re.FindString(out)
	if tag == "" {
		t.Errorf("no element with id %q", id)
	}
	return tag
}

func TestIndexHasRequiredElements(t *testing.T) {
	out := render(t, PageData{Node: "gw-1", Room: "lobby", Version: "test"})

	// The browser tests and app.js depend on these ids; each appears once.
	counts := map[string]int{}
	for _, m := range idAttr.FindAllStringSubmatch(out, -1) {
		counts[m[1]]++
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("id %q appears %d times", id, n)
		}
	}
	for _, want := range []struct{ id, tag string }{
		{"node", "strong"},
		{"status", "p"},
		{"messages", "ol"},
		{"send-form", "form"},
		{"user", "input"},
		{"message", "textarea"},
		{"send", "button"},
		{"error", "p"},
		{"nick-dialog", "dialog"},
		{"nick-form", "form"},
		{"nick-input", "input"},
		{"nick-change", "button"},
		{"nick-current", "strong"},
		{"rooms", "ul"},
		{"room-form", "form"},
		{"room-input", "input"},
		{"room-error", "p"},
		{"members", "ul"},
		{"new-messages", "button"},
		{"history-status", "p"},
		{"auth-status", "p"},
		{"side-toggle", "button"},
		{"side", "aside"},
	} {
		tag := tagWithID(t, out, want.id)
		if tag != "" && !strings.HasPrefix(tag, "<"+want.tag+" ") {
			t.Errorf("#%s is %s, want a <%s>", want.id, tag, want.tag)
		}
	}

	// Attributes the page's behaviour relies on.
	for id, attrs := range map[string][]string{
		"send-form":    {`method="post"`, `action="/publish"`},
		"user":         {`name="user"`, `maxlength="64"`},
		"message":      {`name="message"`},
		"send":         {`type="submit"`},
		"status":       {`data-state="connecting"`},
		"error":        {`role="alert"`},
		"auth-status":  {`role="alert"`},
		"room-error":   {`role="alert"`},
		"nick-input":   {`maxlength="64"`, `required`},
		"new-messages": {`type="button"`, `hidden`},
		"nick-change":  {`type="button"`},
		// The narrow screens' button of the side panel: a disclosure
		// button, shown by app.js.
		"side-toggle": {`type="button"`, `aria-controls="side"`, `aria-expanded="false"`, `hidden`},
	} {
		tag := tagWithID(t, out, id)
		for _, a := range attrs {
			if tag != "" && !strings.Contains(tag, a) {
				t.Errorf("#%s lacks %s: %s", id, a, tag)
			}
		}
	}
	if !regexp.MustCompile(`<input type="hidden" name="room" value="lobby">`).MatchString(out) {
		t.Error(`the send form lacks its hidden room field`)
	}
	// The nickname dialog holds its form and input.
	dialog := out[strings.Index(out, `<dialog id="nick-dialog"`):]
	dialog = dialog[:strings.Index(dialog, "</dialog>")]
	for _, want := range []string{`id="nick-form"`, `id="nick-input"`, `type="submit"`} {
		if !strings.Contains(dialog, want) {
			t.Errorf("#nick-dialog lacks %s", want)
		}
	}
}

// Every form control has a <label for=…>.
func TestIndexControlsAreLabelled(t *testing.T) {
	out := render(t, PageData{Node: "gw-1", Room: "lobby"})
	for _, id := range []string{"user", "message", "nick-input", "room-input"} {
		if !strings.Contains(out, `<label for="`+id+`"`) {
			t.Errorf("#%s has no <label for>", id)
		}
	}
}

// The keyboard reaches the message box and the Send button before
// anything else: they come first in the document among focusable
// elements.
func TestIndexTabOrderStartsAtMessageBox(t *testing.T) {
	out := render(t, PageData{Node: "gw-1", Room: "lobby"})
	body := out[strings.Index(out, "<body"):]
	focusable := regexp.MustCompile(`<(?:textarea|button|select|a\s[^>]*href|input(?:\s[^>]*)?\stype="(?:text|submit)")[^>]*>`)
	var ids []string
	for _, tag := range focusable.FindAllString(body, -1) {
		if strings.Contains(tag, `id="user"`) {
			continue // the name field, hidden from view when JavaScript runs
		}
		m := idAttr.FindStringSubmatch(tag)
		if m == nil {
			ids = append(ids, tag)
			continue
		}
		ids = append(ids, m[1])
	}
	if len(ids) < 2 || ids[0] != "message" || ids[1] != "send" {
		t.Errorf("focusable elements in order: %q; want message, send first", ids)
	}
	if strings.Contains(body, "tabindex=\"1") || regexp.MustCompile(`tabindex="[1-9]`).MatchString(body) {
		t.Error("a positive tabindex breaks the natural tab order")
	}
}

var (
	scriptTag  = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	srcAttr    = regexp.MustCompile(`(?i)\ssrc\s*=`)
	styleAttr  = regexp.MustCompile(`(?i)\sstyle\s*=`)
	handlerAtt = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	external   = regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"(?:https?:)?//`)
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
	if m := external.FindString(out); m != "" {
		t.Errorf("output loads an external resource: %q", m)
	}
}

// The script and stylesheet stay within the page's policy and rules:
// no external resources, no style attributes, user text only as text.
func TestStaticFilesCSPSafe(t *testing.T) {
	css, err := fs.ReadFile(Static(), "style.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app.js", "auth.js"} {
		js, err := fs.ReadFile(Static(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{
			"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
			`setAttribute("style"`, "setAttribute('style'", ".cssText",
			"http://", "https://",
		} {
			if strings.Contains(string(js), bad) {
				t.Errorf("%s uses %q", name, bad)
			}
		}
	}
	for _, bad := range []string{"@import", "url(", "http://", "https://"} {
		if strings.Contains(string(css), bad) {
			t.Errorf("style.css uses %q", bad)
		}
	}
	for _, want := range []string{"prefers-color-scheme: dark", ":focus-visible", "pre-wrap"} {
		if !strings.Contains(string(css), want) {
			t.Errorf("style.css lacks %q", want)
		}
	}
}

// The page learns from <body> whether the gateway requires tokens, which
// cookie carries the token to the event stream and where to get one; the
// values are escaped, and the token URL normalised as a URL.
func TestIndexTellsThePageHowToSignIn(t *testing.T) {
	bodyTag := regexp.MustCompile(`<body\b[^>]*>`)
	off := bodyTag.FindString(render(t, PageData{Node: "gw-1", Room: "lobby", Auth: "off"}))
	if !strings.Contains(off, `data-auth="off" data-auth-cookie="" data-token-url="" data-signin-url=""`) {
		t.Errorf("auth off: <body> lacks data-auth=\"off\" and an empty cookie and token URL: %s", off)
	}
	body := bodyTag.FindString(render(t, PageData{Node: "gw-1", Room: "lobby", Auth: "jwt", AuthCookie: "chat_token", TokenURL: `https://id.example/token?a=1&b="2"`, SignInURL: `/auth/signin?x="><b>`}))
	for _, want := range []string{
		`data-auth="jwt"`,
		`data-auth-cookie="chat_token"`,
		`data-token-url="https://id.example/token?a=1&amp;b=%222%22"`,
		`data-signin-url="/auth/signin?x=%22%3e%3cb%3e"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("<body> lacks %s: %s", want, body)
		}
	}
}

// app.js is a module that takes its token handling from auth.js, which
// the page serves next to it.
func TestAppImportsAuth(t *testing.T) {
	out := render(t, PageData{Node: "gw-1", Room: "lobby"})
	if !strings.Contains(out, `<script type="module" src="/static/app.js">`) {
		t.Error("app.js is not loaded as a module")
	}
	js, err := fs.ReadFile(Static(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^import \{[^}]+\} from "\./auth\.js";$`).Match(js) {
		t.Error(`app.js does not import from "./auth.js"`)
	}
}
