package monitor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node/tlsgen"
)

// TestMonitorTLS: with a certificate the port serves HTTPS, and ReloadTLS
// takes up rotated files for the connections that follow.
func TestMonitorTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsgen.Write(dir, tlsgen.Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, tlsgen.ServerFile), filepath.Join(dir, tlsgen.ServerKeyFile)
	m := New(Config{Addr: "127.0.0.1:-1", CertFile: certFile, KeyFile: keyFile}, hclog.NewNullLogger())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if !strings.HasPrefix(m.URL(), "https://") {
		t.Fatalf("URL %s, want https://", m.URL())
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, tlsgen.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	get := func() *x509.Certificate {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := c.Get(m.URL() + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /readyz: %s, want 200", resp.Status)
		}
		return resp.TLS.PeerCertificates[0]
	}
	first := get()

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
	if got := get(); !got.Equal(first) {
		t.Fatal("the port showed the new certificate before ReloadTLS")
	}
	if err := m.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.Equal(first) {
		t.Fatal("after ReloadTLS the port still shows the old certificate")
	}

	// A broken file leaves the certificate as it was.
	if err := os.WriteFile(certFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS of a broken file succeeded")
	}
	get()
}
