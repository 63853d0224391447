package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatscalable/chatscalable/broker/node"
)

// natsSecurityVars are the environment variables of natsflags.go's flags;
// init adds them to envVars, the list flags_test.go checks --help and
// parseFlags against.
var natsSecurityVars = []string{
	"CHAT_NATS_TLS_CA",
	"CHAT_NATS_TLS_CERT",
	"CHAT_NATS_TLS_KEY",
	"CHAT_GATEWAY_PASSWORD_FILE",
	"CHAT_SERVICE_PASSWORD_FILE",
	"CHAT_READER_PASSWORD_FILE",
	"CHAT_ADMIN_PASSWORD_FILE",
	"CHAT_CLUSTER_PASSWORD_FILE",
	"CHAT_NATS_NO_AUTH",
}

func init() { envVars = append(envVars, natsSecurityVars...) }

func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNATSSecurityFlags(t *testing.T) {
	reader, route := writeSecret(t, "reader", "reader-pw"), writeSecret(t, "route", "route-pw")
	c, _, err := parse(t, []string{
		"--reader-password-file", reader, "--cluster-password-file", route,
		"--nats-tls-ca", "/ca.pem", "--nats-tls-cert", "/node.pem", "--nats-tls-key", "/node-key.pem",
	}, map[string]string{"CHAT_NODE_NAME": "gw", "CHAT_ADMIN_PASSWORD_FILE": writeSecret(t, "admin", "admin-pw")})
	if err != nil {
		t.Fatal(err)
	}
	a := c.NodeAuth
	if a.Passwords[node.RoleReader] != "reader-pw" || a.Passwords[node.RoleAdmin] != "admin-pw" || len(a.Passwords) != 2 {
		t.Errorf("passwords %v", a.Passwords)
	}
	if a.RoutePassword != "route-pw" || a.NoAuth {
		t.Errorf("route password %q, no-auth %v", a.RoutePassword, a.NoAuth)
	}
	if c.NATSTLS.CA != "/ca.pem" || c.NATSTLS.Cert != "/node.pem" || c.NATSTLS.Key != "/node-key.pem" {
		t.Errorf("tls %+v", c.NATSTLS)
	}

	c, _, err = parse(t, nil, map[string]string{"CHAT_NODE_NAME": "gw", "CHAT_NATS_NO_AUTH": "1"})
	if err != nil || !c.NodeAuth.NoAuth {
		t.Errorf("CHAT_NATS_NO_AUTH=1: no-auth %v, %v", c.NodeAuth.NoAuth, err)
	}

	for _, bad := range []struct {
		args    []string
		vars    map[string]string
		mention string
	}{
		{[]string{"--gateway-password-file", reader + ".missing"}, nil, "gateway-password-file"},
		{nil, map[string]string{"CHAT_CLUSTER_PASSWORD_FILE": reader + ".missing"}, "CHAT_CLUSTER_PASSWORD_FILE"},
		{[]string{"--service-password-file", writeSecret(t, "empty", "")}, nil, "empty"},
		{[]string{"--nats-no-auth=maybe"}, nil, "nats-no-auth"},
	} {
		vars := map[string]string{"CHAT_NODE_NAME": "gw"}
		for k, v := range bad.vars {
			vars[k] = v
		}
		if _, _, err := parse(t, bad.args, vars); err == nil || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("parse(%q, %v) = %v, want an error mentioning %s", bad.args, bad.vars, err, bad.mention)
		}
	}
}
