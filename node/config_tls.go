package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// validateTLS checks each TLS block: a block with any key set needs a
// certificate and its key that load, a CA that parses, and a CA for
// verify and map; only the client port maps certificates to services,
// and the monitoring port verifies no client certificate.
func (c Config) validateTLS() []error {
	var errs []error
	for _, b := range []struct {
		key string
		t   *TLS
	}{{"tls", c.TLS}, {"leaf_tls", c.LeafTLS}, {"http_tls", c.HTTPTLS}} {
		errs = append(errs, checkTLS(b.key, b.t)...)
	}
	if c.TLS != nil && c.TLS.Map && len(c.Services) == 0 {
		errs = append(errs, fmt.Errorf("tls.map: maps client certificates to services, and no services are configured"))
	}
	return errs
}

func checkTLS(key string, t *TLS) []error {
	if t == nil || *t == (TLS{}) {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(key+"."+format, args...)) }
	if t.Cert == "" {
		add("cert: required: the port's certificate file (PEM)")
	}
	if t.Key == "" {
		add("key: required: the private key file of %s.cert (PEM)", key)
	}
	if t.Cert != "" && t.Key != "" {
		if err := checkKeyPair(t.Cert, t.Key); err != nil {
			add("%v", err)
		}
	}
	if t.CA != "" {
		if err := checkCA(t.CA); err != nil {
			add("ca: %v", err)
		}
	}
	if key == "http_tls" {
		for _, k := range []struct {
			name string
			set  bool
		}{{"ca", t.CA != ""}, {"verify", t.Verify}} {
			if k.set {
				add("%s: the monitoring port verifies no client certificate; give http_tls a cert and a key only", k.name)
			}
		}
	} else if t.Verify && t.CA == "" {
		add("verify: needs %s.ca, the CA that signs the certificates to accept", key)
	}
	if t.Map && key != "tls" {
		add("map: only tls (the client port) maps certificates to services")
	} else if t.Map && t.CA == "" {
		add("map: needs %s.ca, the CA that signs the services' certificates", key)
	}
	return errs
}

// checkKeyPair loads cert and key; its errors start with the key of the
// file at fault ("cert: open x: no such file or directory").
func checkKeyPair(cert, key string) error {
	for _, f := range []struct{ key, path string }{{"cert", cert}, {"key", key}} {
		if _, err := os.ReadFile(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return fmt.Errorf("cert: %s with key %s: %w", cert, key, err)
	}
	if _, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return fmt.Errorf("cert: %s: %w", cert, err)
	}
	return nil
}

func checkCA(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no PEM certificate", path)
	}
	return nil
}
