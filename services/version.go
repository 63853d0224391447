package services

import "regexp"

var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// MicroVersion returns the version a micro service may register, which
// must be SemVer: v itself when it is, else "0.0.0-dev" (a build version
// such as a git description is then reported in the metadata instead).
func MicroVersion(v string) (string, map[string]string) {
	if semVer.MatchString(v) {
		return v, map[string]string{}
	}
	md := map[string]string{}
	if v != "" {
		md["version"] = v
	}
	return "0.0.0-dev", md
}
