package dockertest_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatscalable/chatscalable/broker/node/nodetest"
	"github.com/chatscalable/chatscalable/e2e/dockertest"
)

// TestSwarmStack validates the stack file, then, if this engine can run a
// swarm, deploys the stack, signs in through chat-signin behind the entry
// point, checks that nothing passes without a token and that it is one
// chat across the gateway replicas, rolls the gateways over one at a time
// without losing or repeating a message, and removes everything (leaving
// the swarm if it made one).
func TestSwarmStack(t *testing.T) {
	dockertest.RequireDocker(t)
	file := filepath.Join(dockertest.Root(t), "deployments/swarm/stack.yaml")
	tag := dockertest.Images(t)
	port := freePort(t)
	name := fmt.Sprintf("cstest%d", rand.IntN(1<<30))
	// The stack's own secrets, apart from any other stack's on this swarm.
	prefix := name + "_"
	env := []string{"CHAT_TAG=" + tag, fmt.Sprintf("CHAT_PORT=%d", port), "CHAT_SECRET_PREFIX=" + prefix}
	cfg := dockertest.Run(t, env, "docker", "stack", "config", "-c", file)
	for _, want := range []string{"broker-1:", "broker-2:", "broker-3:", "gateway:", "presence:", "rooms:", "signin:", "lb:", "replicas: 3", "order: start-first",
		"name: " + prefix + "nats_gateway_password", "name: " + prefix + "nats_tls_cert", "CHAT_NATS_TLS_CA: /run/secrets/nats_tls_ca", "chatscalable/chat-gateway:" + tag,
		"CHAT_AUTH: jwt", "CHAT_AUTH_JWT_SECRET_FILE: /run/secrets/jwt_secret", "name: " + prefix + "jwt_secret", "name: " + prefix + "signin_session_key",
		"chatscalable/chat-signin:" + tag, "/etc/caddy/Caddyfile.swarm"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("docker stack config lacks %q", want)
		}
	}

	state := strings.TrimSpace(dockertest.Run(t, nil, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}"))
	switch state {
	case "active":
	case "inactive":
		out, err := dockertest.Try(nil, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
		if err != nil {
			t.Logf("SWARM NOT AVAILABLE: docker swarm init failed (%v: %s); the stack file was validated with docker stack config only", err, out)
			return
		}
		t.Cleanup(func() {
			_, _ = dockertest.Try(nil, "docker", "swarm", "leave", "--force")
			// swarm init made this network; nothing else uses it now.
			_, _ = dockertest.Try(nil, "docker", "network", "rm", "docker_gwbridge")
		})
	default:
		t.Logf("SWARM NOT AVAILABLE: the engine's swarm state is %q; the stack file was validated with docker stack config only", state)
		return
	}
	// Made as `make stack-deploy` makes them; removed once the stack's
	// containers, which hold them, are gone (cleanups run last first).
	t.Cleanup(func() {
		for _, s := range stackSecrets {
			_, _ = dockertest.Try(nil, "docker", "secret", "rm", prefix+s)
		}
	})
	dockertest.Run(t, nil, "make", "-C", dockertest.Root(t), "stack-secrets", "SECRETS="+dockertest.Secrets(t), "CHAT_SECRET_PREFIX="+prefix)
	label := "label=com.docker.stack.namespace=" + name
	t.Cleanup(func() {
		_, _ = dockertest.Try(nil, "docker", "stack", "rm", name)
		// The stack's containers and network go away asynchronously.
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			c, _ := dockertest.Try(nil, "docker", "ps", "-aq", "--filter", label)
			n, _ := dockertest.Try(nil, "docker", "network", "ls", "-q", "--filter", label)
			if strings.TrimSpace(c+n) == "" {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		vols, _ := dockertest.Try(nil, "docker", "volume", "ls", "-q", "--filter", label)
		for _, v := range strings.Fields(vols) {
			_, _ = dockertest.Try(nil, "docker", "volume", "rm", "-f", v)
		}
	})
	dockertest.Run(t, env, "docker", "stack", "deploy", "-c", file, name)
	nodetest.CheckFor(t, 180*time.Second, time.Second, func() error {
		out := dockertest.Run(t, nil, "docker", "service", "ls", "--filter", label, "--format", "{{.Name}} {{.Replicas}}")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 8 {
			return fmt.Errorf("services: %s", out)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 2 || strings.Split(f[1], "/")[0] != strings.Split(f[1], "/")[1] {
				return fmt.Errorf("not all running: %s", out)
			}
		}
		return nil
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(base, 20*time.Second); err != nil {
		// The routing mesh balances with the kernel's IPVS; without it the
		// published port of the entry point does not answer. Reach the
		// stack as the mesh would: one more entry point, the same image and
		// Caddyfile as the lb service, on the stack's front network,
		// published with a plain port.
		t.Logf("ROUTING MESH UNREACHABLE on this engine (%v; it needs the kernel's ip_vs module): reaching the stack through an lb container of its own on the stack's network", err)
		probe := freePort(t)
		id := strings.TrimSpace(dockertest.Run(t, nil, "docker", "run", "-d", "--network", name+"_front",
			"-p", fmt.Sprintf("127.0.0.1:%d:8080", probe), "chatscalable/caddy:"+tag,
			"run", "--config", "/etc/caddy/Caddyfile.swarm", "--adapter", "caddyfile"))
		t.Cleanup(func() { _, _ = dockertest.Try(nil, "docker", "rm", "-f", id) })
		base = fmt.Sprintf("http://127.0.0.1:%d", probe)
		if err := waitReady(base, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	token := signIn(t, base, "pub")
	checkAuthOn(t, base)
	followers := followOnSeveralReplicas(t, base, "swarm", token, 3)
	pub := &publisher{base: base, room: "swarm", token: token}
	pub.publish(t, 30)
	expectAll(t, followers, pub.count())

	// A rolling update of the gateways, as the stack's update_config
	// describes it: one at a time, the new one first.
	stop := pub.keepPublishing(t)
	dockertest.Run(t, nil, "docker", "service", "update", "--force", "--detach=false", name+"_gateway")
	stop()
	expectAll(t, followers, pub.count())
	t.Logf("swarm stack: %d messages across a rolling update, each once and in order on every listener", pub.count())
	var logs string
	for _, b := range []string{"broker-1", "broker-2", "broker-3"} {
		logs += dockertest.Run(t, nil, "docker", "service", "logs", "--raw", name+"_"+b)
	}
	if n := strings.Count(logs, "roles=gateway,service,reader,admin tls=true"); n < 3 {
		t.Errorf("%d broker starts with every role and TLS, want at least 3:\n%s", n, logs)
	}
	dockertest.NoViolations(t, logs)
}

// stackSecrets are the stack's Docker secrets, without the prefix.
var stackSecrets = []string{"nats_gateway_password", "nats_service_password", "nats_reader_password", "nats_admin_password",
	"nats_cluster_password", "nats_tls_ca", "nats_tls_cert", "nats_tls_key", "jwt_secret", "signin_session_key"}

// waitReady waits until base/readyz answers 200 from several replicas.
func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		nodes := map[string]bool{}
		last = nil
		for range 6 {
			client := http.Client{Timeout: 2 * time.Second}
			resp, err := client.Get(base + "/readyz")
			if err != nil {
				last = err
				break
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				last = fmt.Errorf("readyz %d", resp.StatusCode)
				break
			}
			nodes[resp.Header.Get("X-Chat-Node")] = true
		}
		if last == nil && len(nodes) >= 2 {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("only %d replica answers", len(nodes))
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s: %v", base, timeout, last)
}
