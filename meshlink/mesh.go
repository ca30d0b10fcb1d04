package meshlink

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
)

// ExportSubjectPrefix starts the subjects of export streams:
// export.<export>.<aggregate>.<id>.<type>. A peer's leafnode may not
// publish into them.
const ExportSubjectPrefix = "export"

// defaultMaxEventBytes is the node's default max_event_bytes, for a
// Config that sets none.
const defaultMaxEventBytes = 512 * 1024

func exportStream(name string) string   { return "EXPORT_" + name }
func exportSubjects(name string) string { return ExportSubjectPrefix + "." + name }

// Config is what the mesh needs of the node's configuration.
type Config struct {
	// Node is this node's name, also its JetStream domain.
	Node string
	// Peers are the configured peer names, sorted.
	Peers []string
	// MaxEventBytes is the largest event data (default 512 KiB).
	MaxEventBytes int
	// Transforms are transformers written in Go, by link name; one replaces
	// its link's expressions.
	Transforms map[string]Transformer
	// ExportDir returns the directory of the files of an export stream
	// granted to peer (nil: none). nats-server runs without sync_always:
	// the stream's metadata is fsynced there once it is opened, and in
	// Fsync mode each batch of copies before the export moves on (see
	// eventlog.StreamFiles).
	ExportDir func(peer, stream string) string
	// Fsync: exports fsync their copies (durability: fsync).
	Fsync bool
	// Replicas of the export streams (0: 1).
	Replicas int
	// Clustered: the node is a cluster of servers, each with a Mesh that
	// follows every export and link (Follow, Forget) and runs them only
	// while Activate says this server is the one (docs/cluster.md).
	Clustered bool
	// Server is this server's name, reported in Status on a cluster.
	Server string
}

// Mesh runs the node's exports and links. Its workers live from Start
// until Close.
type Mesh struct {
	cfg   Config
	deps  Deps
	log   hclog.Logger
	peers map[string]bool

	// ctx is the parent of every worker's; cancel ends it at Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // also serializes SetRemotes (see reload)
	closed bool
	// active: this server runs the workers and solicits the leafnodes.
	// Always on standalone; on a cluster, between Activate and Deactivate.
	active  bool
	exports map[string]*exportRunner
	links   map[string]*linkWorker
	// remotes is the leafnode URL of each peer the links use.
	remotes map[string]string
	// catalog answers mesh.catalog in each export account.
	catalog []*nats.Conn

	closeOnce sync.Once
}

// New returns a mesh that runs nothing until Start.
func New(cfg Config, deps Deps, logger hclog.Logger) *Mesh {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = defaultMaxEventBytes
	}
	peers := map[string]bool{}
	for _, p := range cfg.Peers {
		peers[p] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Mesh{cfg: cfg, deps: deps, log: logger.Named("mesh"), peers: peers, ctx: ctx, cancel: cancel,
		active: !cfg.Clustered, exports: map[string]*exportRunner{}, links: map[string]*linkWorker{}, remotes: map[string]string{}}
}

// Start serves each peer its catalog, loads the stored exports and links
// and starts them. The workers live until Close, not until ctx ends. On a
// cluster the registry's watch brings the exports and links (Follow), and
// the server that runs them loads nothing else.
func (m *Mesh) Start(ctx context.Context) error {
	for _, peer := range m.cfg.Peers {
		if err := m.serveCatalog(peer); err != nil {
			return err
		}
	}
	if m.cfg.Clustered {
		return nil
	}
	exports, err := m.deps.Store.Exports(ctx)
	if err != nil {
		return fmt.Errorf("load exports: %w", err)
	}
	links, err := m.deps.Store.Links(ctx)
	if err != nil {
		return fmt.Errorf("load links: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.start(exports, links); err != nil {
		return err
	}
	// Copies left by a stop between storing a change and deleting them.
	if err := m.sweepExportStreams(ctx); err != nil {
		m.log.Warn("export copies not swept; the next apply tries again", "error", err)
	}
	return nil
}

// Close stops every worker and waits for them. It is safe to call twice.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.mu.Lock()
		m.closed = true
		var tasks []*task
		for _, r := range m.exports {
			tasks = append(tasks, &r.task)
		}
		for _, w := range m.links {
			tasks = append(tasks, &w.task)
		}
		conns := m.catalog
		m.catalog = nil
		m.mu.Unlock()
		for _, t := range tasks {
			t.stop()
		}
		for _, nc := range conns {
			nc.Close()
		}
	})
	return nil
}

// task is the goroutines of one link or one export (a worker per peer):
// every worker of the mesh has this one shape.
type task struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs each f in a goroutine of its own, with a context that ends
// with parent or at stop.
func (t *task) start(parent context.Context, fs ...func(context.Context)) {
	ctx, cancel := context.WithCancel(parent)
	t.cancel = cancel
	for _, f := range fs {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			f(ctx)
		}()
	}
}

// stop ends the goroutines and waits for them. Safe to call twice.
func (t *task) stop() {
	if t.cancel != nil {
		t.cancel()
	}
	t.wg.Wait()
}

// Applied is what Check says applying one export or link would do.
type Applied struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status string `json:"status"` // created, updated or unchanged
}

// Check validates exports and links against the node's config and the
// links already running; it reports what Commit would do to each. Its
// errors are ErrInvalid.
func (m *Mesh) Check(exports []*Export, links []*Link) ([]Applied, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var results []Applied
	seen := map[string]bool{}
	for _, e := range exports {
		if seen["e/"+e.Name] {
			return nil, invalid("export %s appears twice", e.Name)
		}
		seen["e/"+e.Name] = true
		for _, p := range e.To {
			if !m.peers[p] {
				return nil, invalid("export %s: peer %q is not configured: add it under peers in the node config (with the secret both nodes share, or its nkey)", e.Name, p)
			}
		}
		status := "created"
		if r := m.exports[e.Name]; r != nil {
			status = "updated"
			if r.spec.Equal(e) {
				status = "unchanged"
			}
		}
		results = append(results, Applied{Kind: KindExport, Name: e.Name, Status: status})
	}
	urls := m.wantRemotes(nil)
	for _, l := range links {
		if seen["l/"+l.Name] {
			return nil, invalid("link %s appears twice", l.Name)
		}
		seen["l/"+l.Name] = true
		if !m.peers[l.Peer] {
			return nil, invalid("link %s: peer %q is not configured: add it under peers in the node config (with the secret both nodes share, or its nkey)", l.Name, l.Peer)
		}
		old := m.links[l.Name]
		if u, ok := urls[l.Peer]; ok && u != l.URL && !(old != nil && m.onlyLinkTo(l.Peer, l.Name)) {
			return nil, invalid("link %s: peer %s is already linked at %s; all links to one peer share its leafnode connection", l.Name, l.Peer, u)
		}
		urls[l.Peer] = l.URL
		status := "created"
		if old != nil {
			status = "updated"
			if old.spec.Equal(l) {
				status = "unchanged"
			}
		}
		results = append(results, Applied{Kind: KindLink, Name: l.Name, Status: status})
	}
	return results, nil
}

// onlyLinkTo reports whether name is the only running link to peer. m.mu must be held.
func (m *Mesh) onlyLinkTo(peer, name string) bool {
	for n, l := range m.links {
		if l.spec.Peer == peer && n != name {
			return false
		}
	}
	return true
}

// Commit stores exports and links (checked by Check) and (re)starts those
// that changed.
func (m *Mesh) Commit(ctx context.Context, exports []*Export, links []*Link) error {
	for _, e := range exports {
		if err := m.deps.Store.PutExport(ctx, e); err != nil {
			return unavailable("store export %s: %v", e.Name, err)
		}
	}
	for _, l := range links {
		if err := m.deps.Store.PutLink(ctx, l); err != nil {
			return unavailable("store link %s: %v", l.Name, err)
		}
	}
	if m.cfg.Clustered {
		// Every server, this one too, takes the change from the registry's
		// watch, in the order the registry stored it (Follow): starting it
		// here could put back a definition that a later change through
		// another server has replaced or deleted already.
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.start(exports, links); err != nil {
		return err
	}
	if len(exports) == 0 {
		return nil
	}
	// A peer taken out of an export's to loses its copy at once.
	if err := m.sweepExportStreams(ctx); err != nil {
		return unavailable("revoke export copies (the node tries again at its next start or apply): %v", err)
	}
	return nil
}

// start runs the given exports and links, replacing running ones whose
// definition changed. A changed link keeps running as it was if its
// transform does not compile or the leafnodes cannot be set. m.mu must be
// held.
func (m *Mesh) start(exports []*Export, links []*Link) error {
	if m.closed {
		return unavailable("the node is shutting down")
	}
	for _, e := range exports {
		if old := m.exports[e.Name]; old != nil {
			if old.spec.Equal(e) {
				continue
			}
			old.stop()
		}
		r := m.newExport(e)
		m.exports[e.Name] = r
		if m.active {
			m.runExport(r)
		}
	}

	changed := map[string]*linkWorker{}
	for _, l := range links {
		if old := m.links[l.Name]; old != nil && old.spec.Equal(l) {
			continue
		}
		w, err := m.newLinkWorker(l)
		if err != nil {
			return fmt.Errorf("start link %s: %w", l.Name, err)
		}
		changed[l.Name] = w
	}
	if len(changed) == 0 {
		return nil
	}
	if err := m.reload(m.wantRemotes(changed)); err != nil {
		return unavailable("connect to peers: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(changed)) {
		if old := m.links[name]; old != nil {
			old.stop()
		}
		m.runLink(changed[name])
	}
	return nil
}

// wantRemotes is the leafnode URL of each linked peer: the running links'
// and, in place of those of their names, the changed ones. m.mu must be
// held.
func (m *Mesh) wantRemotes(changed map[string]*linkWorker) map[string]string {
	remotes := map[string]string{}
	for name, w := range m.links {
		if changed[name] == nil {
			remotes[w.spec.Peer] = w.spec.URL
		}
	}
	for _, w := range changed {
		remotes[w.spec.Peer] = w.spec.URL
	}
	return remotes
}

// reload makes the node solicit one leafnode per linked peer; a server
// that does not run the mesh solicits none. m.mu must be held: it
// serializes the server reloads.
func (m *Mesh) reload(remotes map[string]string) error {
	if !m.active {
		remotes = map[string]string{}
	}
	if maps.Equal(remotes, m.remotes) {
		return nil
	}
	if err := m.deps.Leafnodes.SetRemotes(maps.Clone(remotes)); err != nil {
		return err
	}
	m.remotes = remotes
	m.log.Info("leafnode remotes", "peers", strings.Join(slices.Sorted(maps.Keys(remotes)), ","))
	return nil
}

// Retry restarts a link (a failed one) from its checkpoint.
func (m *Mesh) Retry(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.links[name]
	if old == nil {
		return notFound("no link %q", name)
	}
	if m.closed {
		return unavailable("the node is shutting down")
	}
	if !m.active {
		return unavailable("server %s does not run the mesh: another server of the cluster does", m.cfg.Server)
	}
	w, err := m.newLinkWorker(old.spec)
	if err != nil {
		return fmt.Errorf("start link %s: %w", name, err)
	}
	old.stop()
	m.runLink(w)
	return nil
}

// Specs returns the running exports and links, by name.
func (m *Mesh) Specs() ([]Export, []Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exports := []Export{}
	for _, e := range m.exports {
		exports = append(exports, *e.spec)
	}
	links := []Link{}
	for _, l := range m.links {
		links = append(links, *l.spec)
	}
	sort.Slice(exports, func(i, j int) bool { return exports[i].Name < exports[j].Name })
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return exports, links
}

// link returns the running link called name, or nil.
func (m *Mesh) link(name string) *linkWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.links[name]
}

// AddPeers makes peers that a reload added known: exports and links may
// name them, and each is served its catalog. A peer a reload removed stays
// known until restart, but can no longer sign in (the server's users).
func (m *Mesh) AddPeers(peers []string) {
	m.mu.Lock()
	var added []string
	for _, p := range peers {
		if !m.peers[p] {
			added = append(added, p)
		}
	}
	m.mu.Unlock()
	for _, p := range added {
		// serveCatalog takes m.mu itself.
		if err := m.serveCatalog(p); err != nil {
			m.log.Error("serve the catalog to a new peer", "peer", p, "error", err)
			continue
		}
		m.mu.Lock()
		m.peers[p] = true
		m.cfg.Peers = append(m.cfg.Peers, p)
		m.mu.Unlock()
		m.log.Info("peer added", "peer", p)
	}
}
