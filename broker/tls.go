package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the PEM files of a program's NATS TLS: for a client (a
// gateway or a service), the CA that signs the servers' certificates and an
// optional client certificate; for a server (chat-broker, or a gateway's
// embedded node), the certificate of its client and route listeners and the
// CA that signs its peers' certificates.
type TLSFiles struct {
	// Cert and Key are this program's certificate and its private key.
	Cert, Key string
	// CA is the certificate authority (one or more PEM certificates) that
	// signs the other side's certificate; empty: the system's roots.
	CA string
}

// Enabled reports whether f names any file, which turns TLS on.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// ErrTLSFiles is wrapped by the errors of TLS files that cannot be used.
var ErrTLSFiles = errors.New("nats tls")

// Check reports whether the files can be used: a certificate needs its key
// and the other way round, and every file must load.
func (f TLSFiles) Check() error {
	if !f.Enabled() {
		return nil
	}
	_, err := f.ClientConfig()
	return err
}

// ClientConfig returns the TLS configuration of a NATS client: the servers
// are verified with CA (or the system's roots), and Cert is presented when
// a server asks for a client certificate. It returns nil, nil when f names
// no file.
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%w: a certificate (%q) and its key (%q) go together", ErrTLSFiles, f.Cert, f.Key)
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %s with key %s: %w", ErrTLSFiles, f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if f.CA != "" {
		pool, err := LoadCA(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// LoadCA reads a file of PEM certificates into a pool.
func LoadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path) //nolint:gosec // the operator names the CA file
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrTLSFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA %s holds no PEM certificate", ErrTLSFiles, path)
	}
	return pool, nil
}
