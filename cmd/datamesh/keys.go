package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/datamesh/datamesh/node/tlsgen"
)

// bcryptCost is the cost of the hashes `keys bcrypt` makes (nats-server's
// own tool uses 11 too).
const bcryptCost = 11

func newKeysCmd() *cobra.Command {
	cmd := groupCmd("keys", "Make key material: TLS certificates, nkey seeds, bcrypt password hashes")
	cmd.AddCommand(newKeysTLSCmd(), newKeysNewCmd(), newKeysBcryptCmd())
	return cmd
}

func newKeysTLSCmd() *cobra.Command {
	var o tlsgen.Options
	var dir string
	cmd := &cobra.Command{
		Use:   "tls --dir DIR [--hosts H,...] [--client NAME ...]",
		Short: "Make a CA, a node certificate and client certificates for TLS (docs/security.md#tls)",
		Long: `tls writes a mesh's TLS material into DIR: ca.pem and ca-key.pem (the CA,
made once and reused when DIR holds it), server.pem and server-key.pem (a
node's certificate, valid for --hosts, for both serving and signing in to
peers) and, for each --client NAME, NAME.pem and NAME-key.pem (CN=NAME and
the DNS name NAME: tls.map maps it to the service NAME). Keys are mode 0600.
Existing files are never overwritten: run it again to add clients, or
remove server.pem and server-key.pem first to renew the node's certificate
under the same CA.`,
		Example: `  datamesh keys tls --dir tls --hosts 127.0.0.1,localhost,node1.example.com --client orders-svc`,
		Args:    positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir DIR is required")
			}
			res, err := tlsgen.Write(dir, o)
			for _, f := range res.Written {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", f)
			}
			for _, f := range res.Kept {
				fmt.Fprintf(cmd.OutOrStdout(), "kept %s (exists)\n", f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the files to (created if missing)")
	cmd.Flags().StringSliceVar(&o.Hosts, "hosts", []string{"127.0.0.1", "localhost"}, "IP addresses and DNS names of the node certificate")
	cmd.Flags().StringSliceVar(&o.Clients, "client", nil, "service to make a client certificate for (repeatable)")
	return cmd
}

func newKeysNewCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "new [--out FILE]",
		Short: "Make an nkey user seed and print its public key (for services' and peers' nkey)",
		Long: `new makes an nkey user key pair. With --out it writes the seed to FILE
(mode 0600; an existing FILE is refused) and prints the public key, which
goes into the config of the node that lets the key in (services[].nkey, or
peers.<name>.nkey). The seed file is what signs in: --nkey FILE for a client
command, mesh_seed for a node. Without --out the seed goes to stdout and
the public key to stderr.`,
		Example: `  datamesh keys new --out orders-svc.nk`,
		Args:    positional(),
		RunE:    func(cmd *cobra.Command, _ []string) error { return runKeysNew(cmd, out) },
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the seed to (mode 0600, must not exist)")
	return cmd
}

func runKeysNew(cmd *cobra.Command, out string) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	defer wipe(seed)
	pub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	if out == "" {
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n", seed)
		fmt.Fprintf(cmd.ErrOrStderr(), "public key: %s\n", pub)
		return nil
	}
	if err := tlsgen.WriteNew(out, append(seed, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), pub)
	return nil
}

func newKeysBcryptCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bcrypt",
		Short: "Hash a password read from stdin with bcrypt, for services[].password",
		Long: `bcrypt reads a password from stdin (the first line; at a terminal it asks
without echo) and prints its bcrypt hash (cost 11), which goes into the
node's config as services[].password: the node never holds the password.`,
		Example: `  printf '%s' "$ORDERS_PASSWORD" | datamesh keys bcrypt`,
		Args:    positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer wipe(pw)
			hash, err := bcrypt.GenerateFromPassword(pw, bcryptCost)
			if err != nil {
				return fmt.Errorf("bcrypt: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(hash))
			return nil
		},
	}
}

// readPassword reads the first line of in, without echo at a terminal.
func readPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	var pw []byte
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, err
		}
		pw = b
	} else {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		pw = []byte(strings.TrimRight(line, "\r\n"))
	}
	if len(pw) == 0 {
		return nil, errors.New("no password on stdin")
	}
	return pw, nil
}
