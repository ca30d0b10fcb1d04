package embed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
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

	// reloadMu serializes reloads; opts are the options as last (re)loaded.
	reloadMu sync.Mutex
	opts     *server.Options

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
	if err := s.enableJetStream(); err != nil {
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
	if s.srv == nil {
		return nil, errors.New("the node is not started")
	}
	opts = append([]nats.Option{nats.InProcessServer(s.srv), nats.Nkey(k.pub, k.kp.Sign)}, opts...)
	return nats.Connect("", opts...)
}

// SetRemotes makes the server solicit one leafnode per peer at its URL,
// bound to the peer's account here and signed in with the shared secret.
func (s *Server) SetRemotes(remotes map[string]string) error {
	peers := make([]string, 0, len(remotes))
	for p := range remotes {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	var list []*server.RemoteLeafOpts
	for _, p := range peers {
		u, err := url.Parse(remotes[p])
		if err != nil {
			return fmt.Errorf("peer %s: %w", p, err)
		}
		remote, err := s.remote(s.cfg.peer(p), u)
		if err != nil {
			return fmt.Errorf("peer %s: %w", p, err)
		}
		list = append(list, remote)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	opts := s.opts.Clone()
	opts.LeafNode.Remotes = list
	if err := s.srv.ReloadOptions(opts); err != nil {
		return err
	}
	s.opts = opts
	s.log.Info("leafnode remotes", "peers", strings.Join(peers, ","))
	return nil
}

// ExportConnected reports whether peer's leafnode is connected to its export account.
func (s *Server) ExportConnected(peer string) bool { return s.leafConnected(exportAccount(peer)) }

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
	return fmt.Sprintf("nats-leaf://%s", net.JoinHostPort(host, strconv.Itoa(s.leafPort)))
}
