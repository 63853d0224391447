package services

import (
	"regexp"
	"strings"
)

var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// MicroVersion returns the version a micro service may register, which
// must be SemVer, for the build version v: v itself when it is SemVer, or
// without its leading "v" when that makes it so (a git tag's description,
// v1.2.3-4-gabc1234); any other build (a commit, "dev") registers as
// 0.0.0-dev with the build in SemVer's build metadata
// (0.0.0-dev+f0011a5-dirty), so `nats micro ls` shows which build runs.
// The metadata's "version" holds v whenever the registered version
// differs from it.
func MicroVersion(v string) (string, map[string]string) {
	if semVer.MatchString(v) {
		return v, map[string]string{}
	}
	md := map[string]string{}
	if v != "" {
		md["version"] = v
	}
	if t := strings.TrimPrefix(v, "v"); t != v && semVer.MatchString(t) {
		return t, md
	}
	if build := buildMetadata(v); build != "" {
		return "0.0.0-dev+" + build, md
	}
	return "0.0.0-dev", md
}

// buildMetadata turns v into SemVer build metadata: dot-separated
// identifiers of [0-9A-Za-z-], other characters made '-', empty
// identifiers dropped.
func buildMetadata(v string) string {
	var ids []string
	for _, id := range strings.Split(v, ".") {
		id = strings.Map(func(r rune) rune {
			if r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
				return r
			}
			return '-'
		}, id)
		if id != "" {
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, ".")
}
