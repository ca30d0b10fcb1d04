package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
)

// TestValidateTLS: each TLS block's problems are errors that name the key.
func TestValidateTLS(t *testing.T) {
	certs := nodetest.NewCerts(t, "svc")
	cert, key := certs.Server()
	clientCert, _ := certs.Client("svc")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	svc := []node.Service{{Name: "svc"}}
	for _, tc := range []struct {
		name     string
		set      func(c *node.Config)
		want     string // "" for valid
		services []node.Service
	}{
		{"all three ports", func(c *node.Config) {
			c.TLS = &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Map: true}
			c.LeafTLS = &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Verify: true}
			c.HTTPTLS = &node.TLS{Cert: cert, Key: key}
		}, "", svc},
		{"empty block", func(c *node.Config) { c.TLS = &node.TLS{} }, "", nil},
		{"no key", func(c *node.Config) { c.TLS = &node.TLS{Cert: cert} }, "tls.key: required", nil},
		{"no cert", func(c *node.Config) { c.LeafTLS = &node.TLS{Key: key} }, "leaf_tls.cert: required", nil},
		{"missing cert file", func(c *node.Config) { c.TLS = &node.TLS{Cert: missing, Key: key} },
			"tls.cert: open " + missing + ": no such file or directory", nil},
		{"missing key file", func(c *node.Config) { c.HTTPTLS = &node.TLS{Cert: cert, Key: missing} },
			"http_tls.key: open " + missing + ": no such file or directory", nil},
		{"key of another certificate", func(c *node.Config) { c.TLS = &node.TLS{Cert: clientCert, Key: key} },
			"tls.cert: " + clientCert + " with key " + key + ": tls: private key does not match public key", nil},
		{"not a certificate", func(c *node.Config) { c.TLS = &node.TLS{Cert: notPEM, Key: key} }, "tls.cert: " + notPEM, nil},
		{"CA not PEM", func(c *node.Config) { c.TLS = &node.TLS{Cert: cert, Key: key, CA: notPEM} },
			"tls.ca: " + notPEM + ": no PEM certificate", nil},
		{"verify without CA", func(c *node.Config) { c.LeafTLS = &node.TLS{Cert: cert, Key: key, Verify: true} },
			"leaf_tls.verify: needs leaf_tls.ca", nil},
		{"map without CA", func(c *node.Config) { c.TLS = &node.TLS{Cert: cert, Key: key, Map: true} }, "tls.map: needs tls.ca", svc},
		{"map on the leaf port", func(c *node.Config) { c.LeafTLS = &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Map: true} },
			"leaf_tls.map: only tls", nil},
		{"map without services", func(c *node.Config) { c.TLS = &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Map: true} },
			"tls.map: maps client certificates to services, and no services are configured", nil},
		{"verify on the HTTP port", func(c *node.Config) { c.HTTPTLS = &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Verify: true} },
			"http_tls.verify: the monitoring port verifies no client certificate", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Services = tc.services
			tc.set(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want a valid config", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
