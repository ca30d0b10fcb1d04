package embed

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// Config is what the server needs of the node's configuration, and the
// names its permissions protect.
type Config struct {
	// Name is the server's name and the JetStream domain.
	Name    string
	DataDir string
	Listen  string // host:port; port -1 picks a free port
	// NoListen opens no port at all (Listen and LeafListen are ignored):
	// only in-process connections reach the server. Restoring a backup
	// runs such a server on the new data directory.
	NoListen   bool
	LeafListen string // leafnode port for peers; "" disables it
	// Peers are the configured peer nodes, sorted by name.
	Peers      []Peer
	MaxPayload int32
	LogLevel   hclog.Level

	// Protected are subjects services may not publish to (the log's
	// subjects, change events, KV buckets' subjects).
	Protected []string
	// ProtectedStreams are streams services may read but not change.
	ProtectedStreams []string
	// Served are subjects only the node may subscribe to: its API.
	Served []string
	// ExportSubjects are the export streams' subjects, which peers may read
	// but not publish to.
	ExportSubjects string

	// Services are the identities that sign in to the client port, each
	// with allow lists made from its grants (grants.go). With none, every
	// client is the anonymous user with full API access.
	Services []Service
	// API names the subjects the services' grants open.
	API APISubjects
	// TLS secures the client port; LeafTLS the leaf port and this node's
	// leafnodes to its peers (tls.go).
	TLS     *TLS
	LeafTLS *TLS
	// MeshSeed is this node's nkey seed, with which it signs in to the
	// peers that know it by its public key (Peer.Nkey).
	MeshSeed []byte

	// ServerName is this server's name (Name when empty); unique in a
	// cluster.
	ServerName string
	// Cluster makes the server one of a JetStream cluster (nil: standalone).
	Cluster *Cluster
	// SyncAlways makes JetStream fsync every write (in a cluster with
	// fsync durability).
	SyncAlways bool
}

// Peer is a node this one shares events with. It signs in to this node
// with Secret, or with the seed of Nkey; this node signs in to it the
// same way (with MeshSeed when the peer is known by its nkey).
type Peer struct {
	Name   string
	Secret string
	Nkey   string
}

func (c Config) serverName() string {
	if c.ServerName != "" {
		return c.ServerName
	}
	return c.Name
}

func (c Config) peer(name string) Peer {
	for _, p := range c.Peers {
		if p.Name == name {
			return p
		}
	}
	return Peer{Name: name}
}

// SplitHostPort parses "host:port"; port -1 means a random free port, and
// an empty host means every interface.
func SplitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", hp, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: invalid port", hp)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// anonymousUser is the no-auth user every client signs in as when no
// services are configured.
const anonymousUser = "anonymous"

// options translates the config into nats-server options.
//
// The node's own in-process connections sign in with an nkey made at
// start-up that lives only in memory. Other clients are the configured
// services (grants.go), each with allow lists only; with no services,
// every client is anonymousUser (the no-auth user), which may do anything
// except write to the log or the registry behind the node's back, or
// serve the node's API. Peers' leafnodes land in their export accounts
// (accounts.go).
func (s *Server) options() (*server.Options, error) {
	cfg := s.cfg
	host, port := "", 0
	if !cfg.NoListen {
		var err error
		if host, port, err = SplitHostPort(cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	opts := &server.Options{
		ServerName:      cfg.serverName(),
		Host:            host,
		Port:            port,
		JetStream:       true,
		JetStreamDomain: cfg.Name,
		StoreDir:        cfg.DataDir,
		DontListen:      cfg.NoListen,
		NoSigs:          true,
		MaxPayload:      cfg.MaxPayload,
		Nkeys:           []*server.NkeyUser{{Nkey: s.keys.pub, AllowedConnectionTypes: inProcessOnly()}},
	}
	if len(cfg.Services) == 0 {
		opts.NoAuthUser = anonymousUser
		opts.Users = []*server.User{{Username: anonymousUser, Permissions: anonymousPermissions(cfg),
			// Not LEAFNODE: a leafnode without credentials must not land in
			// the node's own account (see meshAccounts).
			AllowedConnectionTypes: connectionTypes(connStandard, connWebsocket, connInProcess)}}
	} else {
		serviceUsers(cfg, opts)
	}
	if err := meshAccounts(cfg, s.keys, s.keys.dormant(cfg.Peers), opts); err != nil {
		return nil, err
	}
	if cfg.LeafListen != "" && !cfg.NoListen {
		var err error
		if opts.LeafNode.Host, opts.LeafNode.Port, err = SplitHostPort(cfg.LeafListen); err != nil {
			return nil, fmt.Errorf("leaf_listen: %w", err)
		}
		// Peers reach this node at the URL of their Link resources (maybe
		// through a proxy), never at addresses the server would gossip.
		opts.LeafNode.NoAdvertise = true
	}
	if err := tlsOptions(cfg, opts); err != nil {
		return nil, err
	}
	if err := clusterOptions(cfg, opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// Connection types (jwt.ConnectionType*) that users may be limited to.
const (
	connStandard  = "STANDARD"
	connWebsocket = "WEBSOCKET"
	connLeafnode  = "LEAFNODE"
	connInProcess = "IN_PROCESS"
)

func connectionTypes(types ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(types))
	for _, t := range types {
		m[t] = struct{}{}
	}
	return m
}

func inProcessOnly() map[string]struct{} { return connectionTypes(connInProcess) }

// anonymousPermissions keeps the log append-only through the API when no
// services are configured: anonymous clients may read the stream and
// create consumers, but not publish into event subjects, change or purge
// the stream, write the registry, or subscribe to the node's API subjects
// (which would steal requests). Only allowed on loopback (docs/security.md).
func anonymousPermissions(cfg Config) *server.Permissions {
	deny := append([]string{}, cfg.Protected...)
	for _, st := range cfg.ProtectedStreams {
		deny = append(deny, "$JS.API.STREAM.UPDATE."+st, "$JS.API.STREAM.DELETE."+st,
			"$JS.API.STREAM.PURGE."+st, "$JS.API.STREAM.MSG.DELETE."+st,
			// A snapshot copies redacted fields out; a restore replaces the
			// log. Backups go through dm.admin.backup.
			"$JS.API.STREAM.SNAPSHOT."+st, "$JS.API.STREAM.RESTORE."+st)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{">"}, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: append([]string{}, cfg.Served...)},
	}
}

// checkDataDir makes sure the data directory exists and is writable, so
// that a bad path is a one-line error rather than a JetStream failure later.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}
