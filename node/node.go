package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
)

// Version is the DataMesh version reported by discovery and the micro service.
const Version = "0.1.0"

// Node is one DataMesh node: an embedded NATS server with JetStream that
// holds the event log, the registry of contracts, and the API service.
type Node struct {
	cfg Config
	log hclog.Logger
	// keys sign the node's own connections in; see serverOptions.
	keys *nodeKeys

	// opts are the server's options as last (re)loaded; see mesh.reload.
	opts        *server.Options
	leafPort    int
	srv         *server.Server
	nc          *nats.Conn
	js          jetstream.JetStream
	registry    *registry
	natives     []nativeProjection
	transforms  map[string]meshlink.Transformer
	mesh        *mesh
	projections *projections
	svc         micro.Service
	events      *eventLog
	// committer writes single appends with group commit.
	committer *groupCommitter

	closeOnce sync.Once
	// gate lets API handlers run while the node is open: each holds a read
	// lock; Close takes the write lock, so it waits for the handlers under
	// way, and later ones answer unavailable (see gated).
	gate     sync.RWMutex
	closeErr error
}

// New validates cfg and returns a node that is not started yet.
func New(cfg Config, logger hclog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	keys, err := newNodeKeys(cfg)
	if err != nil {
		return nil, err
	}
	return &Node{cfg: cfg, log: logger.Named("node").With("node", cfg.Name), keys: keys}, nil
}

// Start runs the embedded server and the API, and returns once the node
// serves requests. On error everything started so far is closed again.
func (n *Node) Start(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		n.Close()
		return err
	}
	n.log.Info("node ready", "client_url", n.ClientURL(), "monitor", n.MonitorURL(), "domain", n.cfg.Name)
	return nil
}

func (n *Node) start(ctx context.Context) error {
	if err := checkDataDir(n.cfg.DataDir); err != nil {
		return err
	}
	opts, err := serverOptions(n.cfg, n.keys)
	if err != nil {
		return err
	}
	n.opts = opts
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	n.srv = srv
	level, _ := parseLevel(n.cfg.LogLevel)
	slog := newServerLogger(n.log.Named("nats"))
	srv.SetLoggerV2(slog, level <= hclog.Debug, level <= hclog.Trace, false)
	srv.Start()
	if err := waitReady(ctx, srv, slog.fatal); err != nil {
		return err
	}
	if err := enableJetStream(srv, n.cfg); err != nil {
		return err
	}
	// The server wrote the leafnode port it listens on (random for port -1)
	// into the options it was given.
	n.leafPort = opts.LeafNode.Port

	nc, err := n.Connect(nats.Name("datamesh-node"))
	if err != nil {
		return fmt.Errorf("internal connection: %w", err)
	}
	n.nc = nc
	n.js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(DefaultAppendTimeout),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if n.events, err = openEventLog(ctx, n.cfg, nc, n.js, n.log); err != nil {
		return err
	}
	if n.cfg.Durability == DurabilityFsync {
		// Group commit shares one fsync among the appends that wait for it.
		// In os mode there is no fsync to share, and atomic batches (staged
		// in a file of their own before the commit) are slower than
		// pipelined single publishes: measured 22.7k vs 38k events/s.
		n.committer = newGroupCommitter(n)
	}
	if n.registry, err = openRegistry(ctx, n.js, n.log); err != nil {
		return err
	}
	n.projections = &projections{cfg: n.cfg, kv: n.registry.kv, log: n.log, head: n.events.head,
		connect: func() (*nats.Conn, error) { return n.Connect(nats.Name("datamesh-projection")) }}
	// Workers live until Close, not until the end of Start's ctx.
	if err := n.projections.open(context.WithoutCancel(ctx), n.natives); err != nil {
		return err
	}
	n.mesh = newMesh(n)
	if err := n.mesh.open(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := n.startService(); err != nil {
		return err
	}
	// The API's subscriptions must be in place before Start returns, or a
	// client's first request can find no responders.
	return n.nc.Flush()
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

// Connect opens an in-process connection with the node's own rights. It is
// how the node's workers, and Go programs that embed the node, talk to it.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(n.srv), nats.Nkey(n.keys.pub, n.keys.kp.Sign)}, opts...)
	return nats.Connect("", opts...)
}

// connectAccount opens an in-process connection into one of the mesh
// accounts (see meshAccounts).
func (n *Node) connectAccount(account string, opts ...nats.Option) (*nats.Conn, error) {
	k := n.keys.account(account)
	if k == nil {
		return nil, fmt.Errorf("no account %s: is the peer configured?", account)
	}
	opts = append([]nats.Option{nats.InProcessServer(n.srv), nats.Nkey(k.pub, k.kp.Sign), nats.MaxReconnects(-1)}, opts...)
	return nats.Connect("", opts...)
}

// PeerConn opens a connection with exactly the rights this node's links
// have on peer's node: it reaches the peer's exports granted to this node
// (JetStream domain = the peer's name) and nothing else. Programs and tests
// use it to see what a peer can and cannot do.
func (n *Node) PeerConn(peer string, opts ...nats.Option) (*nats.Conn, error) {
	return n.connectAccount(peerAccount(peer), opts...)
}

// LeafURL is the leafnode URL peers link to, or "" if leaf_listen is off.
func (n *Node) LeafURL() string {
	if n.leafPort <= 0 || n.cfg.LeafListen == "" {
		return ""
	}
	host, _, _ := splitHostPort(n.cfg.LeafListen)
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("nats-leaf://%s", net.JoinHostPort(host, strconv.Itoa(n.leafPort)))
}

// enableJetStream turns JetStream on in the global account and in every
// export account. nats-server does it by itself only when no account is
// configured (a node without peers).
func enableJetStream(srv *server.Server, cfg Config) error {
	names := []string{server.DEFAULT_GLOBAL_ACCOUNT}
	for _, peer := range sortedPeers(cfg) {
		names = append(names, exportAccount(peer))
	}
	for _, name := range names {
		acc, err := srv.LookupAccount(name)
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

// ClientURL is the URL services connect to.
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// MonitorURL is the base URL of the HTTP monitoring endpoint, or "" if disabled.
func (n *Node) MonitorURL() string {
	if n.srv == nil {
		return ""
	}
	if a := n.srv.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Name is the node's name, also its JetStream domain.
func (n *Node) Name() string { return n.cfg.Name }

// Close stops the API, drains the internal connection and shuts the server
// down. It is safe to call more than once and returns the first error.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.svc != nil {
			errs = append(errs, n.svc.Stop())
		}
		// Stop only starts draining the endpoints; wait for the handlers
		// under way before closing what they use.
		n.gate.Lock()
		if n.committer != nil {
			n.committer.close()
		}
		if n.mesh != nil {
			n.mesh.close()
		}
		if n.projections != nil {
			errs = append(errs, n.projections.close())
		}
		if n.events != nil {
			n.events.close()
		}
		if n.nc != nil {
			if err := n.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, err)
			}
			n.nc.Close()
		}
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// Server returns the embedded nats-server, for programs that embed the node
// and need more than a client connection (monitoring, tests).
func (n *Node) Server() *server.Server { return n.srv }

// RegisterProjection adds a projection written in Go (folder) to a node that
// is not started yet. It runs with the same guarantees as a resource
// projection, but is defined by the program, not stored in the registry.
// spec gives its name, version, source, indexes and options; its key and
// handlers may stay empty.
func (n *Node) RegisterProjection(spec *projection.Spec, folder projection.Folder) error {
	if n.srv != nil {
		return errors.New("register projections before Start")
	}
	if folder == nil {
		return errors.New("a native projection needs a folder")
	}
	n.natives = append(n.natives, nativeProjection{spec: spec, folder: folder})
	return nil
}

// RegisterTransformer gives the link called name a transformer written in
// Go, on a node that is not started yet. It replaces the link's transform
// expressions; the Link resource still says where to import from.
func (n *Node) RegisterTransformer(name string, t meshlink.Transformer) error {
	if n.srv != nil {
		return errors.New("register transformers before Start")
	}
	if t == nil {
		return errors.New("a native transformer must not be nil")
	}
	if n.transforms == nil {
		n.transforms = map[string]meshlink.Transformer{}
	}
	n.transforms[name] = t
	return nil
}
