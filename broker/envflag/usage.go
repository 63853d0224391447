package envflag

import (
	"flag"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
)

// PrintUsage writes what --help prints: the Set's Intro and its flags.
func (s *Set) PrintUsage() {
	intro := strings.TrimRight(s.Intro, "\n")
	if intro == "" {
		intro = "Usage: " + s.Name() + " [flags]"
	}
	fmt.Fprintf(s.out, "%s\n\nFlags:\n", intro)
	s.PrintDefaults()
}

// PrintDefaults writes every flag as the flag package does, but with the
// two dashes the documentation uses: "--name ARG", then its usage, its
// environment variable and its default unless that is the zero value.
// ARG is the first `quoted` word of the usage, else the value's type.
func (s *Set) PrintDefaults() {
	s.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		arg, usage := flag.UnquoteUsage(f)
		b.WriteString("  --" + f.Name)
		if arg != "" {
			b.WriteString(" " + arg)
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if !isZeroValue(f) {
			if g, ok := f.Value.(flag.Getter); ok && isString(g.Get()) {
				fmt.Fprintf(&b, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(&b, " (default %v)", f.DefValue)
			}
		}
		fmt.Fprintln(s.out, b.String())
	})
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// isZeroValue reports whether f's default is its type's zero value, as
// the flag package decides it.
func isZeroValue(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	return ok && f.DefValue == v.String()
}

// VersionLine returns what --version prints: the command's name, its
// version (see BuildVersion), and the Go release and platform it was built
// with, e.g. "chat-gateway 1.2.3-4-gabcdef (go1.26.0 linux/amd64)".
func VersionLine(name, version string) string {
	return fmt.Sprintf("%s %s (%s %s/%s)", name, BuildVersion(version), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// BuildVersion returns version, a command's main.version, which `make
// build` sets from git describe (-ldflags "-X main.version=…"). A build
// without it ("" or "dev", as `go build` and `go install` make) gets what
// Go recorded in the binary instead: the module's version, else "dev-"
// and the VCS revision ("-dirty" when the tree had changes), else "dev".
func BuildVersion(version string) string {
	if version != "" && version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev-" + rev[:min(12, len(rev))]
	if modified {
		v += "-dirty"
	}
	return v
}
