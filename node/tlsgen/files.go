package tlsgen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// The files of a directory of material (`datamesh keys tls --dir`).
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// DefaultCAName is the CA's common name unless Options say otherwise.
const DefaultCAName = "DataMesh CA"

// Modes of the files written: keys are for their owner only.
const (
	certMode fs.FileMode = 0o644
	keyMode  fs.FileMode = 0o600
)

// ClientFiles are the certificate and key files of the service name.
func ClientFiles(name string) (cert, key string) { return name + ".pem", name + "-key.pem" }

// Options say what Write makes.
type Options struct {
	// Hosts are the IP addresses and DNS names of the server certificate.
	Hosts []string
	// Clients are the services to make client certificates for.
	Clients []string
	// CAName is the CA's common name; DefaultCAName when empty.
	CAName string
}

// Result is what Write did, by file path.
type Result struct {
	Written []string
	// Kept are files that existed and were left as they were.
	Kept []string
}

var validClient = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Write fills dir with a mesh's material: the CA (read from dir when it
// already holds ca.pem and ca-key.pem), the server certificate (unless
// server.pem exists) and one certificate per client (unless its file
// exists). Keys are written with mode 0600. No file is ever overwritten:
// running Write again adds clients, and removing server.pem and
// server-key.pem first renews the server certificate under the same CA.
func Write(dir string, o Options) (Result, error) {
	var res Result
	for _, c := range o.Clients {
		if !validClient.MatchString(c) {
			return res, fmt.Errorf("client %q: a service name is letters, digits, '-' and '_'", c)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	ca, err := loadOrMakeCA(dir, o.CAName, &res)
	if err != nil {
		return res, err
	}
	if err := writePair(dir, ServerFile, ServerKeyFile, func() (Pair, error) { return ca.Server(o.Hosts) }, &res); err != nil {
		return res, err
	}
	for _, c := range o.Clients {
		cert, key := ClientFiles(c)
		if err := writePair(dir, cert, key, func() (Pair, error) { return ca.Client(c) }, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func loadOrMakeCA(dir, name string, res *Result) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certOK, keyOK := exists(certPath), exists(keyPath)
	switch {
	case certOK && keyOK:
		res.Kept = append(res.Kept, certPath, keyPath)
		return LoadCA(certPath, keyPath)
	case certOK || keyOK:
		return nil, fmt.Errorf("%s holds only one of %s and %s: restore the other or remove it", dir, CAFile, CAKeyFile)
	}
	if name == "" {
		name = DefaultCAName
	}
	ca, err := NewCA(name)
	if err != nil {
		return nil, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := WriteNew(keyPath, keyPEM, keyMode); err != nil {
		return nil, err
	}
	if err := WriteNew(certPath, ca.CertPEM, certMode); err != nil {
		return nil, err
	}
	res.Written = append(res.Written, certPath, keyPath)
	return ca, nil
}

func writePair(dir, certName, keyName string, issue func() (Pair, error), res *Result) error {
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	certOK, keyOK := exists(certPath), exists(keyPath)
	switch {
	case certOK && keyOK:
		res.Kept = append(res.Kept, certPath, keyPath)
		return nil
	case certOK || keyOK:
		return fmt.Errorf("%s holds only one of %s and %s: restore the other or remove it", dir, certName, keyName)
	}
	p, err := issue()
	if err != nil {
		return err
	}
	if err := WriteNew(keyPath, p.KeyPEM, keyMode); err != nil {
		return err
	}
	if err := WriteNew(certPath, p.CertPEM, certMode); err != nil {
		return err
	}
	res.Written = append(res.Written, certPath, keyPath)
	return nil
}

// WriteNew writes data to a new file at path with mode perm; it refuses
// to overwrite a file that exists.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: remove it first (it is never overwritten)", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
