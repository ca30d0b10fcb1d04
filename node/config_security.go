package node

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/datamesh/datamesh/node/embed"
)

// Service is one service's identity and grants (embed.Service documents
// each key; docs/security.md the whole model).
type Service = embed.Service

// TLS is the TLS material of one port.
type TLS = embed.TLS

// secureCheck is the secure-by-default rule: with no services configured,
// every listener must be on a loopback address unless insecure is set.
func (c Config) secureCheck() error {
	if err := c.checkRouteSecurity(); err != nil {
		return err
	}
	if len(c.Services) > 0 || c.Insecure {
		return nil
	}
	for _, l := range c.listeners() {
		// Routes do not sign in as services: checkRouteSecurity.
		if l.Addr == "" || l.Setting == "cluster.listen" {
			continue
		}
		host, _, err := embed.SplitHostPort(l.Addr)
		if err != nil {
			continue
		}
		if !embed.IsLoopback(host) {
			return fmt.Errorf("%s %s is not a loopback address and no services are configured: anyone who reaches it could use every API; configure services (docs/security.md) or pass --insecure", l.Setting, l.Addr)
		}
	}
	return nil
}

// validateServices checks the services' identities and grants.
func (c Config) validateServices() []error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range c.Services {
		at := fmt.Sprintf("services[%d]", i)
		if s.Name != "" {
			at = "services." + s.Name
		}
		if !validName.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q: use letters, digits, '-' and '_' only", at, s.Name))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("%s: the name is used twice", at))
		}
		seen[s.Name] = true
		creds := 0
		for _, v := range []string{s.Password, s.Nkey} {
			if v != "" {
				creds++
			}
		}
		mapped := c.TLS != nil && c.TLS.Map
		if creds == 0 && !mapped {
			errs = append(errs, fmt.Errorf("%s: a password or an nkey is required (or tls.map: a client certificate)", at))
		}
		if creds > 1 {
			errs = append(errs, fmt.Errorf("%s: give a password or an nkey, not both", at))
		}
		if s.Nkey != "" && !nkeys.IsValidPublicUserKey(s.Nkey) {
			errs = append(errs, fmt.Errorf("%s: nkey: not a public user nkey (U…; `datamesh keys new` makes one)", at))
		}
		for _, g := range []struct {
			key  string
			list []string
		}{{"append", s.Append}, {"read", s.Read}, {"query", s.Query}, {"consume", s.Consume}, {"consumers", s.Consumers}} {
			for _, v := range g.list {
				if err := checkGrant(g.key, v); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", at, err))
				}
			}
		}
	}
	return errs
}

// checkGrant refuses grant values NATS permissions cannot express:
// they match whole subject tokens, so "*" is every name and a prefix
// pattern such as "order-*" cannot be enforced by the server.
func checkGrant(key, v string) error {
	if v == "*" && key != "consumers" {
		return nil
	}
	if strings.Contains(v, "*") {
		return fmt.Errorf("%s: %q: a grant is a name or \"*\" (all); NATS permissions match whole subject tokens, so a prefix pattern cannot be enforced: list the names", key, v)
	}
	if !validName.MatchString(v) {
		return fmt.Errorf("%s: %q: use letters, digits, '-' and '_' only", key, v)
	}
	return nil
}

// checkSeedFile refuses a seed file others can read.
func checkSeedFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("mesh_seed: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("mesh_seed %s: mode %#o lets others read the seed; chmod 600 it", path, st.Mode().Perm())
	}
	return nil
}

// checkPeer checks how a peer signs in: a shared secret or its nkey.
func checkPeer(name string, p Peer) []error {
	var errs []error
	switch {
	case p.Nkey != "" && p.Secret != "":
		errs = append(errs, fmt.Errorf("peers.%s: give a secret or an nkey, not both", name))
	case p.Nkey != "":
		if !nkeys.IsValidPublicUserKey(p.Nkey) {
			errs = append(errs, fmt.Errorf("peers.%s.nkey: not a public user nkey (U…: the peer's `datamesh keys new` prints it)", name))
		}
	case len(p.Secret) < 8:
		errs = append(errs, fmt.Errorf("peers.%s.secret: at least 8 characters are required (or an nkey)", name))
	}
	return errs
}
