package embed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds the wait for a started server to accept clients.
const readyTimeout = 30 * time.Second

// Server is the embedded nats-server with JetStream.
type Server struct {
	cfg  Config
	log  hclog.Logger
	keys *keys

	srv      *server.Server
	leafPort int

	// reloadMu serializes reloads; opts are the options as last (re)loaded,
	// remotes the leafnode URL of each peer this node links to.
	reloadMu sync.Mutex
	opts     *server.Options
	remotes  map[string]string

	closeOnce sync.Once
}

// New checks cfg and makes the node's in-memory keys; Start runs the server.
func New(cfg Config, logger hclog.Logger) (*Server, error) {
	k, err := newKeys(cfg.Peers)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: logger.Named("nats"), keys: k}, nil
}

// Start runs the server and returns once it accepts clients with
// JetStream enabled in every account that holds streams.
func (s *Server) Start(ctx context.Context) error {
	if err := checkDataDir(s.cfg.DataDir); err != nil {
		return err
	}
	opts, err := s.options()
	if err != nil {
		return err
	}
	s.opts = opts
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.srv = srv
	slog := newServerLogger(s.log)
	srv.SetLoggerV2(slog, s.cfg.LogLevel <= hclog.Debug, s.cfg.LogLevel <= hclog.Trace, false)
	slog.hold()
	srv.Start()
	if err := waitReady(ctx, srv, slog.fatal); err != nil {
		slog.release(false)
		return err
	}
	slog.release(true)
	// Before the quorum: on a cluster, the meta leader may place a stream
	// on this server as soon as it is up, and a member whose account has
	// no JetStream yet rejects it (eventlog.Ensure retries what is left).
	if err := s.enableJetStream(); err != nil {
		return err
	}
	if err := s.waitQuorum(ctx); err != nil {
		return err
	}
	// The server wrote the leafnode port it listens on (random for port -1)
	// into the options it was given.
	s.leafPort = opts.LeafNode.Port
	return nil
}

// waitReady polls until the server accepts clients, the server reports a
// fatal error (port in use, JetStream cannot start), or ctx ends.
func waitReady(ctx context.Context, srv *server.Server, fatal <-chan error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case err := <-fatal:
			return err
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if srv.ReadyForConnections(20 * time.Millisecond) {
			// A fatal error can race with readiness of the client port.
			select {
			case err := <-fatal:
				return err
			default:
			}
			if srv.JetStreamEnabled() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("nats server did not become ready in time")
		}
	}
}

// enableJetStream turns JetStream on in the global account and in every
// export account. nats-server does it by itself only when no account is
// configured (a node without peers).
func (s *Server) enableJetStream() error {
	names := []string{NodeAccount}
	for _, peer := range s.cfg.Peers {
		names = append(names, exportAccount(peer.Name))
	}
	for _, name := range s.keys.dormant(s.cfg.Peers) {
		names = append(names, exportAccount(name))
	}
	for _, name := range names {
		acc, err := s.srv.LookupAccount(name)
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		if acc.JetStreamEnabled() {
			continue
		}
		if err := acc.EnableJetStream(nil, nil); err != nil {
			return fmt.Errorf("enable JetStream in account %s: %w", name, err)
		}
	}
	return nil
}

// NodeAccount is the account of the node's own log, registry and API.
const NodeAccount = server.DEFAULT_GLOBAL_ACCOUNT

// StreamDir is the directory of the files of stream in account: nats-server's
// file store layout, <store dir>/jetstream/<account>/streams/<stream>
// (checked by eventlog's TestFileStoreLayoutAndFlushInPlace). JetStream
// runs without sync_always; the node fsyncs these files itself in fsync
// mode (eventlog.StreamFiles).
func (s *Server) StreamDir(account, stream string) string {
	return filepath.Join(s.cfg.DataDir, "jetstream", account, "streams", stream)
}

// Close shuts the server down and waits for it. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.srv != nil {
			s.srv.Shutdown()
			s.srv.WaitForShutdown()
		}
	})
	return nil
}

// NATS is the running nats-server, for programs that need more than a
// client connection (monitoring, tests).
func (s *Server) NATS() *server.Server { return s.srv }

// Connect opens an in-process connection with the node's own rights.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return s.connect(s.keys, opts)
}

// ConnectAs opens an in-process connection that signs in with opts' own
// credentials (a service's user and password, nkey, or none for the
// anonymous user): it has exactly that identity's rights.
func (s *Server) ConnectAs(opts ...nats.Option) (*nats.Conn, error) {
	if s.srv == nil {
		return nil, errors.New("the node is not started")
	}
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(s.srv)}, opts...)...)
}

// ConnectExport opens an in-process connection into the account that holds
// the export streams granted to peer.
func (s *Server) ConnectExport(peer string, opts ...nats.Option) (*nats.Conn, error) {
	return s.connectAccount(exportAccount(peer), opts)
}

// ConnectPeer opens a connection with exactly the rights this node's links
// have on peer's node: it reaches the peer's exports granted to this node
// (JetStream domain = the peer's name) and nothing else.
func (s *Server) ConnectPeer(peer string, opts ...nats.Option) (*nats.Conn, error) {
	return s.connectAccount(peerAccount(peer), opts)
}

func (s *Server) connectAccount(account string, opts []nats.Option) (*nats.Conn, error) {
	k := s.keys.account(account)
	if k == nil {
		return nil, fmt.Errorf("no account %s: is the peer configured?", account)
	}
	return s.connect(k, append([]nats.Option{nats.MaxReconnects(-1)}, opts...))
}

func (s *Server) connect(k *keys, opts []nats.Option) (*nats.Conn, error) {
	return s.ConnectAs(append([]nats.Option{nats.Nkey(k.pub, k.kp.Sign)}, opts...)...)
}

// SetRemotes makes the server solicit one leafnode per peer at its URL,
// bound to the peer's account here and signed in with the shared secret
// or this node's seed.
func (s *Server) SetRemotes(remotes map[string]string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	opts := s.opts.Clone()
	list, err := s.remoteList(s.cfg, remotes)
	if err != nil {
		return err
	}
	opts.LeafNode.Remotes = list
	if err := s.srv.ReloadOptions(opts); err != nil {
		return err
	}
	s.opts, s.remotes = opts, remotes
	s.log.Info("leafnode remotes", "peers", strings.Join(slices.Sorted(maps.Keys(remotes)), ","))
	return nil
}

func (s *Server) remoteList(cfg Config, remotes map[string]string) ([]*server.RemoteLeafOpts, error) {
	var list []*server.RemoteLeafOpts
	for _, p := range slices.Sorted(maps.Keys(remotes)) {
		// A peer that is a cluster: each server's URL, comma separated;
		// nats-server fails over between them.
		var urls []*url.URL
		for _, one := range strings.Split(remotes[p], ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil {
				return nil, fmt.Errorf("peer %s: %w", p, err)
			}
			urls = append(urls, u)
		}
		remote, err := s.remote(cfg, cfg.peer(p), urls)
		if err != nil {
			return nil, fmt.Errorf("peer %s: %w", p, err)
		}
		list = append(list, remote)
	}
	return list, nil
}

// Reload applies cfg's services, grants, peers and TLS certificates to the
// running server through nats-server's own reload: a connection whose user
// is gone is closed, and live connections get their new permissions. The
// listeners, the data directory and the API subjects stay as they are
// (Reload refuses a change to them); a refused reload leaves the server as
// it was.
func (s *Server) Reload(cfg Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if err := sameListeners(s.cfg, cfg); err != nil {
		return err
	}
	if err := s.keys.addPeers(cfg.Peers); err != nil {
		return err
	}
	next := &Server{cfg: cfg, keys: s.keys}
	opts, err := next.options()
	if err != nil {
		return err
	}
	// The ports the server listens on (random ones resolved at start).
	cur := s.opts
	opts.Host, opts.Port = cur.Host, cur.Port
	opts.LeafNode.Host, opts.LeafNode.Port = cur.LeafNode.Host, cur.LeafNode.Port
	opts.Cluster.Host, opts.Cluster.Port = cur.Cluster.Host, cur.Cluster.Port
	if opts.LeafNode.Remotes, err = s.remoteList(cfg, s.remotes); err != nil {
		return err
	}
	if err := s.srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("reload: %s", redact(err.Error(), cfg, s.cfg))
	}
	s.cfg, s.opts = cfg, opts
	return s.enableJetStream()
}

// sameListeners refuses a reload that would change what only a restart
// changes.
func sameListeners(old, cfg Config) error {
	var changed []string
	for _, f := range []struct {
		name     string
		old, new string
	}{{"name", old.Name, cfg.Name}, {"data", old.DataDir, cfg.DataDir}, {"listen", old.Listen, cfg.Listen},
		{"leaf_listen", old.LeafListen, cfg.LeafListen}} {
		if f.old != f.new {
			changed = append(changed, f.name)
		}
	}
	if old.TLS.Enabled() != cfg.TLS.Enabled() {
		changed = append(changed, "tls (on or off)")
	}
	if len(changed) > 0 {
		return fmt.Errorf("reload: %s changed: restart the node to apply it", strings.Join(changed, ", "))
	}
	return nil
}

// ExportConnected reports whether peer's leafnode is connected to its export account.
// On a cluster the peer's leafnode may be on another server: the account's
// count of leafnodes includes those its servers announce.
func (s *Server) ExportConnected(peer string) bool {
	if s.leafConnected(exportAccount(peer)) {
		return true
	}
	acc, err := s.srv.LookupAccount(exportAccount(peer))
	return err == nil && acc.NumLeafNodes() > 0
}

// PeerConnected reports whether this node's leafnode to peer is up.
func (s *Server) PeerConnected(peer string) bool { return s.leafConnected(peerAccount(peer)) }

func (s *Server) leafConnected(account string) bool {
	lz, err := s.srv.Leafz(&server.LeafzOptions{Account: account})
	return err == nil && len(lz.Leafs) > 0
}

// ClientURL is the URL services connect to.
func (s *Server) ClientURL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// LeafURL is the leafnode URL peers link to, or "" if the port is off.
func (s *Server) LeafURL() string {
	if s.leafPort <= 0 || s.cfg.LeafListen == "" {
		return ""
	}
	host, _, _ := SplitHostPort(s.cfg.LeafListen)
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "nats-leaf"
	if s.cfg.LeafTLS.Enabled() {
		scheme = "tls" // peers link with TLS (leaf_tls)
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, strconv.Itoa(s.leafPort)))
}

// redact hides every password, secret and seed of the configs in msg:
// nats-server's errors may print options (a remote's URL with its
// credentials).
func redact(msg string, cfgs ...Config) string {
	for _, c := range cfgs {
		var secrets []string
		for _, p := range c.Peers {
			secrets = append(secrets, p.Secret, url.UserPassword(c.Name, p.Secret).String())
		}
		for _, svc := range c.Services {
			secrets = append(secrets, svc.Password)
		}
		secrets = append(secrets, string(c.MeshSeed))
		for _, sec := range secrets {
			if len(sec) >= 4 {
				msg = strings.ReplaceAll(msg, sec, "[redacted]")
			}
		}
	}
	return msg
}
