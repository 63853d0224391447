// Package envflag defines command-line flags whose defaults come from
// CHAT_-prefixed environment variables (--http-addr ↔ CHAT_HTTP_ADDR), so
// every ChatScalable command can be configured either way; a flag given on
// the command line wins.
//
// Every command answers --help (and -h) the same way: its usage on the
// Set's output, and Parse returns flag.ErrHelp, on which the command
// exits 0. A command that calls Version also answers --version, and Parse
// returns ErrVersion. Any other error of Parse is bad input, which the
// command reports on standard error before exiting 2.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrVersion is returned by Parse when --version was asked for; the
// version line has been written.
var ErrVersion = errors.New("version requested")

// Answered reports whether err says the command was asked for its usage
// or version (flag.ErrHelp, ErrVersion) and has printed it: the command
// then exits 0.
func Answered(err error) bool {
	return errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrVersion)
}

// Set is a flag set reading defaults from the environment.
type Set struct {
	*flag.FlagSet
	// Intro is what --help prints above the flags: what the command does
	// and how it is called. Empty: "Usage: <name> [flags]".
	Intro string

	out         io.Writer
	getenv      func(string) string
	prefix      string
	errs        []envError
	version     string
	showVersion bool
}

// New returns a Set for the command name whose flags have CHAT_
// environment variables; --help and --version write to out (a command
// passes its standard output).
func New(name string, getenv func(string) string, out io.Writer) *Set {
	return NewPrefixed(name, "CHAT_", getenv, out)
}

// NewPrefixed is New for a command whose environment variables carry a
// prefix of their own (CHAT_SIGNIN_: --ttl ↔ CHAT_SIGNIN_TTL), so its
// generic flag names do not meet another command's variables. An empty
// prefix makes a Set of flags only: no environment variable is read, and
// --help names none (getenv may be nil).
func NewPrefixed(name, prefix string, getenv func(string) string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package's own messages are not printed: Parse prints the
	// usage when it is asked for and returns errors for the command to
	// report, without the whole usage after them.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Set{FlagSet: fs, out: out, getenv: getenv, prefix: prefix}
}

// Version adds --version, which makes Parse print VersionLine(name,
// version) and return ErrVersion. version is the command's main.version.
func (s *Set) Version(version string) {
	s.version = version
	s.BoolVar(&s.showVersion, "version", false, "print the version and exit")
}

// EnvName returns the environment variable of a flag: CHAT_ and the flag's
// name in upper case with '_' for '-'.
func EnvName(flag string) string {
	return envName("CHAT_", flag)
}

func envName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// String defines a string flag.
func (s *Set) String(p *string, name, def, usage string) {
	if v, ok := s.lookup(name); ok {
		def = v
	}
	s.StringVar(p, name, def, s.usage(name, usage))
}

// Int defines an int flag.
func (s *Set) Int(p *int, name string, def int, usage string) {
	if v, ok := s.lookup(name); ok {
		if n, err := strconv.Atoi(v); err != nil {
			s.fail(name, v, err)
		} else {
			def = n
		}
	}
	s.IntVar(p, name, def, s.usage(name, usage))
}

// Int64 defines an int64 flag.
func (s *Set) Int64(p *int64, name string, def int64, usage string) {
	if v, ok := s.lookup(name); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil {
			s.fail(name, v, err)
		} else {
			def = n
		}
	}
	s.Int64Var(p, name, def, s.usage(name, usage))
}

// Bool defines a boolean flag (the environment takes true, false, 1, 0).
func (s *Set) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := s.lookup(name); ok {
		if b, err := strconv.ParseBool(v); err != nil {
			s.fail(name, v, err)
		} else {
			def = b
		}
	}
	s.BoolVar(p, name, def, s.usage(name, usage))
}

// Duration defines a duration flag (Go syntax: 15s, 2m, 168h).
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := s.lookup(name); ok {
		if d, err := time.ParseDuration(v); err != nil {
			s.fail(name, v, err)
		} else {
			def = d
		}
	}
	s.DurationVar(p, name, def, s.usage(name, usage))
}

// Float defines a float64 flag.
func (s *Set) Float(p *float64, name string, def float64, usage string) {
	if v, ok := s.lookup(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil {
			s.fail(name, v, err)
		} else {
			def = f
		}
	}
	s.Float64Var(p, name, def, s.usage(name, usage))
}

// Parse parses args. --help prints the usage and returns flag.ErrHelp;
// --version (see Version) prints the version and returns ErrVersion. A
// bad environment value is an error unless its flag was given on the
// command line.
func (s *Set) Parse(args []string) error {
	if err := s.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.PrintUsage()
			return err
		}
		return fmt.Errorf("%w (%s --help lists the flags)", err, s.Name())
	}
	if s.showVersion {
		fmt.Fprintln(s.out, VersionLine(s.Name(), s.version))
		return ErrVersion
	}
	set := map[string]bool{}
	s.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for _, e := range s.errs {
		if !set[e.flag] {
			errs = append(errs, errors.New(e.msg))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if s.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.Arg(0))
	}
	return nil
}

func (s *Set) usage(name, usage string) string {
	if s.prefix == "" {
		return usage
	}
	return usage + " (env " + envName(s.prefix, name) + ")"
}

func (s *Set) lookup(name string) (string, bool) {
	if s.prefix == "" {
		return "", false
	}
	v := s.getenv(envName(s.prefix, name))
	return v, v != ""
}

func (s *Set) fail(name, v string, err error) {
	s.errs = append(s.errs, envError{flag: name, msg: fmt.Sprintf("%s=%q: %v", envName(s.prefix, name), v, err)})
}

type envError struct{ flag, msg string }

// SplitList splits a comma-separated flag value, dropping blanks and spaces.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
