package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/gateway"
)

func TestBadInputIsRejected(t *testing.T) {
	node := nodetest.StartNode(t)
	g := startGateway(t, "gw-bad", node.ClientURL(), func(o *gateway.Options) {
		o.MaxMessageBytes = 100
		o.BodyTimeout = 500 * time.Millisecond
	})
	published := nodetest.SubscribeSync(t, nodetest.Connect(t, node.ClientURL()), "chat.room.>")

	const jsonType = "application/json"
	const formType = "application/x-www-form-urlencoded"
	msgs := "/rooms/lobby/messages"
	jsonBody := func(user, text string) string {
		b, _ := json.Marshal(map[string]string{"user": user, "text": text})
		return string(b)
	}
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"empty text", "POST", msgs, jsonType, jsonBody("ana", ""), 400, "empty_message"},
		{"missing text", "POST", msgs, jsonType, `{"user":"ana"}`, 400, "empty_message"},
		{"whitespace text", "POST", msgs, jsonType, jsonBody("ana", " \n\t "), 400, "empty_message"},
		{"empty form message", "POST", "/publish", formType, form("message", "   "), 400, "empty_message"},
		{"form without a message field", "POST", "/publish", formType, form("text", "hi"), 400, "empty_message"},
		{"text over the limit", "POST", msgs, jsonType, jsonBody("ana", strings.Repeat("x", 101)), 413, "message_too_large"},
		{"form text over the limit", "POST", "/publish", formType, form("message", strings.Repeat("é", 51)), 413, "message_too_large"},
		{"invalid UTF-8 in JSON", "POST", msgs, jsonType, "{\"text\":\"a\xffb\"}", 400, "invalid_utf8"},
		{"invalid UTF-8 in form", "POST", "/publish", formType, "message=a%FFb", 400, "invalid_utf8"},
		{"control character", "POST", msgs, jsonType, jsonBody("ana", "bell\u0007"), 400, "invalid_characters"},
		{"escape character", "POST", "/publish", formType, form("message", "\x1b[31mred"), 400, "invalid_characters"},
		{"room with a dot", "POST", "/rooms/a.b/messages", jsonType, jsonBody("ana", "x"), 400, "invalid_room"},
		{"room with a star", "POST", "/rooms/a*/messages", jsonType, jsonBody("ana", "x"), 400, "invalid_room"},
		{"room with >", "POST", "/rooms/%3E/messages", jsonType, jsonBody("ana", "x"), 400, "invalid_room"},
		{"room with a space", "POST", "/rooms/a%20b/messages", jsonType, jsonBody("ana", "x"), 400, "invalid_room"},
		{"room too long", "POST", "/rooms/" + strings.Repeat("r", 65) + "/messages", jsonType, jsonBody("ana", "x"), 400, "invalid_room"},
		{"form room with a dot", "POST", "/publish", formType, form("message", "x", "room", "a.b"), 400, "invalid_room"},
		{"form room wildcard", "POST", "/publish", formType, form("message", "x", "room", ">"), 400, "invalid_room"},
		{"listen room with a dot", "GET", "/listen?room=a.b", "", "", 400, "invalid_room"},
		{"events room with a star", "GET", "/rooms/a*/events", "", "", 400, "invalid_room"},
		{"history room with a space", "GET", "/rooms/a%20b/messages", "", "", 400, "invalid_room"},
		{"user too long", "POST", msgs, jsonType, jsonBody(strings.Repeat("u", 65), "x"), 400, "invalid_user"},
		{"user with control character", "POST", msgs, jsonType, jsonBody("a\u0000b", "x"), 400, "invalid_user"},
		{"form user with newline", "POST", "/publish", formType, form("message", "x", "user", "a\nb"), 400, "invalid_user"},
		{"malformed JSON", "POST", msgs, jsonType, `{"text":`, 400, "invalid_json"},
		{"JSON array", "POST", msgs, jsonType, `["x"]`, 400, "invalid_json"},
		{"JSON with trailing data", "POST", msgs, jsonType, `{"text":"x"} {"text":"y"}`, 400, "invalid_json"},
		{"JSON text of wrong type", "POST", msgs, jsonType, `{"text":42}`, 400, "invalid_json"},
		{"wrong content type", "POST", msgs, "text/plain", "hello", 415, "unsupported_media_type"},
		{"no content type", "POST", msgs, "", jsonBody("ana", "x"), 415, "unsupported_media_type"},
		{"form publish as JSON", "POST", "/publish", jsonType, jsonBody("ana", "x"), 415, "unsupported_media_type"},
		{"huge body", "POST", msgs, jsonType, jsonBody("ana", strings.Repeat("x", 1<<20)), 413, "body_too_large"},
		{"bad history limit", "GET", "/rooms/lobby/messages?limit=0", "", "", 400, "invalid_limit"},
		{"history limit over 500", "GET", "/rooms/lobby/messages?limit=501", "", "", 400, "invalid_limit"},
		{"malformed cursor", "GET", "/rooms/lobby/messages?before=zzz", "", "", 400, "invalid_cursor"},
		{"unknown route", "GET", "/nope", "", "", 404, "not_found"},
		{"unknown static file", "GET", "/static/nope.js", "", "", 404, "not_found"},
		{"wrong method on messages", "DELETE", msgs, "", "", 405, "method_not_allowed"},
		{"wrong method on publish", "GET", "/publish", "", "", 405, "method_not_allowed"},
		{"wrong method on events", "POST", "/rooms/lobby/events", "", "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, g.URL()+c.path, c.ctype, strings.NewReader(c.body), map[string]string{"Accept": "application/json"})
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("status %d code %q, want %d %q: %s", r.status, r.errorCode(), c.status, c.code, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.header.Get("X-Chat-Node") != "gw-bad" {
				t.Errorf("headers %v", r.header)
			}
		})
	}

	t.Run("body over the limit without a length", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			defer pw.Close()
			chunk := strings.Repeat("x", 1024)
			pw.Write([]byte(`{"text":"`))
			for range 2048 {
				if _, err := pw.Write([]byte(chunk)); err != nil {
					return
				}
			}
		}()
		req, _ := http.NewRequest(http.MethodPost, g.URL()+msgs, pr)
		req.Header.Set("Content-Type", jsonType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength > 0 {
			t.Fatalf("status %d (content length %d), want 413 for a chunked body", resp.StatusCode, req.ContentLength)
		}
		pr.Close()
	})

	t.Run("body sent slowly", func(t *testing.T) {
		conn, err := net.Dial("tcp", g.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n{\"text\":\"", msgs, jsonType)
		conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
	})

	// Nothing was published, and the gateway still serves.
	if r := do(t, http.MethodGet, g.URL()+"/healthz", "", nil, nil); r.status != http.StatusOK {
		t.Fatalf("healthz after bad input: %d", r.status)
	}
	postJSON(t, g.URL(), "lobby", "ana", "still works")
	msg, err := published.NextMsg(wait)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "still works") {
		t.Fatalf("first message on the bus was %q: bad input was published", msg.Data)
	}
	r := do(t, http.MethodGet, g.URL()+"/rooms/lobby/messages", "", nil, nil)
	var page struct{ Messages []json.RawMessage }
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Messages) != 1 {
		t.Fatalf("history holds %d messages, want 1: %s", len(page.Messages), r.body)
	}
}
