package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
)

// credFlags are how a client command signs in and what TLS it speaks.
// Each has its DATAMESH_ variable (envName): DATAMESH_USER,
// DATAMESH_PASSWORD, DATAMESH_NKEY, DATAMESH_TLS_CA, DATAMESH_TLS_CERT,
// DATAMESH_TLS_KEY.
type credFlags struct {
	user, password, nkey   string
	tlsCA, tlsCert, tlsKey string
}

func (f *credFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.user, "user", "", "service to sign in as, with --password; also names the reply inbox (_INBOX_<user>)")
	fs.StringVar(&f.password, "password", "", "the service's password (prefer DATAMESH_PASSWORD: flags show in ps)")
	fs.StringVar(&f.nkey, "nkey", "", "file of the service's nkey seed (datamesh keys new) to sign in with")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate that signs the node's certificate; turns TLS on")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "client certificate, for a node that verifies or maps certificates")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key of --tls-cert")
}

// options are the nats options of the flags: credentials, TLS, and the
// inbox prefix the node allows the service (_INBOX_<service>, or
// _INBOX_<public nkey>). Errors never hold a secret.
func (f *credFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	inbox := f.user
	switch {
	case f.password != "" && f.user == "":
		return nil, errors.New("--password needs --user (DATAMESH_USER): the service to sign in as")
	case f.password != "" && f.nkey != "":
		return nil, errors.New("give --user/--password or --nkey, not both")
	case f.password != "":
		opts = append(opts, nats.UserInfo(f.user, f.password))
	case f.nkey != "":
		pub, kp, err := loadSeed(f.nkey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
		if inbox == "" {
			inbox = pub
		}
	}
	tlsOpts, cn, err := f.tlsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, tlsOpts...)
	if inbox == "" {
		// A node that maps certificates (tls.map) knows the service by its
		// certificate: `datamesh keys tls --client NAME` makes CN=NAME.
		inbox = cn
	}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix("_INBOX_"+inbox))
	}
	return opts, nil
}

// tlsOptions are the TLS options of the flags, and the common name of
// the client certificate.
func (f *credFlags) tlsOptions() ([]nats.Option, string, error) {
	var opts []nats.Option
	if f.tlsCA != "" {
		if err := checkPEMFile("--tls-ca", f.tlsCA); err != nil {
			return nil, "", err
		}
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, "", errors.New("--tls-cert and --tls-key go together (DATAMESH_TLS_CERT, DATAMESH_TLS_KEY)")
	}
	if f.tlsCert == "" {
		return opts, "", nil
	}
	pair, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s, --tls-key %s: %w", f.tlsCert, f.tlsKey, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s: %w", f.tlsCert, err)
	}
	return append(opts, nats.ClientCert(f.tlsCert, f.tlsKey)), cert.Subject.CommonName, nil
}

func checkPEMFile(flag, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s %s: no PEM certificate in the file", flag, path)
	}
	return nil
}

// loadSeed reads a user nkey seed file (a bare seed, as `datamesh keys
// new` writes, or a decorated creds file).
func loadSeed(path string) (string, nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("--nkey: %w", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(bytes.TrimSpace(b))
	wipe(b)
	if err != nil {
		return "", nil, fmt.Errorf("--nkey %s: not an nkey user seed (SU…; `datamesh keys new` writes one)", path)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", nil, fmt.Errorf("--nkey %s: %w", path, err)
	}
	return pub, kp, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// Hints of the errors of a refused connection.
const (
	authHint = "check --user/--password or --nkey (DATAMESH_USER, DATAMESH_PASSWORD, DATAMESH_NKEY)" +
		" and, on a node that maps certificates, --tls-cert/--tls-key"
	caHint         = "pass the CA that signs it with --tls-ca (DATAMESH_TLS_CA)"
	clientCertHint = "the node requires a client certificate: pass --tls-cert and --tls-key (DATAMESH_TLS_CERT, DATAMESH_TLS_KEY) signed by its CA"
)

// securityError says what to check when the node refused the sign-in or
// the TLS handshake failed; nil for other errors.
func securityError(server string, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		return fmt.Errorf("%s refused the sign-in (%v): %s", server, err, authHint)
	case errors.As(err, &host):
		return fmt.Errorf("%s: the node's certificate is not valid for this host (%v): connect with a name or address it holds (datamesh keys tls --hosts)", server, host)
	case errors.As(err, &unknownCA), errors.As(err, &verify) && errors.As(verify.Err, &unknownCA):
		return fmt.Errorf("%s: the node's certificate is signed by an unknown authority: %s", server, caHint)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%s does not speak TLS: use a nats:// URL without --tls-ca", server)
	case strings.Contains(err.Error(), "certificate required"), strings.Contains(err.Error(), "bad certificate"):
		return fmt.Errorf("%s refused the connection (%v): %s", server, err, clientCertHint)
	case errors.Is(err, nats.ErrTLS):
		return fmt.Errorf("%s: TLS failed (%v): check --tls-ca, --tls-cert and --tls-key", server, err)
	}
	return nil
}

// redactURL hides the password of credentials written into a URL list.
func redactURL(servers string) string {
	parts := strings.Split(servers, ",")
	for i, s := range parts {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.User == nil {
			continue
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
