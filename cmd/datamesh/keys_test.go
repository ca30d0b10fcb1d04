package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantMode(t testing.TB, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %#o, want %#o", path, got, want)
	}
}

// TestKeysTLS: `keys tls` writes a CA, a server certificate for the hosts
// and a client certificate per service that chain to the CA; a second run
// keeps what exists and adds clients under the same CA.
func TestKeysTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out := mustCLI(t, nil, "keys", "tls", "--dir", dir, "--hosts", "127.0.0.1,node1.example.com", "--client", "orders-svc")
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "orders-svc.pem", "orders-svc-key.pem"} {
		if !strings.Contains(out, "wrote "+filepath.Join(dir, f)+"\n") {
			t.Fatalf("output does not say it wrote %s:\n%s", f, out)
		}
	}
	for _, k := range []string{"ca-key.pem", "server-key.pem", "orders-svc-key.pem"} {
		wantMode(t, filepath.Join(dir, k), 0o600)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, "ca.pem")))
	srv := readCert(t, filepath.Join(dir, "server.pem"))
	for _, host := range []string{"127.0.0.1", "node1.example.com"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Fatalf("server certificate for %s: %v", host, err)
		}
	}
	// The node's certificate also signs it in to peers that verify.
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("server certificate as a client's: %v", err)
	}
	cl := readCert(t, filepath.Join(dir, "orders-svc.pem"))
	if cl.Subject.CommonName != "orders-svc" || len(cl.DNSNames) != 1 || cl.DNSNames[0] != "orders-svc" {
		t.Fatalf("client certificate: CN %q, DNS names %v; want orders-svc for both", cl.Subject.CommonName, cl.DNSNames)
	}
	if _, err := cl.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate: %v", err)
	}

	out = mustCLI(t, nil, "keys", "tls", "--dir", dir, "--client", "billing-svc")
	if !strings.Contains(out, "kept "+filepath.Join(dir, "ca.pem")) || !strings.Contains(out, "kept "+filepath.Join(dir, "server.pem")) ||
		!strings.Contains(out, "wrote "+filepath.Join(dir, "billing-svc.pem")) {
		t.Fatalf("second run printed:\n%s", out)
	}
	if !readCert(t, filepath.Join(dir, "server.pem")).Equal(srv) {
		t.Fatal("the second run replaced server.pem")
	}
	if _, err := readCert(t, filepath.Join(dir, "billing-svc.pem")).Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("a client added later is not signed by the same CA: %v", err)
	}
	if _, err := cli(t, nil, "", "keys", "tls", "--dir", dir, "--client", "../evil"); err == nil {
		t.Fatal("a client name with a path was accepted")
	}
}

// TestKeysNew: `keys new --out` writes a user seed only its owner reads,
// prints its public key, and never overwrites a file.
func TestKeysNew(t *testing.T) {
	file := filepath.Join(t.TempDir(), "svc.nk")
	out := mustCLI(t, nil, "keys", "new", "--out", file)
	wantMode(t, file, 0o600)
	seed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		t.Fatalf("the file holds no seed: %v", err)
	}
	pub, _ := kp.PublicKey()
	if out != pub+"\n" || !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("printed %q, want the seed's public user key %s", out, pub)
	}
	if _, err := cli(t, nil, "", "keys", "new", "--out", file); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second run: got %v, want a refusal to overwrite", err)
	}
	if again, _ := os.ReadFile(file); !bytes.Equal(again, seed) {
		t.Fatal("the seed file changed")
	}
}

// TestKeysBcrypt: `keys bcrypt` hashes the first line of stdin at cost 11.
func TestKeysBcrypt(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"keys", "bcrypt"}, strings.NewReader("s3cret pass\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	hash := bytes.TrimSpace(out.Bytes())
	if err := bcrypt.CompareHashAndPassword(hash, []byte("s3cret pass")); err != nil {
		t.Fatalf("hash %s does not match the password: %v", hash, err)
	}
	if cost, _ := bcrypt.Cost(hash); cost != bcryptCost {
		t.Fatalf("cost %d, want %d", cost, bcryptCost)
	}
	if _, err := cli(t, nil, "", "keys", "bcrypt"); err == nil {
		t.Fatal("an empty stdin was hashed")
	}
}
