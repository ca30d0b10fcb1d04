package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	// Next, when not 0, is the after that continues the list.
	Next uint64 `json:"next,omitempty"`
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
	respondJSON(req, DeleteReply{Kind: body.Kind, Name: body.Name, Status: "deleted"})
}

// DeadLettersRequest is the body of dm.admin.link.deadletters.
type DeadLettersRequest struct {
	Name string `json:"name"`
	// After skips the dead letters up to this export seq (paging).
	After uint64 `json:"after,omitempty"`
	// Limit is how many to return: default 100, at most 1000.
	Limit int `json:"limit,omitempty"`
}

func (n *Node) handleDeadLetters(req micro.Request) {
	var body DeadLettersRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" || body.Limit < 0 {
		replyError(req, errBadRequest(`want {"name": "<link>", "after": <export seq>, "limit": <1..1000>}`))
		return
	}
	if body.Limit == 0 {
		body.Limit = 100
	}
	body.Limit = min(body.Limit, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	dls, next, e := n.mesh.deadLetters(ctx, body.Name, body.After, body.Limit)
	if e != nil {
		replyError(req, e)
		return
	}
	respondJSON(req, DeadLettersReply{Name: body.Name, DeadLetters: dls, Next: next})
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
	// Forget it first: if that fails, the export runs on unchanged.
	if err := m.n.registry.kv.Delete(ctx, exportKVKey(name)); err != nil {
		return errUnavailable("delete export %s: %v", name, err)
	}
	r.cancel()
	r.wait()
	delete(m.exports, name)
	if err := m.sweepExportStreams(ctx); err != nil {
		return errUnavailable("export %s deleted, but not all its copies (the node deletes them at its next start or apply): %v", name, err)
	}
	m.log.Info("export deleted", "export", name)
	return nil
}

// sweepExportStreams deletes every export stream that no export grants to
// the peer of its account any more: after an export is deleted, or a peer
// removed from its to, and at start-up (in case the node stopped between
// storing the change and deleting the copies). m.mu must be held.
func (m *mesh) sweepExportStreams(ctx context.Context) error {
	var errs []error
	for _, peer := range sortedPeers(m.n.cfg) {
		if err := m.sweepPeer(ctx, peer); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", peer, err))
		}
	}
	return errors.Join(errs...)
}

func (m *mesh) sweepPeer(ctx context.Context, peer string) error {
	nc, err := m.n.connectAccount(exportAccount(peer), nats.Name("datamesh-export-sweep"))
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
		export, ok := strings.CutPrefix(name, exportStreamName(""))
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
	// Forget it first: if that fails, the link runs on unchanged.
	if err := m.n.registry.kv.Delete(ctx, linkKVKey(name)); err != nil {
		return errUnavailable("delete link %s: %v", name, err)
	}
	w.cancel()
	w.wait()
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

// deadLetters lists up to limit of a link's dead letters after export seq
// after, in export order; next continues the list (0: no more).
func (m *mesh) deadLetters(ctx context.Context, name string, after uint64, limit int) (dls []DeadLetter, next uint64, e *Error) {
	m.mu.Lock()
	_, ok := m.links[name]
	m.mu.Unlock()
	if !ok {
		return nil, 0, newError(CodeNotFound, 404, "no link %q", name)
	}
	keys, err := listKeys(ctx, m.kv, "deadletter."+name+".*")
	if err != nil {
		return nil, 0, errUnavailable("list dead letters: %v", err)
	}
	var seqs []uint64
	for _, key := range keys {
		s, err := strconv.ParseUint(key[strings.LastIndexByte(key, '.')+1:], 10, 64)
		if err == nil && s > after {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if len(seqs) > limit {
		seqs, next = seqs[:limit], seqs[limit-1]
	}
	dls = []DeadLetter{}
	for _, s := range seqs {
		key := deadLetterKey(name, s)
		entry, err := m.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // replayed meanwhile
		}
		if err != nil {
			return nil, 0, errUnavailable("read %s: %v", key, err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(entry.Value(), &dl); err != nil {
			return nil, 0, errInternal("decode %s: %v", key, err)
		}
		dls = append(dls, dl)
	}
	return dls, next, nil
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
	// Failed are still refused (without their data); their dead letters
	// now hold the new error.
	Failed []DeadLetter `json:"failed"`
	// More says that dead letters are left beyond this call's maxReplay.
	More bool `json:"more,omitempty"`
}

// maxReplay bounds the dead letters one replay handles, so that it answers
// within the API timeout; More in the reply says to call again.
const maxReplay = 500

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
	respondJSON(req, r)
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
	var (
		dls  []DeadLetter
		next uint64
		e    *Error
	)
	if len(seqs) == 0 {
		dls, next, e = m.deadLetters(ctx, name, 0, maxReplay)
	} else {
		dls, e = m.pickDeadLetters(ctx, name, seqs)
	}
	if e != nil {
		return nil, e
	}
	r := &ReplayReply{Name: name, Replayed: []uint64{}, Filtered: []uint64{}, Failed: []DeadLetter{}, More: next != 0}
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
			dl.Error, dl.Data = "the link has not checkpointed this event's batch yet; replay it again in a moment", nil
			r.Failed = append(r.Failed, dl)
			continue
		}
		raw, err := st.GetMsg(ctx, dl.ExportSeq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return r, errUnavailable("read export seq %d: %v", dl.ExportSeq, err)
		}
		if err != nil || raw.Header.Get(HeaderOriginSeq) != strconv.FormatUint(dl.OriginSeq, 10) {
			// A stream deleted and created again numbers from 1: this
			// seq holds another event now, or none.
			dl.Error, dl.Data = "the owner's export no longer holds this event at its export seq (was the export deleted and applied again?)", nil
			r.Failed = append(r.Failed, dl)
			continue
		}
		msg, terr := w.transform(raw.Subject, raw.Header, raw.Data, dl.ExportSeq, dl.OriginSeq)
		switch {
		case terr != nil:
			dl.Error, dl.At = terr.Error(), time.Now().UTC()
			if err := m.putDeadLetter(ctx, key, dl); err != nil {
				return r, errUnavailable("update dead letter %d: %v", dl.ExportSeq, err)
			}
			dl.Data = nil // the reply names the failures; dead-letters shows the data
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
		if w.dead > 0 { // recover may have counted again meanwhile
			w.dead--
		}
		w.mu.Unlock()
	}
	m.log.Info("dead letters replayed", "link", name, "replayed", len(r.Replayed), "filtered", len(r.Filtered), "failed", len(r.Failed))
	return r, nil
}

// pickDeadLetters reads the dead letters at seqs, in export order.
func (m *mesh) pickDeadLetters(ctx context.Context, name string, seqs []uint64) ([]DeadLetter, *Error) {
	if len(seqs) > maxReplay {
		return nil, errBadRequest("at most %d export seqs per replay", maxReplay)
	}
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	var dls []DeadLetter
	var missing []uint64
	for _, s := range seqs {
		entry, err := m.kv.Get(ctx, deadLetterKey(name, s))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			missing = append(missing, s)
			continue
		}
		if err != nil {
			return nil, errUnavailable("read dead letter %d: %v", s, err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(entry.Value(), &dl); err != nil {
			return nil, errInternal("decode dead letter %d: %v", s, err)
		}
		dls = append(dls, dl)
	}
	if len(missing) > 0 {
		return nil, newError(CodeNotFound, 404, "link %s has no dead letter at export seq %v", name, missing)
	}
	return dls, nil
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
