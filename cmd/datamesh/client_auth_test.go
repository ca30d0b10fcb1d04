package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
)

const cliPassword = "cli-test-secret"

// startSecureNode starts a node whose client port has TLS set by tlsCfg
// (with the mesh's server certificate) and whose services are services.
func startSecureNode(t *testing.T, certs nodetest.Certs, tlsCfg node.TLS, services ...node.Service) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Name = "cli"
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.HTTP, cfg.LeafListen = "127.0.0.1:-1", "", ""
	tlsCfg.Cert, tlsCfg.Key = certs.Server()
	cfg.TLS = &tlsCfg
	cfg.Services = services
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func wantCLIError(t *testing.T, n *node.Node, want string, args ...string) {
	t.Helper()
	_, err := cli(t, n, "", args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("datamesh %s: got %v, want an error with %q", strings.Join(args, " "), err, want)
	}
	if strings.Contains(err.Error(), cliPassword) {
		t.Fatalf("the error shows the password: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("the error is not one line: %q", err)
	}
}

// TestClientTLSAndPassword: a client command reaches a TLS port with
// --tls-ca and signs in with --user/--password (or their variables),
// replying through the service's own inbox; each failure says what to
// check, without the password.
func TestClientTLSAndPassword(t *testing.T) {
	certs := nodetest.NewCerts(t)
	n := startSecureNode(t, certs, node.TLS{}, node.Service{Name: "ops", Password: cliPassword})
	if out := mustCLI(t, n, "catalog", "--tls-ca", certs.CA(), "--user", "ops", "--password", cliPassword); !strings.HasPrefix(out, "node cli ") {
		t.Fatalf("catalog printed %q", out)
	}
	t.Setenv("DATAMESH_TLS_CA", certs.CA())
	t.Setenv("DATAMESH_USER", "ops")
	t.Setenv("DATAMESH_PASSWORD", cliPassword)
	if out := mustCLI(t, n, "catalog"); !strings.HasPrefix(out, "node cli ") {
		t.Fatalf("catalog with the variables printed %q", out)
	}
	if w := unknownEnv(newRootCmd(nil, nil, nil), []string{"DATAMESH_USER=a", "DATAMESH_PASSWORD=b", "DATAMESH_NKEY=c",
		"DATAMESH_TLS_CA=d", "DATAMESH_TLS_CERT=e", "DATAMESH_TLS_KEY=f"}); len(w) != 0 {
		t.Fatalf("the credential variables are warned about: %v", w)
	}
	wantCLIError(t, n, "refused the sign-in", "catalog", "--password", cliPassword+"-wrong")
	wantCLIError(t, n, "--user/--password or --nkey", "catalog", "--password", cliPassword+"-wrong")
	t.Setenv("DATAMESH_TLS_CA", "")
	wantCLIError(t, n, "--tls-ca", "catalog")
	wantCLIError(t, n, "--password needs --user", "catalog", "--tls-ca", certs.CA(), "--user", "")
}

// TestClientNkey: --nkey signs in with a seed from `datamesh keys new`,
// with the inbox _INBOX_<public key>.
func TestClientNkey(t *testing.T) {
	certs := nodetest.NewCerts(t)
	seed := filepath.Join(t.TempDir(), "svc.nk")
	pub := strings.TrimSpace(mustCLI(t, nil, "keys", "new", "--out", seed))
	n := startSecureNode(t, certs, node.TLS{}, node.Service{Name: "keyed", Nkey: pub})
	if out := mustCLI(t, n, "catalog", "--tls-ca", certs.CA(), "--nkey", seed); !strings.HasPrefix(out, "node cli ") {
		t.Fatalf("catalog printed %q", out)
	}
	other := filepath.Join(t.TempDir(), "other.nk")
	mustCLI(t, nil, "keys", "new", "--out", other)
	wantCLIError(t, n, "refused the sign-in", "catalog", "--tls-ca", certs.CA(), "--nkey", other)
}

// TestClientCertificate: on a port that verifies, a command without a
// client certificate is told to pass one; on a port that maps, the
// certificate alone signs the service in (its CN names the inbox).
func TestClientCertificate(t *testing.T) {
	certs := nodetest.NewCerts(t, "watcher")
	cert, key := certs.Client("watcher")
	verify := startSecureNode(t, certs, node.TLS{CA: certs.CA(), Verify: true})
	wantCLIError(t, verify, "--tls-cert", "catalog", "--tls-ca", certs.CA())
	mustCLI(t, verify, "catalog", "--tls-ca", certs.CA(), "--tls-cert", cert, "--tls-key", key)

	mapped := startSecureNode(t, certs, node.TLS{CA: certs.CA(), Map: true}, node.Service{Name: "watcher"})
	if out := mustCLI(t, mapped, "catalog", "--tls-ca", certs.CA(), "--tls-cert", cert, "--tls-key", key); !strings.HasPrefix(out, "node cli ") {
		t.Fatalf("catalog printed %q", out)
	}
	wantCLIError(t, mapped, "--tls-cert and --tls-key go together", "catalog", "--tls-ca", certs.CA(), "--tls-cert", cert)
}

func TestRedactURL(t *testing.T) {
	got := redactURL("tls://ops:" + cliPassword + "@127.0.0.1:4222,nats://127.0.0.1:4223")
	if strings.Contains(got, cliPassword) || !strings.Contains(got, "ops:") || !strings.HasSuffix(got, ",nats://127.0.0.1:4223") {
		t.Fatalf("got %s", got)
	}
}
