package meshlink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeleteExport stops an export, forgets its definition and deletes its
// streams, so its peers can no longer read what it exported.
func (m *Mesh) DeleteExport(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.exports[name]
	if r == nil {
		return notFound("no export %q", name)
	}
	// Forget it first: if that fails, the export runs on unchanged.
	if err := m.deps.Store.DeleteExport(ctx, name); err != nil {
		return unavailable("delete export %s: %v", name, err)
	}
	r.stop()
	delete(m.exports, name)
	if err := m.sweepExportStreams(ctx); err != nil {
		return unavailable("export %s deleted, but not all its copies (the node deletes them at its next start or apply): %v", name, err)
	}
	m.log.Info("export deleted", "export", name)
	return nil
}

// DeleteLink stops a link and forgets its definition. Its checkpoint and
// dead letters stay, so a link applied again under the same name resumes
// where this one stopped instead of importing twice. The leafnode to the
// peer is dropped when no other link uses it.
func (m *Mesh) DeleteLink(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.links[name]
	if w == nil {
		return notFound("no link %q", name)
	}
	// Forget it first: if that fails, the link runs on unchanged.
	if err := m.deps.Store.DeleteLink(ctx, name); err != nil {
		return unavailable("delete link %s: %v", name, err)
	}
	w.stop()
	delete(m.links, name)
	remotes := map[string]string{}
	for _, l := range m.links {
		remotes[l.spec.Peer] = l.spec.URL
	}
	if err := m.reload(remotes); err != nil {
		return unavailable("link %s deleted, but its leafnode was not dropped: %v", name, err)
	}
	m.log.Info("link deleted", "link", name)
	return nil
}

// sweepExportStreams deletes every export stream that no export grants to
// the peer of its account any more: after an export is deleted, or a peer
// removed from its to, and at start-up (in case the node stopped between
// storing the change and deleting the copies). m.mu must be held.
func (m *Mesh) sweepExportStreams(ctx context.Context) error {
	var errs []error
	for _, peer := range m.cfg.Peers {
		if err := m.sweepPeer(ctx, peer); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", peer, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Mesh) sweepPeer(ctx context.Context, peer string) error {
	nc, err := m.deps.Dialer.ConnectExport(peer, nats.Name("datamesh-export-sweep"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	names := js.StreamNames(ctx)
	var stale []string
	for name := range names.Name() {
		export, ok := strings.CutPrefix(name, exportStream(""))
		if !ok {
			continue
		}
		if r := m.exports[export]; r == nil || !slices.Contains(r.spec.To, peer) {
			stale = append(stale, name)
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, name := range stale {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		m.log.Info("export copy deleted", "stream", name, "peer", peer)
	}
	return nil
}
