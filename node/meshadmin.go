package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

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

// ReplayRequest is the body of dm.admin.link.replay.
type ReplayRequest struct {
	Name string `json:"name"`
	// ExportSeqs picks dead letters by export seq; none: all of them.
	ExportSeqs []uint64 `json:"export_seqs,omitempty"`
}

// ReplayReply answers dm.admin.link.replay.
type ReplayReply struct {
	Name string `json:"name"`
	// Replayed were transformed and appended now (or found already stored).
	Replayed []uint64 `json:"replayed"`
	// Filtered are dropped by the link's filter now; they are removed too.
	Filtered []uint64 `json:"filtered"`
	// Failed are still refused; their dead letters now hold the new error.
	Failed []DeadLetter `json:"failed"`
}

func (n *Node) handleReplay(req micro.Request) {
	var body ReplayRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" {
		replyError(req, errBadRequest(`want {"name": "<link>", "export_seqs": [...]} (no export_seqs: every dead letter)`))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	r, e := n.mesh.replay(ctx, body.Name, body.ExportSeqs)
	if e != nil {
		replyError(req, e)
		return
	}
	_ = req.RespondJSON(r)
}

// replay runs a link's dead letters through its current transform and
// contracts again, reading each event from the owner's export stream, and
// appends those that pass. Once: an event's ce-id is <link>:<origin seq>,
// and replay looks for it in the log before appending. Replayed events
// land after the events imported since: the owner's order holds among the
// events that never failed.
func (m *mesh) replay(ctx context.Context, name string, seqs []uint64) (*ReplayReply, *Error) {
	m.mu.Lock()
	w := m.links[name]
	m.mu.Unlock()
	if w == nil {
		return nil, newError(CodeNotFound, 404, "no link %q", name)
	}
	w.replayMu.Lock() // one replay of a link at a time
	defer w.replayMu.Unlock()
	dls, e := m.deadLetters(ctx, name)
	if e != nil {
		return nil, e
	}
	if len(seqs) > 0 {
		want := map[uint64]bool{}
		for _, s := range seqs {
			want[s] = true
		}
		picked := dls[:0]
		for _, dl := range dls {
			if want[dl.ExportSeq] {
				picked = append(picked, dl)
				delete(want, dl.ExportSeq)
			}
		}
		if len(want) > 0 {
			missing := make([]uint64, 0, len(want))
			for s := range want {
				missing = append(missing, s)
			}
			sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
			return nil, newError(CodeNotFound, 404, "link %s has no dead letter at export seq %v", name, missing)
		}
		dls = picked
	}
	r := &ReplayReply{Name: name, Replayed: []uint64{}, Filtered: []uint64{}, Failed: []DeadLetter{}}
	if len(dls) == 0 {
		return r, nil
	}
	remote, err := m.n.PeerConn(w.spec.Peer, nats.Name("datamesh-link-replay-"+name))
	if err != nil {
		return nil, errUnavailable("connect to %s: %v", w.spec.Peer, err)
	}
	defer remote.Close()
	rjs, err := jetstream.NewWithDomain(remote, w.spec.Peer)
	if err != nil {
		return nil, errInternal("%v", err)
	}
	st, err := rjs.Stream(ctx, exportStreamName(w.spec.Export))
	if err != nil {
		return nil, errUnavailable("reach export %s of %s: %v", w.spec.Export, w.spec.Peer, err)
	}
	w.mu.Lock()
	checkpoint := w.cp.ExportSeq
	w.mu.Unlock()
	for _, dl := range dls {
		key := deadLetterKey(name, dl.ExportSeq)
		if dl.ExportSeq > checkpoint {
			// Its batch is not checkpointed yet: a replayed event there
			// would look, to the link's recovery, like the batch's end.
			dl.Error = "the link has not checkpointed this event's batch yet; replay it again in a moment"
			r.Failed = append(r.Failed, dl)
			continue
		}
		raw, err := st.GetMsg(ctx, dl.ExportSeq)
		if err != nil {
			return r, errUnavailable("read export seq %d: %v", dl.ExportSeq, err)
		}
		msg, terr := w.transform(raw.Subject, raw.Header, raw.Data, dl.ExportSeq, dl.OriginSeq)
		switch {
		case terr != nil:
			dl.Error, dl.At = terr.Error(), time.Now().UTC()
			if err := m.putDeadLetter(ctx, key, dl); err != nil {
				return r, errUnavailable("update dead letter %d: %v", dl.ExportSeq, err)
			}
			r.Failed = append(r.Failed, dl)
			continue
		case msg == nil:
			r.Filtered = append(r.Filtered, dl.ExportSeq)
		default:
			if e := m.appendOnce(ctx, msg); e != nil {
				return r, e
			}
			r.Replayed = append(r.Replayed, dl.ExportSeq)
		}
		if err := m.kv.Delete(ctx, key); err != nil {
			return r, errUnavailable("remove dead letter %d: %v", dl.ExportSeq, err)
		}
		w.mu.Lock()
		w.dead--
		w.mu.Unlock()
	}
	m.log.Info("dead letters replayed", "link", name, "replayed", len(r.Replayed), "filtered", len(r.Filtered), "failed", len(r.Failed))
	return r, nil
}

func (m *mesh) putDeadLetter(ctx context.Context, key string, dl DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	_, err = m.kv.Put(ctx, key, b)
	return err
}

// appendOnce appends an imported event unless the log holds its ce-id
// already (a replay cut short after its append).
func (m *mesh) appendOnce(ctx context.Context, msg *nats.Msg) *Error {
	// <prefix>.<aggregate>.<id>.<type>
	parts := strings.Split(strings.TrimPrefix(msg.Subject, m.n.cfg.SubjectPrefix+"."), ".")
	ceID := msg.Header.Get(nats.MsgIdHdr)
	if len(parts) == 3 && ceID != "" {
		_, _, found, err := m.n.events.findStored(parts[0], parts[1], []string{ceID}, 0)
		if err != nil {
			return errUnavailable("check for duplicates: %v", err)
		}
		if found {
			return nil
		}
	}
	if _, err := m.n.js.PublishMsg(ctx, msg); err != nil {
		return publishError(err, nil)
	}
	return nil
}
