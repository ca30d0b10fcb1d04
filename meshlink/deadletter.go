package meshlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// DeadLetter is an imported event a transform or a contract refused.
type DeadLetter struct {
	Link      string          `json:"link"`
	ExportSeq uint64          `json:"export_seq"`
	OriginSeq uint64          `json:"origin_seq"`
	Aggregate string          `json:"aggregate"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
	At        time.Time       `json:"at"`
}

// deadLetterName is how errors name a dead letter: its key in the store.
func deadLetterName(link string, exportSeq uint64) string {
	return "deadletter." + link + "." + strconv.FormatUint(exportSeq, 10)
}

// recordDeadLetter records a refused event; false if it was recorded before.
func (w *linkWorker) recordDeadLetter(ctx context.Context, msg jetstream.Msg, seq, originSeq uint64, cause error) (bool, error) {
	dl := DeadLetter{Link: w.spec.Name, ExportSeq: seq, OriginSeq: originSeq, Error: cause.Error(),
		Data: json.RawMessage(msg.Data()), At: time.Now().UTC()}
	if aggregate, id, typ, ok := eventlog.ParseSubject(exportSubjects(w.spec.Export), msg.Subject()); ok {
		dl.Aggregate, dl.ID, dl.Type = aggregate, id, typ
	}
	if !json.Valid(dl.Data) {
		dl.Data = nil
	}
	w.mu.Lock()
	w.lastError, w.deadError = fmt.Sprintf("export seq %d dead-lettered: %v", seq, cause), seq
	w.mu.Unlock()
	w.log.Warn("event dead-lettered", "export_seq", seq, "error", cause)
	created, err := w.m.deps.Store.CreateDeadLetter(ctx, dl)
	if err != nil {
		return false, fmt.Errorf("store dead letter: %w", err)
	}
	return created, nil
}

// DeadLetters lists up to limit of a link's dead letters after export seq
// after, in export order; next continues the list (0: no more).
func (m *Mesh) DeadLetters(ctx context.Context, name string, after uint64, limit int) (dls []DeadLetter, next uint64, err error) {
	if m.link(name) == nil {
		return nil, 0, notFound("no link %q", name)
	}
	if limit < 1 {
		return nil, 0, invalid("limit %d: want at least 1", limit)
	}
	all, err := m.deps.Store.DeadLetterSeqs(ctx, name)
	if err != nil {
		return nil, 0, unavailable("list dead letters: %v", err)
	}
	var seqs []uint64
	for _, s := range all {
		if s > after {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if len(seqs) > limit {
		seqs, next = seqs[:limit], seqs[limit-1]
	}
	dls = []DeadLetter{}
	for _, s := range seqs {
		dl, found, err := m.deps.Store.DeadLetter(ctx, name, s)
		if err != nil {
			return nil, 0, unavailable("read %s: %v", deadLetterName(name, s), err)
		}
		if !found {
			continue // replayed meanwhile
		}
		dls = append(dls, dl)
	}
	return dls, next, nil
}

// ReplayResult is what a replay did with each dead letter.
type ReplayResult struct {
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

// Replay runs a link's dead letters (those at exportSeqs, or all of them
// if none) through its current transform and contracts again, reading each
// event from the owner's export stream, and appends those that pass. Once:
// an event's ce-id is <link>:<origin seq>, and replay looks for it in the
// log before appending. Replayed events land after the events imported
// since: the owner's order holds among the events that never failed. An
// append that fails returns the Log's own error, with the result so far.
func (m *Mesh) Replay(ctx context.Context, name string, exportSeqs []uint64) (*ReplayResult, error) {
	w := m.link(name)
	if w == nil {
		return nil, notFound("no link %q", name)
	}
	if !m.Active() {
		return nil, unavailable("server %s does not run the links: another server of the cluster does", m.cfg.Server)
	}
	w.replayMu.Lock() // one replay of a link at a time
	defer w.replayMu.Unlock()
	var (
		dls  []DeadLetter
		next uint64
		err  error
	)
	if len(exportSeqs) == 0 {
		dls, next, err = m.DeadLetters(ctx, name, 0, maxReplay)
	} else {
		dls, err = m.pickDeadLetters(ctx, name, exportSeqs)
	}
	if err != nil {
		return nil, err
	}
	r := &ReplayResult{Name: name, Replayed: []uint64{}, Filtered: []uint64{}, Failed: []DeadLetter{}, More: next != 0}
	if len(dls) == 0 {
		return r, nil
	}
	remote, err := m.deps.Dialer.ConnectPeer(w.spec.Peer, nats.Name("datamesh-link-replay-"+name))
	if err != nil {
		return nil, unavailable("connect to %s: %v", w.spec.Peer, err)
	}
	defer remote.Close()
	rjs, err := jetstream.NewWithDomain(remote, w.spec.Peer)
	if err != nil {
		return nil, err
	}
	st, err := rjs.Stream(ctx, exportStream(w.spec.Export))
	if err != nil {
		return nil, unavailable("reach export %s of %s: %v", w.spec.Export, w.spec.Peer, err)
	}
	w.mu.Lock()
	checkpoint := w.cp.ExportSeq
	w.mu.Unlock()
	for _, dl := range dls {
		if err := w.replayOne(ctx, st, dl, checkpoint, r); err != nil {
			return r, err
		}
	}
	m.log.Info("dead letters replayed", "link", name, "replayed", len(r.Replayed), "filtered", len(r.Filtered), "failed", len(r.Failed))
	return r, nil
}

// replayOne replays dl and records the outcome in r.
func (w *linkWorker) replayOne(ctx context.Context, st jetstream.Stream, dl DeadLetter, checkpoint uint64, r *ReplayResult) error {
	if dl.ExportSeq > checkpoint {
		// Its batch is not checkpointed yet: a replayed event there
		// would look, to the link's recovery, like the batch's end.
		dl.Error, dl.Data = "the link has not checkpointed this event's batch yet; replay it again in a moment", nil
		r.Failed = append(r.Failed, dl)
		return nil
	}
	raw, err := st.GetMsg(ctx, dl.ExportSeq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return unavailable("read export seq %d: %v", dl.ExportSeq, err)
	}
	if err != nil || raw.Header.Get(eventlog.HeaderOriginSeq) != strconv.FormatUint(dl.OriginSeq, 10) {
		// A stream deleted and created again numbers from 1: this
		// seq holds another event now, or none.
		dl.Error, dl.Data = "the owner's export no longer holds this event at its export seq (was the export deleted and applied again?)", nil
		r.Failed = append(r.Failed, dl)
		return nil
	}
	store := w.m.deps.Store
	msg, terr := w.transform(raw.Subject, raw.Header, raw.Data, dl.ExportSeq, dl.OriginSeq)
	switch {
	case terr != nil:
		dl.Error, dl.At = terr.Error(), time.Now().UTC()
		if err := store.PutDeadLetter(ctx, dl); err != nil {
			return unavailable("update dead letter %d: %v", dl.ExportSeq, err)
		}
		dl.Data = nil // the reply names the failures; dead-letters shows the data
		r.Failed = append(r.Failed, dl)
		return nil
	case msg == nil:
		r.Filtered = append(r.Filtered, dl.ExportSeq)
	default:
		if err := w.m.deps.Log.AppendOnce(ctx, msg); err != nil {
			return err
		}
		r.Replayed = append(r.Replayed, dl.ExportSeq)
	}
	if err := store.DeleteDeadLetter(ctx, w.spec.Name, dl.ExportSeq); err != nil {
		return unavailable("remove dead letter %d: %v", dl.ExportSeq, err)
	}
	w.replayed(dl.ExportSeq, msg != nil)
	return nil
}

// replayed updates the status after the dead letter at export seq seq was
// replayed and removed: one dead letter less, one event more imported
// (appended) or filtered, and no last error telling of a dead letter that
// is gone. A removed dead letter counts once, even when an earlier replay
// cut short had appended its event already.
func (w *linkWorker) replayed(seq uint64, appended bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead > 0 { // recover may have counted again meanwhile
		w.dead--
	}
	if appended {
		w.imported++
	} else {
		w.filtered++
	}
	if w.deadError != 0 && (w.deadError == seq || w.dead == 0) {
		w.lastError, w.deadError = "", 0
	}
}

// pickDeadLetters reads the dead letters at seqs, in export order.
func (m *Mesh) pickDeadLetters(ctx context.Context, name string, seqs []uint64) ([]DeadLetter, error) {
	if len(seqs) > maxReplay {
		return nil, invalid("at most %d export seqs per replay", maxReplay)
	}
	seqs = slices.Compact(slices.Sorted(slices.Values(seqs)))
	var dls []DeadLetter
	var missing []uint64
	for _, s := range seqs {
		dl, found, err := m.deps.Store.DeadLetter(ctx, name, s)
		if err != nil {
			return nil, unavailable("read dead letter %d: %v", s, err)
		}
		if !found {
			missing = append(missing, s)
			continue
		}
		dls = append(dls, dl)
	}
	if len(missing) > 0 {
		return nil, notFound("link %s has no dead letter at export seq %v", name, missing)
	}
	return dls, nil
}
