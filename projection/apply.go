package projection

import (
	"context"
	"fmt"
	"sort"
)

// Check decides what applying specs would do, without doing it: the
// result of each, and the versions Commit is to start. A version given
// twice wraps ErrInvalid; a native or a changed definition, ErrConflict.
func (m *Manager) Check(specs []*Spec) ([]Applied, []*Spec, error) {
	results := make([]Applied, len(specs))
	var start []*Spec
	seen := map[string]bool{}
	for i, s := range specs {
		res := Applied{Name: s.Name, Version: s.Version, Status: AppliedCreated}
		id := versionID(s.Name, s.Version)
		if seen[id] {
			return nil, nil, kinded(ErrInvalid, "projection %s version %d appears twice", s.Name, s.Version)
		}
		seen[id] = true
		if w, _, err := m.Worker(s.Name, s.Version); err == nil {
			if m.isNative(s.Name, s.Version) {
				return nil, nil, conflict("projection %s version %d is defined in Go by the program that embeds this node", s.Name, s.Version)
			}
			if !w.Spec().Equal(s) {
				return nil, nil, conflict("projection %s version %d already exists with another definition: a version identifies its code, so bump the version", s.Name, s.Version)
			}
			res.Status = AppliedUnchanged
		} else {
			start = append(start, s)
		}
		results[i] = res
	}
	return results, start, nil
}

// Commit stores and starts the versions Check chose. The first version of
// a name becomes active.
func (m *Manager) Commit(ctx context.Context, start []*Spec) error {
	// Held while storing and starting: the store watch's FollowSpec for
	// these versions waits, then finds them running.
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	for _, s := range start {
		if err := m.cfg.Store.PutSpec(ctx, s); err != nil {
			return unavailable("store projection %s: %v", s.Name, err)
		}
	}
	for _, s := range start {
		if err := m.startWorker(s, nil); err != nil {
			return fmt.Errorf("start projection %s v%d: %w", s.Name, s.Version, err)
		}
		if err := m.activateFirst(ctx, s); err != nil {
			return err
		}
		m.log.Info("projection applied", "name", s.Name, "version", s.Version)
	}
	return nil
}

// activateFirst makes s active if its name has no active version.
func (m *Manager) activateFirst(ctx context.Context, s *Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active[s.Name] != 0 {
		return nil
	}
	if err := m.setActive(ctx, s.Name, s.Version, false); err != nil {
		return unavailable("store active version: %v", err)
	}
	return nil
}

// Statuses returns every version's status, sorted by name and version,
// with Active set.
func (m *Manager) Statuses(ctx context.Context) []Status {
	head, _ := m.cfg.Head(ctx)
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Status
	for name, vs := range m.workers {
		for v, w := range vs {
			st := w.Status(head)
			st.Active = m.active[name] == v
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

// Specs returns every version's definition, sorted by name and version.
func (m *Manager) Specs() []*Spec {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Spec
	for _, vs := range m.workers {
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
