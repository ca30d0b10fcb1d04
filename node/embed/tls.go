package embed

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

// tlsTimeout bounds a TLS handshake, in seconds (nats-server's unit).
const tlsTimeout = 2.0

// tlsOptions sets the client and leaf ports' TLS from cfg. It reads the
// certificate files every time it runs: a reload that builds the options
// again is how rotated certificates are taken up. Turning TLS on or off,
// verify and map take a restart (nats-server refuses them on reload).
func tlsOptions(cfg Config, opts *server.Options) error {
	if cfg.NoListen {
		return nil // in-process connections skip TLS
	}
	if t := cfg.TLS; t.Enabled() {
		verify := t.Verify || t.Map
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA,
			Verify: verify, Map: t.Map})
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSMap = true, tc, verify, t.Map
		opts.TLSTimeout = tlsTimeout
	}
	if t := cfg.LeafTLS; t.Enabled() && cfg.LeafListen != "" {
		// No map: peers sign in with their secret or nkey; the certificate
		// proves the peer is of the mesh (verify), not who it is.
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA,
			Verify: t.Verify})
		if err != nil {
			return fmt.Errorf("leaf_tls: %w", err)
		}
		opts.LeafNode.TLSConfig, opts.LeafNode.TLSMap = tc, false
		opts.LeafNode.TLSTimeout = tlsTimeout
	}
	return nil
}

// remoteTLS sets the TLS of this node's leafnode to a peer at u: on for a
// tls:// URL, or whenever leaf_tls has a CA. The peer's certificate is
// verified against leaf_tls.ca (one CA per mesh signs every node's
// certificate; without a CA, the system's roots), and this node presents
// its leaf_tls certificate, so a peer that verifies (leaf_tls.verify)
// accepts it.
func remoteTLS(cfg Config, u *url.URL, r *server.RemoteLeafOpts) error {
	t := cfg.LeafTLS
	hasCA := t != nil && t.CA != ""
	if u.Scheme != "tls" && !hasCA {
		return nil
	}
	r.TLS = true
	r.TLSTimeout = tlsTimeout
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.Enabled() {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return fmt.Errorf("leaf_tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if hasCA {
		pool, err := loadCA(t.CA)
		if err != nil {
			return fmt.Errorf("leaf_tls.ca: %w", err)
		}
		tc.RootCAs = pool
	}
	r.TLSConfig = tc
	return nil
}

// loadCA reads a PEM file of CA certificates.
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}
