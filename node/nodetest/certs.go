package nodetest

import (
	"path/filepath"
	"testing"

	"github.com/datamesh/datamesh/node/tlsgen"
)

// Certs is a directory of a test mesh's TLS material (tlsgen's layout).
type Certs string

// NewCerts writes a CA, a server certificate for 127.0.0.1 and localhost
// and a client certificate for each of clients into a temporary directory.
func NewCerts(t testing.TB, clients ...string) Certs {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsgen.Write(dir, tlsgen.Options{Hosts: []string{"127.0.0.1", "localhost"}, Clients: clients}); err != nil {
		t.Fatalf("tls material: %v", err)
	}
	return Certs(dir)
}

// CA is the CA certificate's file.
func (c Certs) CA() string { return c.file(tlsgen.CAFile) }

// Server is the server certificate's file and its key's.
func (c Certs) Server() (cert, key string) {
	return c.file(tlsgen.ServerFile), c.file(tlsgen.ServerKeyFile)
}

// Client is the client certificate of name and its key.
func (c Certs) Client(name string) (cert, key string) {
	cert, key = tlsgen.ClientFiles(name)
	return c.file(cert), c.file(key)
}

func (c Certs) file(name string) string { return filepath.Join(string(c), name) }
