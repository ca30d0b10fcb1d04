package embed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/tlsgen"
)

// tlsMaterial writes a CA and a server certificate for 127.0.0.1 into a
// temporary directory and returns it.
func tlsMaterial(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsgen.Write(dir, tlsgen.Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startTLSServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { s.Close() })
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

// servedSerials records the serial number of the certificate the server
// showed each connection made with its option.
type servedSerials struct {
	mu      sync.Mutex
	serials []*big.Int
}

func (s *servedSerials) option(t testing.TB, caFile string) nats.Option {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.serials = append(s.serials, cs.PeerCertificates[0].SerialNumber)
			return nil
		}})
}

func (s *servedSerials) last() *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serials[len(s.serials)-1]
}

// TestTLSCertificateReload rotates the client port's certificate files
// and reloads: a new connection is shown the new certificate, and a
// connection made before stays up and keeps working.
func TestTLSCertificateReload(t *testing.T) {
	dir := tlsMaterial(t)
	certFile, keyFile := filepath.Join(dir, tlsgen.ServerFile), filepath.Join(dir, tlsgen.ServerKeyFile)
	cfg := Config{Name: "tlsreload", DataDir: t.TempDir(), Listen: "127.0.0.1:-1",
		TLS: &TLS{Cert: certFile, Key: keyFile}}
	s := startTLSServer(t, cfg)

	var seen servedSerials
	before, err := nats.Connect(s.ClientURL(), seen.option(t, filepath.Join(dir, tlsgen.CAFile)))
	if err != nil {
		t.Fatalf("connect before the rotation: %v", err)
	}
	defer before.Close()
	oldSerial := seen.last()
	sub, err := before.SubscribeSync("rotate.check")
	if err != nil {
		t.Fatal(err)
	}

	ca, err := tlsgen.LoadCA(filepath.Join(dir, tlsgen.CAFile), filepath.Join(dir, tlsgen.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := ca.Server([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, fresh.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, fresh.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	newCert, err := tls.X509KeyPair(fresh.CertPEM, fresh.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(newCert.Certificate[0])
	if err := s.Reload(cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}

	after, err := nats.Connect(s.ClientURL(), seen.option(t, filepath.Join(dir, tlsgen.CAFile)))
	if err != nil {
		t.Fatalf("connect after the rotation: %v", err)
	}
	defer after.Close()
	if got := seen.last(); got.Cmp(leaf.SerialNumber) != 0 || got.Cmp(oldSerial) == 0 {
		t.Fatalf("after the reload the server showed serial %v, want the new certificate's %v (the old one was %v)",
			got, leaf.SerialNumber, oldSerial)
	}
	// The connection made before the rotation is the same one, still working.
	if err := after.Publish("rotate.check", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "hello" {
		t.Fatalf("old connection got %v, %v; want hello", m, err)
	}
	if st := before.Stats(); st.Reconnects != 0 || !before.IsConnected() {
		t.Fatalf("old connection: connected %v, %d reconnects; want connected, 0", before.IsConnected(), st.Reconnects)
	}
}

// TestTLSReloadKeepsOldCertOnBadFiles: a reload with a broken certificate
// file is refused and the server keeps serving the certificate it had.
func TestTLSReloadKeepsOldCertOnBadFiles(t *testing.T) {
	dir := tlsMaterial(t)
	certFile := filepath.Join(dir, tlsgen.ServerFile)
	cfg := Config{Name: "tlsbad", DataDir: t.TempDir(), Listen: "127.0.0.1:-1",
		TLS: &TLS{Cert: certFile, Key: filepath.Join(dir, tlsgen.ServerKeyFile)}}
	s := startTLSServer(t, cfg)
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err == nil {
		t.Fatal("reload with a broken certificate succeeded, want an error")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.RootCAs(filepath.Join(dir, tlsgen.CAFile)))
	if err != nil {
		t.Fatalf("connect after a refused reload: %v", err)
	}
	nc.Close()
}

// TestTLSRemoteOptions: a link's leafnode speaks TLS for a tls:// URL or
// when leaf_tls has a CA, trusts that CA, and presents leaf_tls's
// certificate.
func TestTLSRemoteOptions(t *testing.T) {
	dir := tlsMaterial(t)
	leaf := &TLS{Cert: filepath.Join(dir, tlsgen.ServerFile), Key: filepath.Join(dir, tlsgen.ServerKeyFile),
		CA: filepath.Join(dir, tlsgen.CAFile)}
	for _, tc := range []struct {
		name      string
		url       string
		leafTLS   *TLS
		wantTLS   bool
		wantCerts int
		wantRoots bool
	}{
		{"plain URL, no leaf_tls", "nats-leaf://127.0.0.1:7422", nil, false, 0, false},
		{"tls URL, no leaf_tls: system roots", "tls://127.0.0.1:7422", nil, true, 0, false},
		{"plain URL, leaf_tls with a CA", "nats-leaf://127.0.0.1:7422", leaf, true, 1, true},
		{"tls URL, leaf_tls without a CA", "tls://127.0.0.1:7422", &TLS{Cert: leaf.Cert, Key: leaf.Key}, true, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(tc.url)
			r := &server.RemoteLeafOpts{}
			if err := remoteTLS(Config{LeafTLS: tc.leafTLS}, u, r); err != nil {
				t.Fatal(err)
			}
			if r.TLS != tc.wantTLS {
				t.Fatalf("got TLS %v, want %v", r.TLS, tc.wantTLS)
			}
			if !tc.wantTLS {
				if r.TLSConfig != nil {
					t.Fatal("got a TLS config for a plain link")
				}
				return
			}
			if got := len(r.TLSConfig.Certificates); got != tc.wantCerts {
				t.Fatalf("got %d client certificates, want %d", got, tc.wantCerts)
			}
			if (r.TLSConfig.RootCAs != nil) != tc.wantRoots {
				t.Fatalf("got root CAs %v, want set %v", r.TLSConfig.RootCAs != nil, tc.wantRoots)
			}
		})
	}
}

// TestTLSReloadRefusesVerifyChange: nats-server applies new certificates
// on reload but not a change to verify (or map): that takes a restart,
// as docs/tls.md says.
func TestTLSReloadRefusesVerifyChange(t *testing.T) {
	dir := tlsMaterial(t)
	cfg := Config{Name: "tlsverify", DataDir: t.TempDir(), Listen: "127.0.0.1:-1",
		TLS: &TLS{Cert: filepath.Join(dir, tlsgen.ServerFile), Key: filepath.Join(dir, tlsgen.ServerKeyFile), CA: filepath.Join(dir, tlsgen.CAFile)}}
	s := startTLSServer(t, cfg)
	next := cfg
	next.TLS = &TLS{Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, CA: cfg.TLS.CA, Verify: true}
	if err := s.Reload(next); err == nil {
		t.Fatal("a reload that turns verify on succeeded, want it refused (restart)")
	}
	// The port still serves clients without a certificate.
	nc, err := nats.Connect(s.ClientURL(), nats.RootCAs(cfg.TLS.CA))
	if err != nil {
		t.Fatalf("connect after the refused reload: %v", err)
	}
	nc.Close()
}
