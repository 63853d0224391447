package services

import "testing"

func TestMicroVersion(t *testing.T) {
	for _, c := range []struct{ in, want, meta string }{
		{"1.2.3", "1.2.3", ""},
		{"1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5", ""},
		{"f0011a5-dirty", "0.0.0-dev+f0011a5-dirty", "f0011a5-dirty"},
		{"0123456", "0.0.0-dev+0123456", "0123456"},
		{"v1.2.3", "1.2.3", "v1.2.3"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3-4-gabc1234-dirty", "v1.2.3-4-gabc1234-dirty"},
		{"dev", "0.0.0-dev+dev", "dev"},
		{"my build/2 ..x", "0.0.0-dev+my-build-2-.x", "my build/2 ..x"},
		{"", "0.0.0-dev", ""},
	} {
		got, md := MicroVersion(c.in)
		if !semVer.MatchString(got) {
			t.Errorf("MicroVersion(%q) = %q, not SemVer", c.in, got)
		}
		if got != c.want || md["version"] != c.meta {
			t.Errorf("MicroVersion(%q) = %q, %v; want %q, version %q", c.in, got, md, c.want, c.meta)
		}
	}
}
