package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
)

// DeleteRequest is the body of dm.admin.delete.
type DeleteRequest struct {
	Kind string `json:"kind"` // Export or Link
	Name string `json:"name"`
}

// DeleteReply answers dm.admin.delete.
type DeleteReply struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status string `json:"status"` // deleted
}

// DeadLettersReply answers dm.admin.link.deadletters.
type DeadLettersReply struct {
	Name        string       `json:"name"`
	DeadLetters []DeadLetter `json:"dead_letters"`
}

func (n *Node) handleDelete(req micro.Request) {
	var body DeleteRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Kind == "" || body.Name == "" {
		replyError(req, errBadRequest(`want {"kind": "Export" or "Link", "name": "..."}`))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	var e *Error
	switch {
	case strings.EqualFold(body.Kind, meshlink.KindExport):
		body.Kind, e = meshlink.KindExport, n.mesh.deleteExport(ctx, body.Name)
	case strings.EqualFold(body.Kind, meshlink.KindLink):
		body.Kind, e = meshlink.KindLink, n.mesh.deleteLink(ctx, body.Name)
	case strings.EqualFold(body.Kind, "Projection"):
		e = errBadRequest("a projection is removed version by version: `datamesh projection retire %s VERSION` (the active version cannot be retired)", body.Name)
	case strings.EqualFold(body.Kind, "EventType"):
		e = errBadRequest("contracts are not deleted: stored events were checked against them; apply a new version instead")
	default:
		e = errBadRequest("kind %q cannot be deleted; want Export or Link", body.Kind)
	}
	if e != nil {
		replyError(req, e)
		return
	}
	_ = req.RespondJSON(DeleteReply{Kind: body.Kind, Name: body.Name, Status: "deleted"})
}

func (n *Node) handleDeadLetters(req micro.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" {
		replyError(req, errBadRequest(`want {"name": "<link>"}`))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	dls, e := n.mesh.deadLetters(ctx, body.Name)
	if e != nil {
		replyError(req, e)
		return
	}
	_ = req.RespondJSON(DeadLettersReply{Name: body.Name, DeadLetters: dls})
}

// deleteExport stops an export, forgets its definition and deletes its
// streams, so its peers can no longer read what it exported.
func (m *mesh) deleteExport(ctx context.Context, name string) *Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.exports[name]
	if r == nil {
		return newError(CodeNotFound, 404, "no export %q", name)
	}
	r.cancel()
	r.wait()
	if err := m.n.registry.kv.Delete(ctx, exportKVKey(name)); err != nil {
		return errUnavailable("delete export %s: %v", name, err)
	}
	delete(m.exports, name)
	for _, peer := range r.spec.To {
		if err := m.dropExportStream(ctx, peer, name); err != nil {
			return errUnavailable("export %s deleted, but its stream for %s was not: %v", name, peer, err)
		}
	}
	m.log.Info("export deleted", "export", name)
	return nil
}

// dropExportStream deletes the copy of an export that peer reads.
func (m *mesh) dropExportStream(ctx context.Context, peer, name string) error {
	nc, err := m.n.connectAccount(exportAccount(peer), nats.Name("datamesh-export-delete"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := js.DeleteStream(ctx, exportStreamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	return nil
}

// dropRemovedPeers deletes the streams of peers that an export no longer
// grants. m.mu must be held.
func (m *mesh) dropRemovedPeers(old, updated *meshlink.Export) *Error {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	for _, peer := range old.To {
		if slices.Contains(updated.To, peer) {
			continue
		}
		if err := m.dropExportStream(ctx, peer, old.Name); err != nil {
			return errUnavailable("export %s: revoke %s: %v", old.Name, peer, err)
		}
	}
	return nil
}

// deleteLink stops a link and forgets its definition. Its checkpoint and
// dead letters stay, so a link applied again under the same name resumes
// where this one stopped instead of importing twice. The leafnode to the
// peer is dropped when no other link uses it.
func (m *mesh) deleteLink(ctx context.Context, name string) *Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.links[name]
	if w == nil {
		return newError(CodeNotFound, 404, "no link %q", name)
	}
	w.cancel()
	w.wait()
	if err := m.n.registry.kv.Delete(ctx, linkKVKey(name)); err != nil {
		return errUnavailable("delete link %s: %v", name, err)
	}
	delete(m.links, name)
	remotes := map[string]string{}
	for _, l := range m.links {
		remotes[l.spec.Peer] = l.spec.URL
	}
	if err := m.reload(remotes); err != nil {
		return errUnavailable("link %s deleted, but its leafnode was not dropped: %v", name, err)
	}
	m.log.Info("link deleted", "link", name)
	return nil
}

// deadLetters lists a link's dead letters in export order.
func (m *mesh) deadLetters(ctx context.Context, name string) ([]DeadLetter, *Error) {
	m.mu.Lock()
	_, ok := m.links[name]
	m.mu.Unlock()
	if !ok {
		return nil, newError(CodeNotFound, 404, "no link %q", name)
	}
	keys, err := m.kv.ListKeysFiltered(ctx, "deadletter."+name+".*")
	if err != nil {
		return nil, errUnavailable("list dead letters: %v", err)
	}
	defer keys.Stop() // frees the lister on an early return
	out := []DeadLetter{}
	for key := range keys.Keys() {
		e, err := m.kv.Get(ctx, key)
		if err != nil {
			return nil, errUnavailable("read %s: %v", key, err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(e.Value(), &dl); err != nil {
			return nil, errInternal("decode %s: %v", key, err)
		}
		out = append(out, dl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExportSeq < out[j].ExportSeq })
	return out, nil
}
