package api

import (
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

// messagesRoute finds the publish route exactly where the router does.
func TestMessagesRouteMatchesTheRouter(t *testing.T) {
	router := mux.NewRouter()
	router.SkipClean(true)
	router.HandleFunc(messagesTemplate, nil).Methods("POST")
	for _, c := range []struct{ method, target string }{
		{"POST", "/rooms/lobby/messages"}, {"POST", "/rooms/a-b_c/messages"}, {"GET", "/rooms/lobby/messages"},
		{"POST", "/rooms//messages"}, {"POST", "/rooms/a/b/messages"}, {"POST", "/rooms/a%2Fb/messages"},
		{"POST", "/rooms/lobby/messages/"}, {"POST", "/rooms/lobby"}, {"POST", "/rooms/messages"},
		{"POST", "/rooms/x.y/messages"}, {"POST", "/rooms/%20/messages"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		var m mux.RouteMatch
		routed := router.Match(r, &m)
		room, ok := messagesRoute(r)
		if ok != routed || ok && room != m.Vars["room"] {
			t.Errorf("%s %s: messagesRoute = %q, %v; the router: %v, %q", c.method, c.target, room, ok, routed, m.Vars["room"])
		}
	}
}
