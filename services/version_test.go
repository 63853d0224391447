package services

import "testing"

func TestMicroVersion(t *testing.T) {
	for _, c := range []struct{ in, want, meta string }{
		{"1.2.3", "1.2.3", ""},
		{"1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5", ""},
		{"f0011a5-dirty", "0.0.0-dev", "f0011a5-dirty"},
		{"v1.2.3", "0.0.0-dev", "v1.2.3"},
		{"dev", "0.0.0-dev", "dev"},
		{"", "0.0.0-dev", ""},
	} {
		got, md := MicroVersion(c.in)
		if got != c.want || md["version"] != c.meta {
			t.Errorf("MicroVersion(%q) = %q, %v; want %q, version %q", c.in, got, md, c.want, c.meta)
		}
	}
}
