package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAnswersSayWhatHappened covers answers that used to leave a newcomer
// guessing: a form publish from curl, a page for a name that is no room,
// a wrong method, and the end of a room's history.
func TestAnswersSayWhatHappened(t *testing.T) {
	g := startGateway(t, "gw-answers", "")

	t.Run("form publish without Accept: JSON says where it went", func(t *testing.T) {
		form := url.Values{"message": {"hello"}, "user": {"ana"}, "room": {"dev"}}.Encode()
		r := do(t, http.MethodPost, g.URL()+"/publish", "application/x-www-form-urlencoded", strings.NewReader(form), nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/?room=dev" ||
			!strings.HasPrefix(string(r.body), "stored in #dev as message ") {
			t.Fatalf("status %d, Location %q, body %q", r.status, r.header.Get("Location"), r.body)
		}
	})

	t.Run("a page for a name that is not a room's says so", func(t *testing.T) {
		r := do(t, http.MethodGet, g.URL()+"/?room=bad%20room", "", nil, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.body), "is not a room name") || !strings.Contains(string(r.body), "bad room") {
			t.Fatalf("status %d, type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if r := do(t, http.MethodGet, g.URL()+"/?room=dev", "", nil, nil); r.status != http.StatusOK {
			t.Errorf("a good room's page: %d", r.status)
		}
	})

	t.Run("405 names the allowed methods", func(t *testing.T) {
		for path, want := range map[string]string{
			"/rooms/lobby/messages": "GET, POST",
			"/rooms/lobby/events":   "GET",
			"/publish":              "POST",
		} {
			r := do(t, http.MethodPatch, g.URL()+path, "", nil, nil)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != want {
				t.Errorf("PATCH %s: status %d, Allow %q, want %q", path, r.status, r.header.Get("Allow"), want)
			}
		}
	})

	t.Run("history pages carry the cursor of the page before", func(t *testing.T) {
		for _, text := range []string{"one", "two", "three"} {
			postJSON(t, g.URL(), "paged", "ana", text)
		}
		type page struct {
			Messages []struct{ Text string }
			Next     *string
		}
		get := func(query string) page {
			r := do(t, http.MethodGet, g.URL()+"/rooms/paged/messages?"+query, "", nil, nil)
			var p page
			if r.status != http.StatusOK || json.Unmarshal(r.body, &p) != nil {
				t.Fatalf("history ?%s: %d %s", query, r.status, r.body)
			}
			return p
		}
		newest := get("limit=2")
		if len(newest.Messages) != 2 || newest.Messages[0].Text != "two" || newest.Next == nil {
			t.Fatalf("newest page: %+v", newest)
		}
		older := get("limit=2&before=" + url.QueryEscape(*newest.Next))
		if len(older.Messages) != 1 || older.Messages[0].Text != "one" || older.Next != nil {
			t.Fatalf("the page before: %+v", older)
		}
	})
}
