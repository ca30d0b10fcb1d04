package projection

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// Worker finds the worker of a version, version 0 meaning the active one,
// and reports whether that version is active. Unknown names and versions
// wrap ErrNotFound.
func (m *Manager) Worker(name string, version int) (*Worker, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	vs, ok := m.workers[name]
	if !ok {
		return nil, false, notFound("no projection %q", name)
	}
	if version == 0 {
		version = m.active[name]
		if version == 0 {
			// No active version yet: a server of a cluster that has just
			// started the first version applied on another (FollowSpec)
			// answers from it, as Start makes the lowest version active.
			version = lowest(vs)
		}
	}
	w, ok := vs[version]
	if !ok {
		return nil, false, notFound("projection %q has no version %d", name, version)
	}
	return w, version == m.active[name], nil
}

// Active returns the active version of each projection, as a copy.
func (m *Manager) Active() map[string]int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]int, len(m.active))
	for name, v := range m.active {
		if m.workers[name] != nil {
			out[name] = v
		}
	}
	return out
}

// Promote makes a live version the active one and returns the version it
// replaces. The switch is one map write under the lock: each query
// resolves its version once, so it sees the old version or the new one,
// never a mix. A version that is not live wraps ErrNotReady.
func (m *Manager) Promote(ctx context.Context, name string, version int) (previous int, err error) {
	if version < 1 {
		return 0, kinded(ErrInvalid, "projection %s: version must be >= 1, got %d", name, version)
	}
	w, _, err := m.Worker(name, version)
	if err != nil {
		return 0, err
	}
	head, _ := m.cfg.Head(ctx)
	if st := w.Status(head); st.State != StateLive {
		return 0, kinded(ErrNotReady, "projection %s v%d is %s (applied %d of %d, %.0f%%): only a live version can be promoted",
			name, version, st.State, st.Applied, st.Head, 100*st.Progress)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers[name][version] != w {
		return 0, notFound("projection %q has no version %d", name, version) // retired meanwhile
	}
	prev := m.active[name]
	if err := m.setActive(ctx, name, version, false); err != nil {
		return 0, unavailable("store active version: %v", err)
	}
	return prev, nil
}

// Rollback makes the previously active version active again and returns
// the versions it switched from and to.
func (m *Manager) Rollback(ctx context.Context, name string) (from, to int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.workers[name]; !ok {
		return 0, 0, notFound("no projection %q", name)
	}
	prevs := m.previous[name]
	if len(prevs) == 0 {
		return 0, 0, conflict("projection %s has no previous active version", name)
	}
	to, from = prevs[len(prevs)-1], m.active[name]
	if m.workers[name][to] == nil {
		return 0, 0, conflict("projection %s v%d was retired; promote another version", name, to)
	}
	if err := m.setActive(ctx, name, to, true); err != nil {
		return 0, 0, unavailable("store active version: %v", err)
	}
	return from, to, nil
}

// Retire stops a version that is not active and deletes its file and
// definition. The active version and natives wrap ErrConflict.
func (m *Manager) Retire(ctx context.Context, name string, version int) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	w, ok := m.workers[name][version]
	switch {
	case !ok:
		m.mu.Unlock()
		return notFound("projection %q has no version %d", name, version)
	case m.active[name] == version:
		m.mu.Unlock()
		return conflict("projection %s v%d is active: promote another version first", name, version)
	case m.native[versionID(name, version)]:
		m.mu.Unlock()
		return conflict("projection %s v%d is defined in Go by the program that embeds this node", name, version)
	}
	delete(m.workers[name], version)
	m.previous[name] = slices.DeleteFunc(slices.Clone(m.previous[name]), func(v int) bool { return v == version })
	m.mu.Unlock()
	if err := w.Close(); err != nil {
		m.log.Warn("close retired projection", "name", name, "version", version, "error", err)
	}
	if err := m.cfg.Store.DeleteSpec(ctx, name, version); err != nil {
		return unavailable("delete projection %s v%d: %v", name, version, err)
	}
	if err := os.Remove(m.path(name, version)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete %s: %w", m.path(name, version), err)
	}
	_ = os.Remove(m.path(name, version) + ".tmp") // left by a compaction cut short
	m.log.Info("projection version retired", "name", name, "version", version)
	return nil
}

// setActive makes version active, remembering the one it replaces, and
// stores the alias. m.mu must be held.
func (m *Manager) setActive(ctx context.Context, name string, version int, rollback bool) error {
	prev := m.active[name]
	if prev == version {
		return nil
	}
	previous, rolledBack := slices.Clone(m.previous[name]), m.rolledBack[name]
	if rollback {
		previous = previous[:len(previous)-1]
		rolledBack = append(slices.Clone(rolledBack), prev)
	} else if prev != 0 {
		previous = append(previous, prev)
	}
	if err := m.cfg.Store.PutAlias(ctx, name, Alias{Active: version, Previous: previous, RolledBack: rolledBack}); err != nil {
		return err
	}
	m.active[name], m.previous[name], m.rolledBack[name] = version, previous, rolledBack
	m.log.Info("projection version active", "name", name, "version", version, "was", prev)
	return nil
}

// autoPromote is the OnLive hook of versions with promote: auto. It runs
// on a goroutine of its own (see spawn), with ctx ending at Close.
func (m *Manager) autoPromote(ctx context.Context, name string, version int) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
	defer cancel()
	m.mu.RLock()
	cur, back := m.active[name], slices.Contains(m.rolledBack[name], version)
	m.mu.RUnlock()
	if cur >= version || back {
		return
	}
	if _, err := m.Promote(ctx, name, version); err != nil {
		m.log.Warn("auto promote failed", "name", name, "version", version, "error", err)
	}
}

func lowest(vs map[int]*Worker) int {
	min := 0
	for v := range vs {
		if min == 0 || v < min {
			min = v
		}
	}
	return min
}
