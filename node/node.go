package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/console"
	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/metrics"
	"github.com/datamesh/datamesh/node/monitor"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/node/rejected"
	"github.com/datamesh/datamesh/node/resource"
	"github.com/datamesh/datamesh/projection"
)

// Version is the DataMesh version reported by discovery and the micro service.
const Version = protocol.Version

// Node is one DataMesh node: an embedded NATS server with JetStream that
// holds the event log, the registry, the projections, the mesh and the API.
// It builds these parts in order at Start and closes them in reverse.
type Node struct {
	cfg Config
	log hclog.Logger

	// Set before Start by RegisterProjection, RegisterTransformer and Use.
	natives    []projection.Native
	transforms map[string]meshlink.Transformer
	middleware []Middleware

	// source reads the config again for ReloadFromSource; reloadMu
	// serializes reloads.
	source   ConfigSource
	reloadMu sync.Mutex

	srv         *embed.Server
	nc          *nats.Conn
	events      *eventlog.Log
	rejected    *rejected.Record
	registry    *registry.Registry
	projections *projection.Manager
	mesh        *meshlink.Mesh
	backups     *backup.Runner
	api         *api.API
	monitor     *monitor.Monitor // nil when the HTTP port is off
	console     *console.Console // nil when the HTTP port is off
	metrics     *metrics.Metrics // nil when the HTTP port is off
	// syncMetrics is metrics once they exist, for the log's fsyncs (the
	// log starts before the metrics, whose collector reads it).
	syncMetrics atomic.Pointer[metrics.Metrics]

	// started lists the parts in the order they started; Close closes them
	// in reverse. That order is what lets every part finish its work:
	//   monitor (HTTP port)
	//   → api (no new requests; those under way are answered)
	//   → backup (a backup under way ends; its client hears unavailable)
	//   → mesh (links and exports stop appending and reading)
	//   → projections (workers stop reading the log)
	//   → registry → log (waits for the acks of appends in flight and, in
	//     fsync mode, for their fsync)
	//   → the node's connection (drained) → the server.
	started   []namedPart
	up        bool // Start succeeded: Close logs that the node stopped
	closeOnce sync.Once
	closeErr  error
}

// part is the lifecycle every long-running part of a node shares.
type part interface {
	Start(ctx context.Context) error
	Close() error
}

type namedPart struct {
	name string
	p    part
}

// Middleware wraps the handler of one API endpoint (see api.Middleware).
type Middleware = api.Middleware

// New validates cfg and returns a node that is not started yet.
func New(cfg Config, logger hclog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	log := logger.Named("node").With("node", cfg.Name)
	if cfg.clustered() {
		log = log.With("server", cfg.serverName())
	}
	return &Node{cfg: cfg, log: log}, nil
}

// Start runs the embedded server and every part, and returns once the node
// serves requests. On error everything started so far is closed again.
func (n *Node) Start(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		n.Close()
		return err
	}
	n.up = true
	n.log.Info("node ready", "client_url", n.ClientURL(), "monitor", n.MonitorURL(), "domain", n.cfg.Name)
	return nil
}

// startServer checks what would refuse the start, then starts the
// embedded server.
func (n *Node) startServer(ctx context.Context) (*embed.Server, error) {
	if err := n.cfg.secureCheck(); err != nil {
		return nil, err
	}
	if err := n.cfg.checkNotStandalone(); err != nil {
		return nil, err
	}
	if err := embed.CheckListen(n.cfg.listeners()...); err != nil {
		return nil, err
	}
	sc, err := n.cfg.serverConfigWithSeed()
	if err != nil {
		return nil, err
	}
	srv, err := embed.New(sc, n.log)
	if err != nil {
		return nil, err
	}
	n.logSecurity()
	n.srv = srv
	return srv, n.run(ctx, "server", srv)
}

func (n *Node) start(ctx context.Context) error {
	srv, err := n.startServer(ctx)
	if err != nil {
		return err
	}
	if n.nc, err = srv.Connect(nats.Name("datamesh-node")); err != nil {
		return fmt.Errorf("internal connection: %w", err)
	}
	n.started = append(n.started, namedPart{"connection", drainOnClose{n.nc}})
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var bucketDir func(string) string
	if !n.cfg.clustered() {
		bucketDir = n.streamDir
	}
	n.registry = registry.New(js, n.cfg.SubjectPrefix, bucketDir, n.cfg.ownsFsync(), n.log).WithReplicas(n.cfg.replicas())
	// The rejected record closes after the log: appends still in flight
	// at Close may be refused, and recorded.
	n.rejected = rejected.New(rejected.Config{Dir: n.streamDir(protocol.RejectedStream), Replicas: n.cfg.replicas()}, n.nc, n.log)
	if err := n.run(ctx, "rejected", n.rejected); err != nil {
		return err
	}
	n.events = eventlog.New(n.logConfig(), n.nc, n.registry, n.log)
	if err := n.run(ctx, "log", n.events); err != nil {
		return err
	}
	if err := n.run(ctx, "registry", n.registry); err != nil {
		return err
	}
	n.projections = projection.NewManager(n.projectionConfig(), n.log)
	if err := n.run(ctx, "projections", n.projections); err != nil {
		return err
	}
	n.mesh = meshlink.New(n.meshConfig(), meshlink.Deps{Log: meshLog{n.events}, Dialer: srv, Leafnodes: srv,
		Store: n.registry, Contracts: n.registry}, n.log)
	if n.cfg.clustered() {
		// Started after the projections: a change stored before is in
		// what they loaded, one stored after reaches them by the watch.
		// The mesh learns every export and link from the watch alone.
		if err := n.run(ctx, "registry-watch", &registryWatch{reg: n.registry, projections: n.projections, mesh: n.mesh}); err != nil {
			return err
		}
	}
	if err := n.run(ctx, "mesh", n.mesh); err != nil {
		return err
	}
	n.backups = backup.New(n.cfg.backupConfig(), srv, n.log)
	if err := n.run(ctx, "backup", n.backups); err != nil {
		return err
	}
	n.newMetrics()
	n.api = api.New(api.Config{Node: n.cfg.Name, MaxBatch: n.cfg.MaxBatch, RequireContracts: n.cfg.RequireContracts,
		LeafURL: srv.LeafURL(), Middleware: n.middleware, Server: n.cfg.serverName(), Servers: n.servers()},
		api.Deps{Conn: n.nc, Log: n.events, Appender: n.events, Registry: n.registry,
			Projections: n.projections, Mesh: n.mesh, Apply: n.apply, Observer: n.apiObserver(),
			Backup: n.backups, Rejected: n.rejected, Reload: n.ReloadFromSource, Barrier: n.barrier()}, n.log)
	if err := n.run(ctx, "api", n.api); err != nil {
		return err
	}
	if n.cfg.clustered() {
		// After the API: the server that runs the mesh answers for it.
		if err := n.run(ctx, "mesh-runner", &meshRunner{n: n}); err != nil {
			return err
		}
	}
	return n.startHTTP(ctx)
}

// startHTTP starts the console and the HTTP port that serves it, unless
// the port is off.
func (n *Node) startHTTP(ctx context.Context) error {
	if n.cfg.HTTP == "" {
		return nil
	}
	// The console signs each browser session in with its own identity
	// (ConnectAs), never with the node's rights. It closes after the
	// monitor and before the API.
	n.console = console.New(console.Config{Node: n.cfg.Name, Version: Version, Connect: n.ConnectAs}, n.log)
	if err := n.run(ctx, "console", n.console); err != nil {
		return err
	}
	mc := monitor.Config{Addr: n.cfg.HTTP, NATS: n.srv.NATS(), Ready: n.readiness, Metrics: n.metricsHandler(),
		Console: n.console.Handler()}
	if n.cfg.HTTPTLS.Enabled() {
		mc.CertFile, mc.KeyFile = n.cfg.HTTPTLS.Cert, n.cfg.HTTPTLS.Key
	}
	n.monitor = monitor.New(mc, n.log)
	return n.run(ctx, "monitor", n.monitor)
}

// run records p for Close, then starts it: a part whose Start fails half
// way (a server that started but never became ready) is closed too.
func (n *Node) run(ctx context.Context, name string, p part) error {
	n.started = append(n.started, namedPart{name, p})
	return p.Start(ctx)
}

// drainOnClose closes the node's connection after answering what is queued.
type drainOnClose struct{ nc *nats.Conn }

func (d drainOnClose) Start(context.Context) error { return nil }
func (d drainOnClose) Close() error {
	err := d.nc.Drain()
	d.nc.Close()
	if errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	return err
}

// Close stops every part in the reverse order of their start (see
// Node.started). It is safe to call more than once and returns the first
// error.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for i := len(n.started) - 1; i >= 0; i-- {
			if err := n.started[i].p.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", n.started[i].name, err))
			}
		}
		n.closeErr = errors.Join(errs...)
		if n.up {
			n.log.Info("node stopped")
		}
	})
	return n.closeErr
}

// Connect opens an in-process connection with the node's own rights. It is
// how the node's workers, and Go programs that embed the node, talk to it.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) { return n.srv.Connect(opts...) }

// ConnectAs opens an in-process connection with the identity opts sign in
// with (nats.UserInfo, nats.Nkey; none: the anonymous user when no services
// are configured): what that service may do, nothing more.
//
// A user and password the config does not know are refused at once: an
// in-process sign-in that the server refuses takes its write deadline
// (10 s) to fail.
func (n *Node) ConnectAs(opts ...nats.Option) (*nats.Conn, error) {
	if err := n.checkCredentials(opts); err != nil {
		return nil, err
	}
	return n.srv.ConnectAs(opts...)
}

// PeerConn opens a connection with exactly the rights this node's links
// have on peer's node: it reaches the peer's exports granted to this node
// (JetStream domain = the peer's name) and nothing else. Programs and tests
// use it to see what a peer can and cannot do.
func (n *Node) PeerConn(peer string, opts ...nats.Option) (*nats.Conn, error) {
	return n.srv.ConnectPeer(peer, opts...)
}

// ServerName is this server's name (server_name; on a cluster, one of
// the node's servers).
func (n *Node) ServerName() string { return n.cfg.serverName() }

// LeafURL is the leafnode URL peers link to, or "" if leaf_listen is off.
func (n *Node) LeafURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.LeafURL()
}

// ClientURL is the URL services connect to.
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// MonitorURL is the base URL of the HTTP port (/healthz, /readyz,
// /metrics and nats-server's pages), or "" if it is off.
func (n *Node) MonitorURL() string {
	if n.monitor == nil {
		return ""
	}
	return n.monitor.URL()
}

// Name is the node's name, also its JetStream domain.
func (n *Node) Name() string { return n.cfg.Name }

// Server returns the embedded nats-server, for programs that embed the node
// and need more than a client connection (monitoring, tests).
func (n *Node) Server() *server.Server {
	if n.srv == nil {
		return nil
	}
	return n.srv.NATS()
}

// Apply applies YAML or JSON resources, as dm.admin.apply does. It is the Go
// API for programs that embed a node.
// Its errors are *protocol.Error, as the API's replies are.
func (n *Node) Apply(ctx context.Context, body []byte, force bool) ([]protocol.ApplyResult, error) {
	res, err := n.apply(ctx, body, force)
	if err != nil {
		return nil, api.WireError(err)
	}
	return res, nil
}

func (n *Node) apply(ctx context.Context, body []byte, force bool) ([]protocol.ApplyResult, error) {
	if b := n.barrier(); b != nil {
		if err := b(ctx); err != nil {
			return nil, err
		}
	}
	return resource.Apply(ctx, resource.Parts{Contracts: n.registry, Projections: n.projections, Mesh: n.mesh}, body, force)
}

// Catalog returns what dm.discovery answers.
func (n *Node) Catalog() protocol.Catalog { return n.api.Catalog() }

// MeshCatalog asks every linked peer for what its exports show this node.
func (n *Node) MeshCatalog() []protocol.PeerCatalog { return n.mesh.PeerCatalogs() }

// ProjectionStatuses is this server's projection versions (in a cluster,
// each server runs its own).
func (n *Node) ProjectionStatuses(ctx context.Context) []projection.Status {
	return n.projections.Statuses(ctx)
}

// MeshStatus returns every link's and export's status, as dm.admin.mesh does.
func (n *Node) MeshStatus() protocol.MeshStatus { return n.mesh.Status() }

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
	n.natives = append(n.natives, projection.Native{Spec: spec, Folder: folder})
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

// Use adds a middleware around the API's endpoints, on a node that is not
// started yet. The first added runs outermost.
func (n *Node) Use(m Middleware) error {
	if n.srv != nil {
		return errors.New("add middleware before Start")
	}
	n.middleware = append(n.middleware, m)
	return nil
}
