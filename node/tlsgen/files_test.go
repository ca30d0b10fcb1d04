package tlsgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteReusesTheCAAndRefusesHalfPairs: a second Write signs under the
// CA it finds, and a directory with a certificate but not its key is an
// error rather than a new key beside an old certificate.
func TestWriteReusesTheCAAndRefusesHalfPairs(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Write(dir, Options{Clients: []string{"svc"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != 2 || len(res.Kept) != 4 {
		t.Fatalf("second write: wrote %v, kept %v; want the client's 2 files written, 4 kept", res.Written, res.Kept)
	}
	again, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("the CA changed (%v)", err)
	}
	if err := os.Remove(filepath.Join(dir, ServerKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, Options{Hosts: []string{"127.0.0.1"}}); err == nil || !strings.Contains(err.Error(), "only one of server.pem and server-key.pem") {
		t.Fatalf("got %v, want a refusal of the half pair", err)
	}
	if _, err := Write(dir, Options{Clients: []string{"a/b"}}); err == nil {
		t.Fatal("a client name with a slash was accepted")
	}
}
