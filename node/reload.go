package node

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/datamesh/datamesh/node/embed"
)

// ConfigSource reads the node's configuration again (the config file, the
// environment and the flags the process started with), for Reload.
type ConfigSource func() (Config, error)

// SetConfigSource gives the node the way to read its configuration again:
// dm.admin.reload (and `datamesh reload`) use it. Call before Start.
func (n *Node) SetConfigSource(src ConfigSource) { n.source = src }

// ReloadFromSource reads the configuration again and applies it: what
// SIGHUP and dm.admin.reload do.
func (n *Node) ReloadFromSource() error {
	if n.source == nil {
		return errors.New("this node was not started with a config it can read again (no config source)")
	}
	cfg, err := n.source()
	if err != nil {
		n.log.Error("config reload refused; the old config stays", "error", err)
		return fmt.Errorf("reload: the new config is refused, the old one stays: %w", err)
	}
	return n.Reload(cfg)
}

// Reload applies what may change at run time: services and their grants,
// insecure, peers, TLS certificates (tls, leaf_tls, http_tls) and the mesh
// seed. Everything else needs a restart: a config that changes it is
// refused whole, like an invalid one, and the old one stays.
func (n *Node) Reload(cfg Config) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	refuse := func(err error) error {
		n.log.Error("config reload refused; the old config stays", "error", err)
		return fmt.Errorf("reload: the new config is refused, the old one stays: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return refuse(err)
	}
	if changed := restartOnly(n.cfg, cfg); len(changed) > 0 {
		return refuse(fmt.Errorf("%s changed: restart the node to apply it", strings.Join(changed, ", ")))
	}
	if err := cfg.secureCheck(); err != nil {
		return refuse(err)
	}
	sc, err := cfg.serverConfigWithSeed()
	if err != nil {
		return refuse(err)
	}
	if err := n.srv.Reload(sc); err != nil {
		return refuse(err)
	}
	n.mesh.AddPeers(sortedPeers(cfg))
	if n.monitor != nil {
		if err := n.monitor.ReloadTLS(); err != nil {
			n.log.Error("http_tls: certificate reload failed; the old certificate stays", "error", err)
		}
	}
	// Only what may change: other goroutines read the rest of n.cfg.
	n.cfg.Services, n.cfg.Insecure, n.cfg.Peers = cfg.Services, cfg.Insecure, cfg.Peers
	n.cfg.TLS, n.cfg.LeafTLS, n.cfg.HTTPTLS, n.cfg.MeshSeed = cfg.TLS, cfg.LeafTLS, cfg.HTTPTLS, cfg.MeshSeed
	n.logSecurity()
	n.log.Info("config reloaded", "services", len(cfg.Services), "peers", len(cfg.Peers))
	return nil
}

// reloadable are the config keys Reload applies.
var reloadable = map[string]bool{"services": true, "insecure": true, "peers": true, "tls": true,
	"leaf_tls": true, "http_tls": true, "mesh_seed": true}

// restartOnly names the keys that differ between old and cfg and that only
// a restart applies.
func restartOnly(old, cfg Config) []string {
	var changed []string
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(cfg)
	t := ov.Type()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if key == "-" || key == "" {
			key = t.Field(i).Name
		}
		if reloadable[key] {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			changed = append(changed, key)
		}
	}
	return changed
}

// serverConfigWithSeed is the server's config with the mesh seed read
// from its file.
func (c Config) serverConfigWithSeed() (embed.Config, error) {
	sc := c.serverConfig()
	if c.MeshSeed == "" {
		return sc, nil
	}
	if err := checkSeedFile(c.MeshSeed); err != nil {
		return sc, err
	}
	seed, err := os.ReadFile(c.MeshSeed)
	if err != nil {
		return sc, fmt.Errorf("mesh_seed: %w", err)
	}
	sc.MeshSeed = []byte(strings.TrimSpace(string(seed)))
	return sc, nil
}

// logSecurity says at start (and after a reload) who may sign in.
func (n *Node) logSecurity() {
	c := n.cfg
	switch {
	case len(c.Services) > 0:
		for _, s := range c.Services {
			if s.Password != "" && !strings.HasPrefix(s.Password, "$2") {
				n.log.Warn("service has a plain-text password; store a bcrypt hash (`datamesh keys bcrypt`)", "service", s.Name)
			}
		}
		n.log.Info("services sign in with their grants; anonymous clients are refused", "services", len(c.Services))
	case c.Insecure:
		n.log.Warn("insecure: no services are configured and anonymous clients have full API access on every listener")
	default:
		n.log.Info("no services configured: anonymous clients have full API access, on loopback listeners only (docs/security.md)")
	}
}

// checkCredentials refuses a user and password that match no service
// (nats.ErrAuthorization), as the server would, before an in-process
// sign-in. Other sign-ins (nkeys, anonymous) are left to the server.
func (n *Node) checkCredentials(opts []nats.Option) error {
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	n.reloadMu.Lock()
	services := n.cfg.Services
	n.reloadMu.Unlock()
	if o.User == "" || len(services) == 0 {
		return nil
	}
	for _, s := range services {
		if s.Name == o.User && s.Password != "" && passwordMatches(s.Password, o.Password) {
			return nil
		}
	}
	return nats.ErrAuthorization
}

// passwordMatches compares as nats-server does: bcrypt when the stored
// password is a bcrypt hash, else the plain text in constant time.
func passwordMatches(stored, given string) bool {
	if strings.HasPrefix(stored, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(stored), []byte(given)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(given)) == 1
}
