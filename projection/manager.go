package projection

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultOpTimeout bounds the work of one auto-promote (the head read and
// the alias write).
const DefaultOpTimeout = 10 * time.Second

// SpecStore keeps projection definitions and active aliases.
type SpecStore interface {
	Specs(ctx context.Context) ([]*Spec, error)
	PutSpec(ctx context.Context, s *Spec) error
	DeleteSpec(ctx context.Context, name string, version int) error
	// Alias returns the stored alias of name; found is false if none is stored.
	Alias(ctx context.Context, name string) (a Alias, found bool, err error)
	PutAlias(ctx context.Context, name string, a Alias) error
}

// Alias is the stored form of a projection's active version.
type Alias struct {
	Active   int   `json:"active"`
	Previous []int `json:"previous,omitempty"`
	// RolledBack lists versions rolled back from: promote: auto leaves them be.
	RolledBack []int `json:"rolled_back,omitempty"`
}

// Native is a projection written in Go by the program that embeds the
// node: it runs like a stored one but is not in the SpecStore, and cannot
// be retired or redefined.
type Native struct {
	Spec   *Spec
	Folder Folder
}

// ManagerConfig is what a Manager needs.
type ManagerConfig struct {
	// DataDir holds the projection files: <DataDir>/projections/<name>/v<N>.db.
	DataDir string
	// Stream is the event log's stream; SubjectPrefix its subjects' prefix.
	Stream        string
	SubjectPrefix string
	// ChangesPrefix is where change events go: <prefix>.<projection>.<key>.
	ChangesPrefix string
	// Connect opens a connection for one worker: a rebuild's stream of
	// messages must not queue up in front of the API's requests and replies.
	Connect func() (*nats.Conn, error)
	// Head returns the stream's last seq, for statuses.
	Head func(context.Context) (uint64, error)
	// Store keeps the definitions and the active aliases.
	Store SpecStore
	// Natives are the projections the embedding program wrote in Go.
	Natives []Native
	// OpTimeout bounds an auto-promote; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// Follow: the node is one server of a cluster whose other servers
	// change the store too; it follows them (sync.go), and an active
	// version set there becomes active here once it is live here.
	Follow bool
}

// Applied statuses of Check.
const (
	AppliedCreated   = "created"
	AppliedUnchanged = "unchanged"
)

// Applied is what applying one projection version does.
type Applied struct {
	Name    string
	Version int
	Status  string // AppliedCreated or AppliedUnchanged
}

// Manager runs one worker per projection version and knows which version
// of each name is active: the one queries without a version read.
type Manager struct {
	cfg ManagerConfig
	log hclog.Logger // the manager's own
	// wlog is the logger workers name themselves from.
	wlog hclog.Logger

	ctx    context.Context // the run context of workers and auto-promotes
	cancel context.CancelFunc
	wg     sync.WaitGroup // auto-promotes

	mu      sync.RWMutex
	workers map[string]map[int]*Worker
	// starting holds the versions being opened, name/version: no second
	// worker may open the same file meanwhile.
	starting map[string]bool
	active   map[string]int
	// previous holds the versions that were active before, latest last, for rollback.
	previous   map[string][]int
	rolledBack map[string][]int
	// pending are active versions set by another server of a cluster,
	// waiting for this server's copy to be live (sync.go).
	pending map[string]Alias
	native  map[string]bool // name/version keys of Go-registered projections
	started bool
	closed  bool

	// syncMu keeps following (a cluster's store watch, sync.go) apart
	// from the changes this server makes.
	syncMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// NewManager returns a manager; Start loads the projections and starts them.
func NewManager(cfg ManagerConfig, logger hclog.Logger) *Manager {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	return &Manager{
		cfg: cfg, log: logger.Named("projections"), wlog: logger,
		workers: map[string]map[int]*Worker{}, starting: map[string]bool{},
		active: map[string]int{}, previous: map[string][]int{}, rolledBack: map[string][]int{}, pending: map[string]Alias{},
		native: map[string]bool{},
	}
}

func versionID(name string, version int) string { return name + "/" + strconv.Itoa(version) }

func (m *Manager) isNative(name string, version int) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.native[versionID(name, version)]
}

func (m *Manager) path(name string, version int) string {
	return filepath.Join(m.cfg.DataDir, "projections", name, "v"+strconv.Itoa(version)+".db")
}

// Start loads the stored projections and aliases, and starts a worker per
// version, the natives' included. ctx bounds the loading only: the workers
// run until Close. If Start fails, Close still stops what it started.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.closed || m.started {
		m.mu.Unlock()
		return errors.New("projection manager: start: already started or closed")
	}
	m.started = true
	// The run context is cut from ctx's cancellation (WithoutCancel keeps
	// its values) and ends with Close: workers and auto-promotes live
	// until Close, not until the end of Start's ctx.
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.mu.Unlock()

	specs, err := m.cfg.Store.Specs(ctx)
	if err != nil {
		return fmt.Errorf("list projections: %w", err)
	}
	// The active aliases are loaded before any worker starts: a worker that
	// is live at once runs its promote: auto hook, which must see them.
	if err := m.loadAliases(ctx, specNames(specs, m.cfg.Natives)); err != nil {
		return err
	}
	for _, np := range m.cfg.Natives {
		if err := np.Spec.Validate(); err != nil && np.Folder == nil {
			return err
		}
		m.mu.Lock()
		m.native[versionID(np.Spec.Name, np.Spec.Version)] = true
		m.mu.Unlock()
		if err := m.startWorker(np.Spec, np.Folder); err != nil {
			return err
		}
	}
	for _, s := range specs {
		if m.isNative(s.Name, s.Version) {
			// Stored before the program defined it in Go: the program's
			// definition wins, and the two must not share the file.
			m.log.Warn("stored projection version is defined in Go; ignoring the stored one", "name", s.Name, "version", s.Version)
			continue
		}
		if err := m.startWorker(s, nil); err != nil {
			return err
		}
	}
	// The active alias: stored, else the lowest version.
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, vs := range m.workers {
		if vs[m.active[name]] == nil {
			m.active[name] = lowest(vs)
		}
	}
	return nil
}

func (m *Manager) loadAliases(ctx context.Context, names []string) error {
	for _, name := range names {
		a, found, err := m.cfg.Store.Alias(ctx, name)
		if err != nil {
			// As before the split: an alias that cannot be read falls back
			// to the lowest version rather than stopping the node.
			m.log.Warn("active version not loaded; the lowest version is active", "name", name, "error", err)
			continue
		}
		if found && a.Active > 0 {
			m.mu.Lock()
			m.active[name], m.previous[name], m.rolledBack[name] = a.Active, a.Previous, a.RolledBack
			m.mu.Unlock()
		}
	}
	return nil
}

// specNames lists the projection names of specs and natives.
func specNames(specs []*Spec, natives []Native) []string {
	seen := map[string]bool{}
	var names []string
	for _, s := range specs {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	for _, np := range natives {
		if !seen[np.Spec.Name] {
			seen[np.Spec.Name] = true
			names = append(names, np.Spec.Name)
		}
	}
	return names
}

// Close stops the auto-promotes under way, then every worker. Safe to call
// twice: every call returns the first call's error.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		cancel := m.cancel
		var ws []*Worker
		for _, vs := range m.workers {
			for _, w := range vs {
				ws = append(ws, w)
			}
		}
		m.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		m.wg.Wait()
		// Workers close outside m.mu: a worker's OnLive hook takes it.
		var errs []error
		for _, w := range ws {
			errs = append(errs, w.Close())
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// spawn runs f on a goroutine that Close waits for, with the run context;
// after Close it does nothing.
func (m *Manager) spawn(f func(ctx context.Context)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	ctx := m.ctx
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f(ctx)
	}()
}

// startWorker opens and starts the worker of s, on a connection of its own.
func (m *Manager) startWorker(s *Spec, folder Folder) error {
	id := versionID(s.Name, s.Version)
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return fmt.Errorf("projection %s v%d: the manager is closed", s.Name, s.Version)
	case m.starting[id] || m.workers[s.Name][s.Version] != nil:
		m.mu.Unlock()
		return conflict("projection %s v%d is already running", s.Name, s.Version)
	}
	m.starting[id] = true
	m.mu.Unlock()
	w, err := m.newWorker(s, folder)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.starting, id)
	if err != nil {
		return err
	}
	if m.closed {
		w.Close()
		return fmt.Errorf("projection %s v%d: the manager is closed", s.Name, s.Version)
	}
	if err := w.Start(m.ctx); err != nil {
		w.Close()
		return err
	}
	if m.workers[s.Name] == nil {
		m.workers[s.Name] = map[int]*Worker{}
	}
	m.workers[s.Name][s.Version] = w
	return nil
}

func (m *Manager) newWorker(s *Spec, folder Folder) (*Worker, error) {
	path := m.path(s.Name, s.Version)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("projection %s: %w", s.Name, err)
	}
	var onLive func()
	name, version := s.Name, s.Version
	switch {
	case s.Promote == "auto":
		onLive = func() { m.spawn(func(ctx context.Context) { m.autoPromote(ctx, name, version) }) }
	case m.cfg.Follow:
		// An alias set by another server waits for this server's copy
		// of its version to be live (Sync).
		onLive = func() { m.spawn(func(ctx context.Context) { m.followAliases(ctx) }) }
	}
	nc, err := m.cfg.Connect()
	if err != nil {
		return nil, fmt.Errorf("projection %s: connect: %w", s.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("projection %s: %w", s.Name, err)
	}
	w, err := NewWorker(Config{
		Spec: s, Folder: folder, Path: path, Conn: nc, JS: js, OwnConn: true, Connect: m.cfg.Connect,
		Stream: m.cfg.Stream, SubjectPrefix: m.cfg.SubjectPrefix, ChangesPrefix: m.cfg.ChangesPrefix,
		OnLive: onLive, LeaderReads: m.cfg.Follow,
	}, m.wlog)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("projection %s v%d: %w", s.Name, s.Version, err)
	}
	return w, nil
}
