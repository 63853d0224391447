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
