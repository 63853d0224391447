package api

import "testing"

func TestPagePolicyAllowsTheTokenOrigin(t *testing.T) {
	for url, want := range map[string]string{
		"":                                  "default-src 'self'",
		"/auth/token":                       "default-src 'self'",
		"https://id.example:8443/token?x=1": "default-src 'self'; connect-src 'self' https://id.example:8443",
		"http://127.0.0.1:9000/session/jwt": "default-src 'self'; connect-src 'self' http://127.0.0.1:9000",
	} {
		if got := pagePolicy(url); got != want {
			t.Errorf("pagePolicy(%q) = %q, want %q", url, got, want)
		}
	}
}
