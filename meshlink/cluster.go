package meshlink

import (
	"context"
	"time"
)

// On a clustered node every server has a Mesh. Each follows every export
// and link through the registry's watch (Follow, Forget), so that any
// server checks an apply, answers the catalog and lists what runs; one
// server runs the workers and solicits the leafnodes to the linked peers:
// the one the node activates (the event stream's leader, see the node's
// meshRunner). When leadership moves, the old server deactivates and the
// new one activates; for the moment both may run, exactly once holds:
// export copies are a chain of expected last seqs, imports carry a
// Nats-Msg-Id and a link resumes from its replicated checkpoint and the
// log (recover).

// Active reports whether this server runs the exports and links: always
// on a standalone node.
func (m *Mesh) Active() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active
}

// Activate makes this server run every export and link it follows, and
// deletes export copies no export grants any more (what a delete through
// another server may have left while this one ran).
func (m *Mesh) Activate(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return unavailable("the node is shutting down")
	}
	if m.active {
		return nil
	}
	m.active = true
	for _, r := range m.exports {
		m.runExport(r)
	}
	if err := m.reload(m.wantRemotes(nil)); err != nil {
		m.log.Error("connect to peers; trying again", "error", err)
	}
	for _, w := range m.links {
		w.mu.Lock()
		w.state = LinkConnecting
		w.mu.Unlock()
		m.runLink(w)
	}
	m.log.Info("this server runs the mesh", "exports", len(m.exports), "links", len(m.links))
	if err := m.sweepExportStreams(ctx); err != nil {
		m.log.Warn("export copies not swept; the next apply tries again", "error", err)
	}
	return nil
}

// Reconcile solicits the leafnodes the links need if an earlier attempt
// failed (a server reload refused while the server changed its runner):
// the node calls it on the server that runs the mesh, now and then. It
// does nothing when the leafnodes are as the links want them.
func (m *Mesh) Reconcile() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.active || m.closed {
		return
	}
	if err := m.reload(m.wantRemotes(nil)); err != nil {
		m.log.Warn("connect to peers; trying again", "error", err)
	}
}

// Deactivate stops every worker and drops the leafnodes to the peers:
// another server runs the mesh now. The exports and links stay followed.
func (m *Mesh) Deactivate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.active {
		return
	}
	m.active = false
	for name, r := range m.exports {
		r.stop()
		m.exports[name] = m.newExport(r.spec)
	}
	for _, w := range m.links {
		w.stop()
		if fresh, err := m.newLinkWorker(w.spec); err == nil {
			m.runLink(fresh) // records it, standing by
		}
	}
	if err := m.reload(nil); err != nil {
		m.log.Warn("drop the leafnodes to the peers", "error", err)
	}
	m.log.Info("this server no longer runs the mesh")
}

// Follow records exports and links stored through any server (the
// registry's watch calls it, also for what this server stored itself):
// changed ones are replaced, and run if this server runs the mesh.
func (m *Mesh) Follow(exports []*Export, links []*Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if err := m.start(exports, links); err != nil {
		m.log.Error("follow exports and links", "error", err)
	}
	if !m.active || len(exports) == 0 {
		return
	}
	// A peer taken out of an export's to loses its copy (as Commit does
	// standalone), also one a worker recreated before it was replaced.
	ctx, cancel := context.WithTimeout(m.ctx, sweepTimeout)
	defer cancel()
	if err := m.sweepExportStreams(ctx); err != nil {
		m.log.Warn("export copies not swept; the next apply tries again", "error", err)
	}
}

// sweepTimeout bounds a sweep of export copies made off a request.
const sweepTimeout = 10 * time.Second

// ForgetExport stops and forgets an export deleted through any server;
// the server that runs the mesh deletes its copies.
func (m *Mesh) ForgetExport(ctx context.Context, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.exports[name]
	if r == nil {
		return
	}
	r.stop()
	delete(m.exports, name)
	if !m.active || m.closed {
		return
	}
	if err := m.sweepExportStreams(ctx); err != nil {
		m.log.Warn("export copies not swept; the next apply tries again", "export", name, "error", err)
	}
}

// ForgetLink stops and forgets a link deleted through any server.
func (m *Mesh) ForgetLink(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.links[name]
	if w == nil {
		return
	}
	w.stop()
	delete(m.links, name)
	if m.closed {
		return
	}
	if err := m.reload(m.wantRemotes(nil)); err != nil {
		m.log.Warn("drop the leafnode of a deleted link", "link", name, "error", err)
	}
}
