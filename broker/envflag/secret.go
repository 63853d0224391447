package envflag

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecret returns the contents of a secret file (such as a Docker
// secret under /run/secrets), without surrounding white space; "" for no
// file.
func ReadSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the secret file
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// SecretFile defines a flag naming a secret file (such as a Docker secret
// under /run/secrets); set receives the file's contents, as ReadSecret
// returns them, when the flag is parsed or, from the environment, at once.
// A file that cannot be read is an error of Parse.
func (s *Set) SecretFile(name, usage string, set func(secret string)) {
	v := &secretFile{set: set}
	if path, ok := s.lookup(name); ok {
		if err := v.Set(path); err != nil {
			s.fail(name, path, err)
		}
	}
	s.Var(v, name, s.usage(name, usage))
}

// secretFile is the flag.Value of SecretFile: its text is the path.
type secretFile struct {
	path string
	set  func(string)
}

func (v *secretFile) String() string {
	if v == nil {
		return ""
	}
	return v.path
}

func (v *secretFile) Set(path string) error {
	secret, err := ReadSecret(path)
	if err != nil {
		return err
	}
	if secret == "" {
		return fmt.Errorf("no file named")
	}
	v.path = path
	v.set(secret)
	return nil
}
