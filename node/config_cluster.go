package node

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/datamesh/datamesh/node/embed"
)

// Cluster makes the node one server of a JetStream cluster (docs/cluster.md).
type Cluster struct {
	// Name is the cluster's name; the node's name when empty.
	Name string `json:"name,omitempty"`
	// Listen is the route address the other servers connect to.
	Listen string `json:"listen"`
	// Routes are the other servers' route URLs (nats-route://host:port);
	// listing every server, this one included, is fine.
	Routes []string `json:"routes,omitempty"`
	// TLS makes the routes mutual TLS: every server presents its cert and
	// accepts only route certificates signed by ca (docs/cluster.md#route-security).
	TLS *TLS `json:"tls,omitempty"`
}

// clustered reports whether the node is a server of a cluster.
func (c Config) clustered() bool { return c.Cluster != nil }

// replicas is the replica count of every stream the node creates: the
// setting, or 3 in a cluster and 1 standalone.
func (c Config) replicas() int {
	switch {
	case c.Replicas > 0:
		return c.Replicas
	case c.clustered():
		return 3
	default:
		return 1
	}
}

// serverName is this server's name: the setting, the node's name
// standalone, the host name in a cluster.
func (c Config) serverName() string {
	switch {
	case c.ServerName != "":
		return c.ServerName
	case c.clustered():
		return DefaultName()
	default:
		return c.Name
	}
}

// validateCluster checks server_name, cluster and replicas.
func (c Config) validateCluster() []error {
	var errs []error
	if c.ServerName != "" && !validName.MatchString(c.ServerName) {
		errs = append(errs, fmt.Errorf("server_name %q: use letters, digits, '-' and '_' only", c.ServerName))
	}
	switch c.Replicas {
	case 0, 1, 3, 5:
	default:
		errs = append(errs, fmt.Errorf("replicas %d: want 1, 3 or 5", c.Replicas))
	}
	if c.Cluster == nil {
		if c.Replicas > 1 {
			errs = append(errs, fmt.Errorf("replicas %d: needs a cluster (cluster.listen and cluster.routes)", c.Replicas))
		}
		return errs
	}
	if c.Cluster.Name != "" && !validName.MatchString(c.Cluster.Name) {
		errs = append(errs, fmt.Errorf("cluster.name %q: use letters, digits, '-' and '_' only", c.Cluster.Name))
	}
	if _, _, err := embed.SplitHostPort(c.Cluster.Listen); err != nil {
		errs = append(errs, fmt.Errorf("cluster.listen: %w", err))
	}
	if len(c.Cluster.Routes) == 0 {
		errs = append(errs, errors.New("cluster.routes: list the other servers' route URLs (nats-route://host:port)"))
	}
	for _, r := range c.Cluster.Routes {
		if u, err := url.Parse(r); err != nil || u.Host == "" || (u.Scheme != "nats-route" && u.Scheme != "nats") {
			errs = append(errs, fmt.Errorf("cluster.routes: %q: want nats-route://host:port", r))
		}
	}
	if err := c.checkRouteSecurity(); err != nil {
		errs = append(errs, err)
	}
	return append(errs, checkRouteTLS(c.Cluster.TLS)...)
}

// checkRouteTLS checks cluster.tls: the port's checks, and a CA, which
// routes always verify each other against (nats-server forces verify on
// a cluster's tls block).
func checkRouteTLS(t *TLS) []error {
	if t == nil || *t == (TLS{}) {
		return nil
	}
	errs := checkTLS("cluster.tls", t)
	if t.CA == "" {
		errs = append(errs, errors.New("cluster.tls.ca: required: the CA that signs every server's route certificate (PEM)"))
	}
	return errs
}

// checkRouteSecurity refuses a route listener off loopback that anyone
// who reaches it could join: without cluster.tls a route has no
// authentication, and a server that joins is trusted with every stream.
// insecure accepts it (a private network).
func (c Config) checkRouteSecurity() error {
	if c.Cluster == nil || c.Insecure || c.routeTLS() {
		return nil
	}
	host, _, err := embed.SplitHostPort(c.Cluster.Listen)
	if err != nil || embed.IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("cluster.listen %s is not a loopback address and routes have no TLS: anyone who reaches it could join the cluster; set cluster.tls (cert, key and ca; docs/cluster.md#route-security) or, on a private network, pass --insecure", c.Cluster.Listen)
}

// routeTLS reports whether the routes are mutual TLS.
func (c Config) routeTLS() bool { return c.Cluster != nil && c.Cluster.TLS.Enabled() }

// clusterConfig is the server's cluster options, nil standalone.
func (c Config) clusterConfig() *embed.Cluster {
	if c.Cluster == nil {
		return nil
	}
	name := c.Cluster.Name
	if name == "" {
		name = c.Name
	}
	cl := &embed.Cluster{Name: name, Listen: c.Cluster.Listen, Routes: c.Cluster.Routes}
	if c.routeTLS() {
		cl.TLS = c.Cluster.TLS
	}
	return cl
}

// ErrStandaloneData is the refusal to start a clustered server over a
// standalone node's data directory.
var ErrStandaloneData = errors.New("standalone data")

// checkNotStandalone refuses to start a clustered server on a data
// directory that holds a standalone node's streams: nats-server deletes the
// streams its cluster's meta group does not know about 30 s after start
// (checkForOrphans; nats-server issue 5467).
func (c Config) checkNotStandalone() error {
	if !c.clustered() {
		return nil
	}
	js := filepath.Join(c.DataDir, "jetstream")
	streams := filepath.Join(js, embed.NodeAccount, "streams", c.StreamName)
	meta := filepath.Join(js, "$SYS", "_js_", "_meta_")
	if _, err := os.Stat(streams); err != nil {
		return nil
	}
	if _, err := os.Stat(meta); err == nil {
		return nil
	}
	return fmt.Errorf("%w: data %s holds a standalone node's log, which a clustered server would delete: keep it, run it standalone and take `datamesh backup --out FILE`, start the cluster on new empty data directories, then `datamesh restore --in FILE --server <a cluster server's URL>` (docs/cluster.md, \"Moving a standalone node into a cluster\")", ErrStandaloneData, c.DataDir)
}
