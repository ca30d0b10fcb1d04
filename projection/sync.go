package projection

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Sync brings the manager in line with its store, for a node whose other
// servers (a cluster) apply, promote and retire: a version stored there
// starts here from the log, a version retired there stops here and its
// file goes, and the active versions follow the stored aliases. It is
// idempotent, and a no-op on a node that made every change itself.
func (m *Manager) Sync(ctx context.Context) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	specs, err := m.cfg.Store.Specs(ctx)
	if err != nil {
		return fmt.Errorf("list projections: %w", err)
	}
	var errs []error
	stored := map[string]bool{}
	for _, s := range specs {
		stored[versionID(s.Name, s.Version)] = true
		if m.isNative(s.Name, s.Version) {
			continue
		}
		if _, _, err := m.Worker(s.Name, s.Version); err == nil {
			continue
		}
		if err := m.startWorker(s, nil); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, fmt.Errorf("start projection %s v%d: %w", s.Name, s.Version, err))
			continue
		}
		m.log.Info("projection applied on another server", "name", s.Name, "version", s.Version)
	}
	m.stopUnstored(stored)
	m.followAliases(ctx)
	m.mu.Lock()
	for name, vs := range m.workers {
		if vs[m.active[name]] == nil && len(vs) > 0 {
			m.active[name] = lowest(vs)
		}
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}

// stopUnstored stops the versions that are neither stored nor native
// (retired by another server) and deletes their files.
func (m *Manager) stopUnstored(stored map[string]bool) {
	type gone struct {
		name    string
		version int
		w       *Worker
	}
	var stop []gone
	m.mu.Lock()
	for name, vs := range m.workers {
		for v, w := range vs {
			id := versionID(name, v)
			if stored[id] || m.native[id] || m.starting[id] {
				continue
			}
			delete(vs, v)
			m.previous[name] = slices.DeleteFunc(slices.Clone(m.previous[name]), func(p int) bool { return p == v })
			stop = append(stop, gone{name, v, w})
		}
		if len(vs) == 0 {
			delete(m.workers, name)
		}
	}
	m.mu.Unlock()
	for _, g := range stop {
		if err := g.w.Close(); err != nil {
			m.log.Warn("close retired projection", "name", g.name, "version", g.version, "error", err)
		}
		_ = os.Remove(m.path(g.name, g.version))
		_ = os.Remove(m.path(g.name, g.version) + ".tmp")
		m.log.Info("projection version retired on another server", "name", g.name, "version", g.version)
	}
}

// followAliases makes each stored active version active here, once this
// server's copy of it is live: until then queries keep the version they
// had, so no server answers from a version still rebuilding (the worker's
// OnLive hook calls it again).
func (m *Manager) followAliases(ctx context.Context) {
	head, _ := m.cfg.Head(ctx)
	for _, name := range m.names() {
		a, found, err := m.cfg.Store.Alias(ctx, name)
		if err != nil || !found || a.Active == 0 {
			continue
		}
		m.mu.Lock()
		w := m.workers[name][a.Active]
		switch {
		case m.active[name] == a.Active:
			m.previous[name], m.rolledBack[name] = a.Previous, a.RolledBack
		case w == nil || w.Status(head).State != StateLive:
			m.log.Info("active version set on another server; waiting for it to be live here", "name", name, "version", a.Active)
		default:
			m.log.Info("projection version active", "name", name, "version", a.Active, "was", m.active[name])
			m.active[name], m.previous[name], m.rolledBack[name] = a.Active, a.Previous, a.RolledBack
		}
		m.mu.Unlock()
	}
}

// names are the projections that have a version here.
func (m *Manager) names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.workers))
	for name := range m.workers {
		out = append(out, name)
	}
	return out
}
