package projection

import (
	"context"
	"os"
	"slices"
)

// Following: on a node whose other servers (a cluster) apply, promote and
// retire, each server learns of every stored change from a watch of the
// store (node/registry Watch) and follows it here: a version stored there
// starts here from the log, a version retired there stops here and its
// file goes, and an active version set there becomes active here once this
// server's copy of it is live (until then, queries keep the version they
// had: no server answers from a version still rebuilding). Following is
// idempotent, and a no-op for the changes this server made itself.

// FollowSpec starts a version stored by another server, if it does not
// run here yet.
func (m *Manager) FollowSpec(ctx context.Context, s *Spec) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if m.isNative(s.Name, s.Version) {
		return
	}
	if _, _, err := m.Worker(s.Name, s.Version); err == nil {
		return
	}
	if err := m.startWorker(s, nil); err != nil {
		m.log.Error("start a projection version applied on another server", "name", s.Name, "version", s.Version, "error", err)
		return
	}
	m.log.Info("projection applied on another server", "name", s.Name, "version", s.Version)
	m.followAliases(ctx)
}

// FollowRetire stops a version another server retired and deletes its
// file here.
func (m *Manager) FollowRetire(name string, version int) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	w, ok := m.workers[name][version]
	if !ok || m.native[versionID(name, version)] {
		m.mu.Unlock()
		return
	}
	delete(m.workers[name], version)
	if len(m.workers[name]) == 0 {
		delete(m.workers, name)
	}
	m.previous[name] = slices.DeleteFunc(slices.Clone(m.previous[name]), func(v int) bool { return v == version })
	m.mu.Unlock()
	if err := w.Close(); err != nil {
		m.log.Warn("close retired projection", "name", name, "version", version, "error", err)
	}
	_ = os.Remove(m.path(name, version))
	_ = os.Remove(m.path(name, version) + ".tmp")
	m.log.Info("projection version retired on another server", "name", name, "version", version)
}

// FollowAlias records the active version another server set; it becomes
// active here once live here.
func (m *Manager) FollowAlias(ctx context.Context, name string, a Alias) {
	if a.Active == 0 {
		return
	}
	m.mu.Lock()
	m.pending[name] = a
	m.mu.Unlock()
	m.followAliases(ctx)
}

// followAliases makes each recorded active version active here when its
// worker is live here (the worker's OnLive hook calls it again).
func (m *Manager) followAliases(ctx context.Context) {
	head, _ := m.cfg.Head(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, a := range m.pending {
		w := m.workers[name][a.Active]
		switch {
		case m.active[name] == a.Active:
		case w == nil || w.Status(head).State != StateLive:
			continue // not yet: stays pending
		default:
			m.log.Info("projection version active", "name", name, "version", a.Active, "was", m.active[name])
		}
		m.active[name], m.previous[name], m.rolledBack[name] = a.Active, a.Previous, a.RolledBack
		delete(m.pending, name)
	}
	for name, vs := range m.workers {
		if vs[m.active[name]] == nil && len(vs) > 0 {
			m.active[name] = lowest(vs)
		}
	}
}
