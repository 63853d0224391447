// Package testca makes a certificate authority and the certificates of a
// NATS cluster signed by it, for local use and tests of NATS TLS: a node
// certificate for the brokers' (or embedded nodes') client and route
// listeners, and a client certificate for gateways and services. It is not
// a way to run a production CA: its key sits in a file beside the
// certificates.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names Write uses in its folder.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	NodeCertFile   = "node.pem"
	NodeKeyFile    = "node-key.pem"
	ClientCertFile = "client.pem"
	ClientKeyFile  = "client-key.pem"
)

// Files are the paths Write wrote.
type Files struct {
	CA, CAKey, NodeCert, NodeKey, ClientCert, ClientKey string
}

// ErrExists is returned by Write when a file it would write is there.
var ErrExists = errors.New("file exists")

// Write makes a CA and, signed by it, a node certificate valid for hosts
// (DNS names or IP addresses; routes use it both to serve and to connect,
// so it is valid for both) and a client certificate, and writes them to
// dir (made if missing) as PEM files; keys are readable by their owner
// only. It refuses to overwrite any file unless force.
func Write(dir string, hosts []string, validity time.Duration, force bool) (Files, error) {
	f := Files{
		CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKeyFile),
		NodeCert: filepath.Join(dir, NodeCertFile), NodeKey: filepath.Join(dir, NodeKeyFile),
		ClientCert: filepath.Join(dir, ClientCertFile), ClientKey: filepath.Join(dir, ClientKeyFile),
	}
	if len(hosts) == 0 {
		return f, errors.New("testca: the node certificate needs at least one host")
	}
	if validity <= 0 {
		return f, errors.New("testca: the validity must be positive")
	}
	if !force {
		for _, p := range []string{f.CA, f.CAKey, f.NodeCert, f.NodeKey, f.ClientCert, f.ClientKey} {
			if _, err := os.Stat(p); err == nil {
				return f, fmt.Errorf("testca: %s: %w (replace the set with force)", p, ErrExists)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("testca: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, fmt.Errorf("testca: %w", err)
	}
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "ChatScalable test CA", Organization: []string{"ChatScalable"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := sign(ca, ca, caKey, caKey)
	if err != nil {
		return f, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, fmt.Errorf("testca: %w", err)
	}
	node := leaf("ChatScalable NATS node", now, validity, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			node.IPAddresses = append(node.IPAddresses, ip)
		} else {
			node.DNSNames = append(node.DNSNames, h)
		}
	}
	client := leaf("ChatScalable NATS client", now, validity, x509.ExtKeyUsageClientAuth)
	if err := writeCert(f.CA, caDER); err != nil {
		return f, err
	}
	if err := writeKey(f.CAKey, caKey); err != nil {
		return f, err
	}
	for _, c := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{{node, f.NodeCert, f.NodeKey}, {client, f.ClientCert, f.ClientKey}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return f, fmt.Errorf("testca: %w", err)
		}
		der, err := sign(c.tmpl, caCert, key, caKey)
		if err != nil {
			return f, err
		}
		if err := writeCert(c.cert, der); err != nil {
			return f, err
		}
		if err := writeKey(c.key, key); err != nil {
			return f, err
		}
	}
	return f, nil
}

func leaf(name string, now time.Time, validity time.Duration, usage ...x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"ChatScalable"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage,
	}
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testca: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("testca: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

func writeCert(path string, der []byte) error {
	return writePEM(path, "CERTIFICATE", der, 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("testca: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	// Replace rather than truncate: a key file keeps no wider mode.
	_ = os.Remove(path)
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("testca: %w", err)
	}
	return nil
}
