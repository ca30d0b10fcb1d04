package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	log  hclog.Logger
	head func(context.Context) (uint64, error)

	mu      sync.RWMutex
	workers map[string]map[int]*projection.Worker
	active  map[string]int
	native  map[string]bool // name/version keys of Go-registered projections
	ctx     context.Context
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
	p.native = map[string]bool{}
	keys, err := p.kv.ListKeysFiltered(ctx, "projection.>")
	if err != nil {
		return fmt.Errorf("list projections: %w", err)
	}
	var specs []*projection.Spec
	for key := range keys.Keys() {
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
	for name, vs := range p.workers {
		if e, err := p.kv.Get(ctx, activeKVKey(name)); err == nil {
			if v, err := strconv.Atoi(string(e.Value())); err == nil && vs[v] != nil {
				p.active[name] = v
				continue
			}
		}
		p.active[name] = lowest(vs)
	}
	return nil
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
	w, err := projection.NewWorker(projection.Config{
		Spec: s, Folder: folder, Path: path, Conn: p.nc, JS: p.js,
		Stream: p.cfg.StreamName, SubjectPrefix: p.cfg.SubjectPrefix, ChangesPrefix: SubjectChanges,
	}, p.log)
	if err != nil {
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
			p.active[s.Name] = s.Version
			_, _ = p.kv.Put(ctx, activeKVKey(s.Name), []byte(strconv.Itoa(s.Version)))
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
