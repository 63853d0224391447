package clustertest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/chatscalable/chatscalable/broker/node"
	"github.com/chatscalable/chatscalable/broker/testca"
	"github.com/chatscalable/chatscalable/e2e/proctest"
	"github.com/nats-io/nats.go"
)

// TestCAPkg is the command that makes a test CA and certificates.
const TestCAPkg = "github.com/chatscalable/chatscalable/tools/testca"

// Secrets are the password files of a cluster: one per client role and
// one for its routes, each holding a password of its own.
type Secrets struct {
	// Dir holds the files.
	Dir string
	// Files and Passwords are by role name, and "route" for the routes.
	Files, Passwords map[string]string
}

// NewSecrets writes a password file for each role and for the routes.
func NewSecrets(t testing.TB) *Secrets {
	t.Helper()
	s := &Secrets{Dir: t.TempDir(), Files: map[string]string{}, Passwords: map[string]string{}}
	names := []string{node.RouteUser}
	for _, r := range node.Roles {
		names = append(names, string(r))
	}
	for _, name := range names {
		s.Passwords[name] = name + "-" + broker.NewID()
		s.Files[name] = filepath.Join(s.Dir, name+"_password")
		if err := os.WriteFile(s.Files[name], []byte(s.Passwords[name]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// NodeArgs are the flags that make a node (chat-broker, or chat-gateway's
// embedded node) require every role's password and the routes'.
func (s *Secrets) NodeArgs() []string {
	args := []string{"--cluster-password-file", s.Files[node.RouteUser]}
	for _, r := range node.Roles {
		args = append(args, "--"+string(r)+"-password-file", s.Files[string(r)])
	}
	return args
}

// TestCA makes a test CA and certificates for 127.0.0.1 and localhost with
// the testca command, as an operator would for local use.
func TestCA(t testing.TB) testca.Files {
	t.Helper()
	dir := t.TempDir()
	p := proctest.Start(t, "testca", Binary(t, TestCAPkg), "--dir", dir, "--hosts", "127.0.0.1,localhost", "--days", "1")
	if exited, err := p.Wait(StartTimeout); !exited || err != nil {
		t.Fatalf("testca: exited %v, %v\n%s", exited, err, p.Log())
	}
	return testca.Files{
		CA: filepath.Join(dir, testca.CAFile), CAKey: filepath.Join(dir, testca.CAKeyFile),
		NodeCert: filepath.Join(dir, testca.NodeCertFile), NodeKey: filepath.Join(dir, testca.NodeKeyFile),
		ClientCert: filepath.Join(dir, testca.ClientCertFile), ClientKey: filepath.Join(dir, testca.ClientKeyFile),
	}
}

// BrokerOption changes a plan of brokers.
type BrokerOption func(*Brokers)

// WithTLS puts the brokers' client and route listeners on TLS with the
// node certificate of ca; their clients verify them with ca's CA.
func WithTLS(ca testca.Files) BrokerOption {
	return func(bs *Brokers) { bs.TLS = &ca }
}

// tlsArgs are the NATS TLS flags of a broker.
func (bs *Brokers) tlsArgs() []string {
	if bs.TLS == nil {
		return nil
	}
	return []string{"--nats-tls-cert", bs.TLS.NodeCert, "--nats-tls-key", bs.TLS.NodeKey, "--nats-tls-ca", bs.TLS.CA}
}

// ClientArgs are the flags of a client of the brokers (chat-gateway,
// chat-presence, chat-rooms) logging in as role: the NATS URLs (urls, or
// every broker's), the role's user and password file, and the CA with TLS.
func (bs *Brokers) ClientArgs(role node.Role, urls ...string) []string {
	u := bs.URLs
	if len(urls) > 0 {
		u = strings.Join(urls, ",")
	}
	args := []string{"--nats-url", u, "--nats-user", string(role), "--nats-password-file", bs.Secrets.Files[string(role)]}
	if bs.TLS != nil {
		args = append(args, "--nats-tls-ca", bs.TLS.CA)
	}
	return args
}

// GatewayArgs are ClientArgs of the gateway role.
func (bs *Brokers) GatewayArgs(urls ...string) []string {
	return bs.ClientArgs(node.RoleGateway, urls...)
}

// Connect connects to the brokers (urls, or all) as role, with the role's
// inbox prefix and, with TLS, the CA; the connection ends with the test.
func (bs *Brokers) Connect(t testing.TB, role node.Role, urls ...string) *nats.Conn {
	t.Helper()
	u := bs.URLs
	if len(urls) > 0 {
		u = strings.Join(urls, ",")
	}
	opts := []nats.Option{nats.UserInfo(string(role), bs.Secrets.Passwords[string(role)])}
	switch role {
	case node.RoleGateway:
		opts = append(opts, nats.CustomInboxPrefix(broker.GatewayInboxPrefix))
	case node.RoleService:
		opts = append(opts, nats.CustomInboxPrefix(broker.ServiceInboxPrefix))
	}
	if bs.TLS != nil {
		opts = append(opts, nats.RootCAs(bs.TLS.CA))
	}
	nc, err := nats.Connect(u, opts...)
	if err != nil {
		t.Fatalf("connect to the brokers as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// StartService starts a service command (PresencePkg or RoomsPkg) on the
// brokers, in the service role, and waits until it has started.
func (bs *Brokers) StartService(t testing.TB, pkg, name string) *proctest.Proc {
	t.Helper()
	return StartService(t, pkg, name, bs.ClientArgs(node.RoleService)...)
}

var violation = regexp.MustCompile(`.*Violation.*`)

// Violations returns the permission violations the brokers have logged:
// operations of a client that its role does not allow.
func (bs *Brokers) Violations() []string {
	var out []string
	for _, b := range bs.Nodes {
		if b.Proc != nil {
			out = append(out, violation.FindAllString(b.Proc.Log(), -1)...)
		}
	}
	return out
}
