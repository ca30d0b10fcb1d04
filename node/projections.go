package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/projection"
)

// Subjects of the projection API.
const (
	SubjectQuery       = "dm.query"   // dm.query.<projection>[.v<version>]
	SubjectChanges     = "dm.changes" // dm.changes.<projection>.<key>
	SubjectProjections = "dm.admin.projections"
	SubjectRetry       = "dm.admin.projection.retry"
)

// projections runs one worker per projection version and knows which
// version of each name is active (answers dm.query.<name>).
type projections struct {
	cfg Config
	// connect opens a connection for one worker: a rebuild's stream of
	// messages must not queue up in front of the API's requests and replies.
	connect func() (*nats.Conn, error)
	kv      jetstream.KeyValue
	log     hclog.Logger
	head    func(context.Context) (uint64, error)

	mu      sync.RWMutex
	workers map[string]map[int]*projection.Worker
	active  map[string]int
	// previous holds the versions that were active before, latest last, for rollback.
	previous   map[string][]int
	rolledBack map[string][]int
	native     map[string]bool // name/version keys of Go-registered projections
	ctx        context.Context
}

type nativeProjection struct {
	spec   *projection.Spec
	folder projection.Folder
}

func projectionKVKey(name string, version int) string {
	return "projection." + name + ".v" + strconv.Itoa(version)
}

func activeKVKey(name string) string { return "projection-active." + name }

func (p *projections) path(name string, version int) string {
	return filepath.Join(p.cfg.DataDir, "projections", name, "v"+strconv.Itoa(version)+".db")
}

// open loads the stored projections and starts their workers and the
// native ones.
func (p *projections) open(ctx context.Context, natives []nativeProjection) error {
	p.ctx = ctx
	p.workers = map[string]map[int]*projection.Worker{}
	p.active = map[string]int{}
	p.previous = map[string][]int{}
	p.rolledBack = map[string][]int{}
	p.native = map[string]bool{}
	keys, err := listKeys(ctx, p.kv, "projection.>")
	if err != nil {
		return fmt.Errorf("list projections: %w", err)
	}
	var specs []*projection.Spec
	for _, key := range keys {
		e, err := p.kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("load %s: %w", key, err)
		}
		var s projection.Spec
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return fmt.Errorf("load %s: %w", key, err)
		}
		specs = append(specs, &s)
	}
	// The active aliases are loaded before any worker starts: a worker that
	// is live at once runs its promote: auto hook, which must see them.
	for _, name := range specNames(specs, natives) {
		if e, err := p.kv.Get(ctx, activeKVKey(name)); err == nil {
			var a alias
			if json.Unmarshal(e.Value(), &a) == nil && a.Active > 0 {
				p.active[name], p.previous[name], p.rolledBack[name] = a.Active, a.Previous, a.RolledBack
			}
		}
	}
	for _, s := range specs {
		if err := p.startWorker(s, nil); err != nil {
			return err
		}
	}
	for _, np := range natives {
		if err := np.spec.Validate(); err != nil && np.folder == nil {
			return err
		}
		if err := p.startWorker(np.spec, np.folder); err != nil {
			return err
		}
		p.native[np.spec.Name+"/"+strconv.Itoa(np.spec.Version)] = true
	}
	// The active alias: stored, else the lowest version.
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, vs := range p.workers {
		if vs[p.active[name]] == nil {
			p.active[name] = lowest(vs)
		}
	}
	return nil
}

// specNames lists the projection names of specs and natives.
func specNames(specs []*projection.Spec, natives []nativeProjection) []string {
	seen := map[string]bool{}
	var names []string
	for _, s := range specs {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	for _, np := range natives {
		if !seen[np.spec.Name] {
			seen[np.spec.Name] = true
			names = append(names, np.spec.Name)
		}
	}
	return names
}

// alias is the stored form of a projection's active version.
type alias struct {
	Active   int   `json:"active"`
	Previous []int `json:"previous,omitempty"`
	// RolledBack lists versions rolled back from: promote: auto leaves them be.
	RolledBack []int `json:"rolled_back,omitempty"`
}

// setActive makes version active, remembering the one it replaces, and
// stores the alias. p.mu must be held.
func (p *projections) setActive(ctx context.Context, name string, version int, rollback bool) error {
	prev := p.active[name]
	if prev == version {
		return nil
	}
	previous, rolledBack := slices.Clone(p.previous[name]), p.rolledBack[name]
	if rollback {
		previous = previous[:len(previous)-1]
		rolledBack = append(slices.Clone(rolledBack), prev)
	} else if prev != 0 {
		previous = append(previous, prev)
	}
	b, _ := json.Marshal(alias{Active: version, Previous: previous, RolledBack: rolledBack})
	if _, err := p.kv.Put(ctx, activeKVKey(name), b); err != nil {
		return err
	}
	p.active[name], p.previous[name], p.rolledBack[name] = version, previous, rolledBack
	p.log.Info("projection version active", "name", name, "version", version, "was", prev)
	return nil
}

// promote makes a live version the active one. The switch is one map write
// under the lock: each query resolves its version once, so it sees the old
// version or the new one, never a mix.
func (p *projections) promote(ctx context.Context, name string, version int) (int, *Error) {
	w, _, e := p.worker(name, version)
	if e != nil {
		return 0, e
	}
	head, _ := p.head(ctx)
	if st := w.Status(head); st.State != projection.StateLive {
		return 0, newError(CodeNotReady, 409, "projection %s v%d is %s (applied %d of %d, %.0f%%): only a live version can be promoted",
			name, version, st.State, st.Applied, st.Head, 100*st.Progress)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.active[name]
	if err := p.setActive(ctx, name, version, false); err != nil {
		return 0, errUnavailable("store active version: %v", err)
	}
	return prev, nil
}

// rollback makes the previously active version active again.
func (p *projections) rollback(ctx context.Context, name string) (int, int, *Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.workers[name]; !ok {
		return 0, 0, newError(CodeNotFound, 404, "no projection %q", name)
	}
	prevs := p.previous[name]
	if len(prevs) == 0 {
		return 0, 0, newError(CodeConflict, 409, "projection %s has no previous active version", name)
	}
	to, from := prevs[len(prevs)-1], p.active[name]
	if p.workers[name][to] == nil {
		return 0, 0, newError(CodeConflict, 409, "projection %s v%d was retired; promote another version", name, to)
	}
	if err := p.setActive(ctx, name, to, true); err != nil {
		return 0, 0, errUnavailable("store active version: %v", err)
	}
	return from, to, nil
}

// retire stops a version that is not active and deletes its file and definition.
func (p *projections) retire(ctx context.Context, name string, version int) *Error {
	p.mu.Lock()
	w, ok := p.workers[name][version]
	switch {
	case !ok:
		p.mu.Unlock()
		return newError(CodeNotFound, 404, "projection %q has no version %d", name, version)
	case p.active[name] == version:
		p.mu.Unlock()
		return newError(CodeConflict, 409, "projection %s v%d is active: promote another version first", name, version)
	case p.native[name+"/"+strconv.Itoa(version)]:
		p.mu.Unlock()
		return newError(CodeConflict, 409, "projection %s v%d is defined in Go by the program that embeds this node", name, version)
	}
	delete(p.workers[name], version)
	p.previous[name] = slices.DeleteFunc(slices.Clone(p.previous[name]), func(v int) bool { return v == version })
	p.mu.Unlock()
	if err := w.Close(); err != nil {
		p.log.Warn("close retired projection", "name", name, "version", version, "error", err)
	}
	if err := p.kv.Delete(ctx, projectionKVKey(name, version)); err != nil {
		return errUnavailable("delete projection %s v%d: %v", name, version, err)
	}
	if err := os.Remove(p.path(name, version)); err != nil && !os.IsNotExist(err) {
		return errInternal("delete %s: %v", p.path(name, version), err)
	}
	p.log.Info("projection version retired", "name", name, "version", version)
	return nil
}

// autoPromote is the OnLive hook of versions with promote: auto.
func (p *projections) autoPromote(name string, version int) {
	ctx, cancel := context.WithTimeout(p.ctx, apiTimeout)
	defer cancel()
	p.mu.RLock()
	cur, back := p.active[name], slices.Contains(p.rolledBack[name], version)
	p.mu.RUnlock()
	if cur >= version || back {
		return
	}
	if _, e := p.promote(ctx, name, version); e != nil {
		p.log.Warn("auto promote failed", "name", name, "version", version, "error", e)
	}
}

func lowest(vs map[int]*projection.Worker) int {
	min := 0
	for v := range vs {
		if min == 0 || v < min {
			min = v
		}
	}
	return min
}

func (p *projections) startWorker(s *projection.Spec, folder projection.Folder) error {
	path := p.path(s.Name, s.Version)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("projection %s: %w", s.Name, err)
	}
	var onLive func()
	if s.Promote == "auto" {
		onLive = func() { go p.autoPromote(s.Name, s.Version) }
	}
	nc, err := p.connect()
	if err != nil {
		return fmt.Errorf("projection %s: connect: %w", s.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("projection %s: %w", s.Name, err)
	}
	w, err := projection.NewWorker(projection.Config{
		Spec: s, Folder: folder, Path: path, Conn: nc, JS: js, OwnConn: true,
		Stream: p.cfg.StreamName, SubjectPrefix: p.cfg.SubjectPrefix, ChangesPrefix: SubjectChanges,
		OnLive: onLive,
	}, p.log)
	if err != nil {
		nc.Close()
		return fmt.Errorf("projection %s v%d: %w", s.Name, s.Version, err)
	}
	if err := w.Start(p.ctx); err != nil {
		w.Close()
		return err
	}
	p.mu.Lock()
	if p.workers[s.Name] == nil {
		p.workers[s.Name] = map[int]*projection.Worker{}
	}
	p.workers[s.Name][s.Version] = w
	p.mu.Unlock()
	return nil
}

// close stops every worker.
func (p *projections) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, vs := range p.workers {
		for _, w := range vs {
			errs = append(errs, w.Close())
		}
	}
	return errors.Join(errs...)
}

// worker finds the version to use: version 0 means the active one.
func (p *projections) worker(name string, version int) (*projection.Worker, bool, *Error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	vs, ok := p.workers[name]
	if !ok {
		return nil, false, newError(CodeNotFound, 404, "no projection %q", name)
	}
	if version == 0 {
		version = p.active[name]
	}
	w, ok := vs[version]
	if !ok {
		return nil, false, newError(CodeNotFound, 404, "projection %q has no version %d", name, version)
	}
	return w, version == p.active[name], nil
}

// check decides what applying specs would do, without doing it: the
// results, and the versions to start.
func (p *projections) check(specs []*projection.Spec) ([]ApplyResult, []*projection.Spec, *Error) {
	results := make([]ApplyResult, len(specs))
	var start []*projection.Spec
	seen := map[string]bool{}
	for i, s := range specs {
		res := ApplyResult{Kind: projection.KindProjection, Name: s.Name, Version: s.Version, Status: "created"}
		id := s.Name + "/" + strconv.Itoa(s.Version)
		if seen[id] {
			return nil, nil, errBadRequest("projection %s version %d appears twice", s.Name, s.Version)
		}
		seen[id] = true
		if w, _, e := p.worker(s.Name, s.Version); e == nil {
			if p.native[id] {
				return nil, nil, newError(CodeConflict, 409, "projection %s version %d is defined in Go by the program that embeds this node", s.Name, s.Version)
			}
			if !w.Spec().Equal(s) {
				return nil, nil, newError(CodeConflict, 409, "projection %s version %d already exists with another definition: a version identifies its code, so bump the version", s.Name, s.Version)
			}
			res.Status = "unchanged"
		} else {
			start = append(start, s)
		}
		results[i] = res
	}
	return results, start, nil
}

// commit stores and starts the versions check chose.
func (p *projections) commit(ctx context.Context, start []*projection.Spec) *Error {
	for _, s := range start {
		b, err := json.Marshal(s)
		if err != nil {
			return errInternal("encode projection: %v", err)
		}
		if _, err := p.kv.Put(ctx, projectionKVKey(s.Name, s.Version), b); err != nil {
			return errUnavailable("store projection %s: %v", s.Name, err)
		}
	}
	for _, s := range start {
		if err := p.startWorker(s, nil); err != nil {
			return errInternal("start projection %s v%d: %v", s.Name, s.Version, err)
		}
		p.mu.Lock()
		if p.active[s.Name] == 0 {
			if err := p.setActive(ctx, s.Name, s.Version, false); err != nil {
				p.mu.Unlock()
				return errUnavailable("store active version: %v", err)
			}
		}
		p.mu.Unlock()
		p.log.Info("projection applied", "name", s.Name, "version", s.Version)
	}
	return nil
}

// statuses returns every version's status, sorted by name and version.
func (p *projections) statuses(ctx context.Context) []projection.Status {
	head, _ := p.head(ctx)
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []projection.Status
	for name, vs := range p.workers {
		for v, w := range vs {
			st := w.Status(head)
			st.Active = p.active[name] == v
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// specs returns every version's definition, sorted.
func (p *projections) specs() []*projection.Spec {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []*projection.Spec
	for _, vs := range p.workers {
		for _, w := range vs {
			out = append(out, w.Spec())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}
