package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/datamesh/datamesh/meshlink"
)

// Link states.
const (
	LinkConnecting = "connecting" // waiting for the peer or its export
	LinkImporting  = "importing"  // reading the export
	LinkFailed     = "failed"     // stopped by a transform error (on_error: stop)
)

// LinkStatus is one link in dm.admin.mesh.
type LinkStatus struct {
	Name      string `json:"name"`
	Peer      string `json:"peer"`
	Export    string `json:"export"`
	URL       string `json:"url"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// ExportSeq is the last position read in the peer's export stream;
	// ExportHead is that stream's last seq.
	ExportSeq  uint64 `json:"export_seq"`
	ExportHead uint64 `json:"export_head"`
	// OriginSeq is the owner's seq of the last event imported (or
	// skipped); OwnerHeadSeq is the owner's seq of its last exported event.
	OriginSeq    uint64 `json:"origin_seq"`
	OwnerHeadSeq uint64 `json:"owner_head_seq"`
	// LagEvents is how many exported events are not imported yet;
	// LagSeconds how long ago the oldest of them was exported.
	LagEvents   uint64  `json:"lag_events"`
	LagSeconds  float64 `json:"lag_seconds"`
	Rate        float64 `json:"rate"`
	Imported    uint64  `json:"imported"`
	Filtered    uint64  `json:"filtered"`
	DeadLetters uint64  `json:"dead_letters"`
	LastError   string  `json:"last_error,omitempty"`
	FailedAt    uint64  `json:"failed_at,omitempty"`
}

// linkCheckpoint is where a link is, stored in linksKV after each batch.
type linkCheckpoint struct {
	ExportSeq uint64 `json:"export_seq"`
	OriginSeq uint64 `json:"origin_seq"`
	// LocalSeq is the seq, in this node's log, of the last event the link
	// appended: recovery looks for later ones (see recover).
	LocalSeq uint64 `json:"local_seq"`
	Started  bool   `json:"started"`
}

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

func checkpointKey(link string) string { return "checkpoint." + link }
func deadLetterKey(link string, exportSeq uint64) string {
	return "deadletter." + link + "." + strconv.FormatUint(exportSeq, 10)
}

// linkWorker imports one export of a peer: it reads the export stream over
// the peer's leafnode, transforms each event, and appends the results to
// this node's log as atomic batches, checked against this node's contracts.
//
// Effectively once: the checkpoint names the last export seq handled; an
// appended event carries Dm-Link and Dm-Link-Seq, so after a crash between
// an append and the checkpoint write, recover finds the appended events in
// the log; the export stream has no gaps, so any gap or repeat in what the
// consumer delivers resets the consumer at the checkpoint.
type linkWorker struct {
	m    *mesh
	spec *meshlink.Link
	tr   meshlink.Transformer
	log  hclog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	cp         linkCheckpoint
	state      string
	exportHead uint64
	ownerHead  uint64
	lagSeconds float64
	rate       rate
	imported   uint64
	filtered   uint64
	dead       uint64
	lastError  string
	failedAt   uint64
	savedAt    time.Time // of the checkpoint; only the worker's goroutine uses it

	replayMu sync.Mutex // one replay of dead letters at a time (see mesh.replay)
}

// checkpointEvery bounds how often a link writes its checkpoint.
const checkpointEvery = 250 * time.Millisecond

// startLink starts a worker for l. m.mu must be held.
func (m *mesh) startLink(l *meshlink.Link) (*linkWorker, error) {
	tr := m.n.transforms[l.Name]
	if tr == nil {
		var err error
		if tr, err = meshlink.Compile(l.Transform); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(m.ctx)
	w := &linkWorker{m: m, spec: l, tr: tr, cancel: cancel, done: make(chan struct{}), state: LinkConnecting,
		log: m.log.Named("link").With("link", l.Name, "peer", l.Peer)}
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
	m.log.Info("link started", "link", l.Name, "peer", l.Peer, "export", l.Export)
	return w, nil
}

func (w *linkWorker) wait() { <-w.done }

func (w *linkWorker) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := w.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		var stop *linkStop
		if errors.As(err, &stop) {
			w.mu.Lock()
			w.state, w.lastError, w.failedAt = LinkFailed, stop.Error(), stop.seq
			w.mu.Unlock()
			w.log.Error("link failed", "export_seq", stop.seq, "error", stop.err)
			return
		}
		w.mu.Lock()
		w.state, w.lastError = LinkConnecting, err.Error()
		w.mu.Unlock()
		w.log.Debug("link interrupted; retrying", "error", err)
		if !backoff(ctx, attempt) {
			return
		}
	}
}

// linkStop is a transform error under on_error: stop.
type linkStop struct {
	seq uint64
	err error
}

func (e *linkStop) Error() string { return fmt.Sprintf("export seq %d: %v", e.seq, e.err) }

func (w *linkWorker) runOnce(ctx context.Context) error {
	local, err := w.m.n.Connect(nats.Name("datamesh-link-" + w.spec.Name))
	if err != nil {
		return err
	}
	defer local.Close()
	// Closing the connections when ctx ends unblocks any request in flight.
	defer context.AfterFunc(ctx, local.Close)()
	ljs, err := jetstream.New(local)
	if err != nil {
		return err
	}
	if err := w.recover(ctx, ljs); err != nil {
		return fmt.Errorf("recover checkpoint: %w", err)
	}
	remote, err := w.m.n.PeerConn(w.spec.Peer, nats.Name("datamesh-link-"+w.spec.Name))
	if err != nil {
		return err
	}
	defer remote.Close()
	defer context.AfterFunc(ctx, remote.Close)()
	rjs, err := jetstream.NewWithDomain(remote, w.spec.Peer)
	if err != nil {
		return err
	}
	st, err := rjs.Stream(ctx, exportStreamName(w.spec.Export))
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("peer %s has no export %q for this node (not granted, or not applied yet)", w.spec.Peer, w.spec.Export)
		}
		return fmt.Errorf("reach export %s of %s: %w", w.spec.Export, w.spec.Peer, err)
	}
	w.mu.Lock()
	cp := w.cp
	w.mu.Unlock()
	if !cp.Started {
		if w.spec.Start.Policy == meshlink.StartNew {
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			cp.ExportSeq = info.State.LastSeq
		}
		cp.Started = true
		if err := w.save(ctx, cp); err != nil {
			return err
		}
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		MaxResetAttempts: fetchResets,
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      cp.ExportSeq + 1,
	})
	if err != nil {
		return fmt.Errorf("read export %s of %s: %w", w.spec.Export, w.spec.Peer, err)
	}
	w.mu.Lock()
	w.state, w.lastError = LinkImporting, ""
	w.mu.Unlock()
	var headAt, idleSince time.Time
	for ctx.Err() == nil {
		if time.Since(headAt) >= time.Second {
			w.refreshHead(ctx, remote, st)
			headAt = time.Now()
		}
		msgs, err := fetch(cons, meshBatch)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			// The owner restarted and lost the consumer, or the link came
			// back: if the export has more and nothing comes, start over.
			w.mu.Lock()
			behind := w.exportHead > w.cp.ExportSeq
			w.mu.Unlock()
			if !behind {
				idleSince = time.Time{}
			} else if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 2*meshWait {
				return errors.New("the export has new events but none arrive: reading it again")
			}
			continue
		}
		idleSince = time.Time{}
		if err := w.importBatch(ctx, ljs, local, msgs); err != nil {
			return err
		}
	}
	return nil
}

// refreshHead reads the export stream's head, for lag.
func (w *linkWorker) refreshHead(ctx context.Context, nc *nats.Conn, st jetstream.Stream) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		return
	}
	head := info.State.LastSeq
	var owner uint64
	if head > 0 {
		owner, _ = originSeqAt(ctx, nc, "$JS."+w.spec.Peer+".API", exportStreamName(w.spec.Export), head)
	}
	w.mu.Lock()
	w.exportHead, w.ownerHead = head, owner
	if head <= w.cp.ExportSeq {
		w.lagSeconds = 0
	}
	w.mu.Unlock()
}

// pendingImport is one transformed event waiting to be appended.
type pendingImport struct {
	msg                  *nats.Msg
	exportSeq, originSeq uint64
}

// importBatch transforms and appends one batch, then moves the checkpoint.
func (w *linkWorker) importBatch(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, msgs []jetstream.Msg) error {
	w.mu.Lock()
	cp := w.cp
	w.mu.Unlock()
	var pending []pendingImport
	var filtered, dead uint64
	var lastTime time.Time
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		if seq <= cp.ExportSeq {
			continue // delivered again after a consumer reset
		}
		if seq != cp.ExportSeq+1 {
			return fmt.Errorf("export stream gap: got seq %d after %d", seq, cp.ExportSeq)
		}
		lastTime = md.Timestamp
		originSeq, _ := strconv.ParseUint(msg.Headers().Get(HeaderOriginSeq), 10, 64)
		var m *nats.Msg
		if originSeq >= w.spec.Start.Seq { // start: <seq> skips the owner's earlier events
			m, err = w.transform(msg.Subject(), msg.Headers(), msg.Data(), seq, originSeq)
		}
		switch {
		case err != nil:
			if w.spec.OnErrorPolicy() == meshlink.OnErrorStop {
				// Append what came before, so the link stops exactly at seq.
				if e := w.commit(ctx, js, nc, pending, &cp); e != nil {
					return e
				}
				return &linkStop{seq: seq, err: err}
			}
			if added, e := w.recordDeadLetter(ctx, msg, seq, originSeq, err); e != nil {
				return e
			} else if added {
				dead++
			}
		case m == nil:
			filtered++
		default:
			pending = append(pending, pendingImport{msg: m, exportSeq: seq, originSeq: originSeq})
		}
		cp.ExportSeq, cp.OriginSeq = seq, originSeq
	}
	if err := w.commit(ctx, js, nc, pending, &cp); err != nil {
		return err
	}
	now := time.Now()
	// The checkpoint is written at most every checkpointEvery (each write
	// is an fsync): recover finds the batches appended since in the log.
	if now.Sub(w.savedAt) >= checkpointEvery || dead > 0 {
		if err := w.save(ctx, cp); err != nil {
			return err
		}
		w.savedAt = now
	}
	w.mu.Lock()
	w.cp = cp
	w.imported += uint64(len(pending))
	w.filtered += filtered
	w.dead += dead
	w.rate.add(len(pending), now)
	if w.exportHead > cp.ExportSeq && !lastTime.IsZero() {
		w.lagSeconds = now.Sub(lastTime).Seconds()
	} else {
		w.lagSeconds = 0
	}
	w.exportHead = max(w.exportHead, cp.ExportSeq)
	w.ownerHead = max(w.ownerHead, cp.OriginSeq)
	w.mu.Unlock()
	return nil
}

// transform turns one exported message (export seq seq) into the message
// to append, or nil if the filter drops it.
func (w *linkWorker) transform(subject string, h nats.Header, data []byte, seq, originSeq uint64) (*nats.Msg, error) {
	// export.<export>.<aggregate>.<id>.<type>
	parts := strings.Split(subject, ".")
	if len(parts) != 5 {
		return nil, fmt.Errorf("unexpected export subject %q", subject)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	in := meshlink.Event{Aggregate: parts[2], ID: parts[3], Type: parts[4], EventID: h.Get(HeaderOriginID),
		Source: h.Get(HeaderSource), Time: h.Get(HeaderTime), Node: h.Get(HeaderOriginNode), Seq: originSeq, Data: v}
	out, keep, err := w.tr.Transform(in)
	if err != nil || !keep {
		return nil, err
	}
	body, err := json.Marshal(out.Data)
	if err != nil {
		return nil, fmt.Errorf("transformed data: %w", err)
	}
	ev := &incoming{
		Type:   out.Type,
		ID:     w.spec.Name + ":" + strconv.FormatUint(originSeq, 10),
		Source: in.Source,
		Time:   in.Time,
		Data:   body,
	}
	m, e := w.m.n.prepare(out.Aggregate, out.ID, ev)
	if e != nil {
		return nil, e
	}
	m.Header.Set(HeaderOriginNode, in.Node)
	m.Header.Set(HeaderOriginSeq, strconv.FormatUint(originSeq, 10))
	m.Header.Set(HeaderOriginID, in.EventID)
	m.Header.Set(HeaderLink, w.spec.Name)
	m.Header.Set(HeaderLinkSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(HeaderMeshPath, h.Get(HeaderMeshPath))
	return m, nil
}

// recordDeadLetter records a refused event; false if it was recorded before.
func (w *linkWorker) recordDeadLetter(ctx context.Context, msg jetstream.Msg, seq, originSeq uint64, cause error) (bool, error) {
	parts := strings.Split(msg.Subject(), ".")
	dl := DeadLetter{Link: w.spec.Name, ExportSeq: seq, OriginSeq: originSeq, Error: cause.Error(),
		Data: json.RawMessage(msg.Data()), At: time.Now().UTC()}
	if len(parts) == 5 {
		dl.Aggregate, dl.ID, dl.Type = parts[2], parts[3], parts[4]
	}
	if !json.Valid(dl.Data) {
		dl.Data = nil
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return false, err
	}
	w.mu.Lock()
	w.lastError = fmt.Sprintf("export seq %d dead-lettered: %v", seq, cause)
	w.mu.Unlock()
	w.log.Warn("event dead-lettered", "export_seq", seq, "error", cause)
	if _, err := w.m.kv.Create(ctx, deadLetterKey(w.spec.Name, seq), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("store dead letter: %w", err)
	}
	return true, nil
}

// commit appends pending to the log as atomic batches (one fsync each)
// and records the last local seq in cp.
func (w *linkWorker) commit(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, pending []pendingImport, cp *linkCheckpoint) error {
	for len(pending) > 0 {
		n := chunkLen(pending)
		seq, err := appendAtomic(ctx, js, nc, pending[:n])
		if err != nil {
			return fmt.Errorf("append imported events: %w", err)
		}
		cp.LocalSeq = seq
		pending = pending[n:]
	}
	return nil
}

// chunkLen is how many of p go in the next atomic batch: at most maxGroup
// messages and maxGroupBytes of data (at least one).
func chunkLen(p []pendingImport) int {
	n, size := 0, 0
	for n < len(p) && n < maxGroup && (n == 0 || size+len(p[n].msg.Data) <= maxGroupBytes) {
		size += len(p[n].msg.Data)
		n++
	}
	return n
}

// appendAtomic stores msgs as one atomic batch and returns the last seq. A
// batch refused because some ids are stored already (a retry after a
// crash) is written again one by one, the stored ones acknowledged as
// duplicates.
func appendAtomic(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, batch []pendingImport) (uint64, error) {
	if len(batch) == 1 {
		ack, err := js.PublishMsg(ctx, batch[0].msg)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	id := nuid.Next()
	for i, p := range batch {
		p.msg.Header.Set(hdrBatchID, id)
		p.msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	last := batch[len(batch)-1].msg
	last.Header.Set(hdrBatchCommit, "1")
	for _, p := range batch[:len(batch)-1] {
		if err := nc.PublishMsg(p.msg); err != nil {
			return 0, err
		}
	}
	ack, err := js.PublishMsg(ctx, last)
	if err == nil {
		return ack.Sequence, nil
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeBatchDuplicate {
		return 0, err
	}
	var seq uint64
	for _, p := range batch {
		for _, h := range []string{hdrBatchID, hdrBatchSeq, hdrBatchCommit} {
			p.msg.Header.Del(h)
		}
		ack, err := js.PublishMsg(ctx, p.msg)
		if err != nil {
			return 0, err
		}
		seq = ack.Sequence
	}
	return seq, nil
}

func (w *linkWorker) save(ctx context.Context, cp linkCheckpoint) error {
	b, _ := json.Marshal(cp)
	if _, err := w.m.kv.Put(ctx, checkpointKey(w.spec.Name), b); err != nil {
		return fmt.Errorf("store checkpoint: %w", err)
	}
	w.mu.Lock()
	w.cp = cp
	w.mu.Unlock()
	return nil
}

// recover loads the checkpoint and moves it past events the link appended
// after it was written (a crash between the two).
func (w *linkWorker) recover(ctx context.Context, js jetstream.JetStream) error {
	var cp linkCheckpoint
	e, err := w.m.kv.Get(ctx, checkpointKey(w.spec.Name))
	switch {
	case err == nil:
		if err := json.Unmarshal(e.Value(), &cp); err != nil {
			return err
		}
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return err
	}
	head, err := w.m.n.events.head(ctx)
	if err != nil {
		return err
	}
	if head > cp.LocalSeq {
		cons, err := js.OrderedConsumer(ctx, w.m.n.cfg.StreamName, jetstream.OrderedConsumerConfig{
			MaxResetAttempts: fetchResets,
			DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:      cp.LocalSeq + 1,
			HeadersOnly:      true,
		})
		if err != nil {
			return err
		}
		for seq := cp.LocalSeq; seq < head; {
			msgs, err := fetch(cons, 1000)
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return fmt.Errorf("log ended at %d before its head %d", seq, head)
			}
			for _, msg := range msgs {
				md, err := msg.Metadata()
				if err != nil {
					return err
				}
				seq = md.Sequence.Stream
				h := msg.Headers()
				if h.Get(HeaderLink) != w.spec.Name {
					continue
				}
				es, _ := strconv.ParseUint(h.Get(HeaderLinkSeq), 10, 64)
				os, _ := strconv.ParseUint(h.Get(HeaderOriginSeq), 10, 64)
				if es > cp.ExportSeq {
					cp.ExportSeq, cp.OriginSeq = es, os
				}
				cp.LocalSeq = seq
			}
		}
	}
	dead, err := listKeys(ctx, w.m.kv, "deadletter."+w.spec.Name+".>")
	if err != nil {
		return fmt.Errorf("count dead letters: %w", err)
	}
	w.mu.Lock()
	w.cp, w.dead = cp, uint64(len(dead))
	w.mu.Unlock()
	return nil
}

func (w *linkWorker) status() LinkStatus {
	w.mu.Lock()
	now := time.Now()
	st := LinkStatus{
		Name: w.spec.Name, Peer: w.spec.Peer, Export: w.spec.Export, URL: w.spec.URL, State: w.state,
		ExportSeq: w.cp.ExportSeq, ExportHead: max(w.exportHead, w.cp.ExportSeq),
		OriginSeq: w.cp.OriginSeq, OwnerHeadSeq: max(w.ownerHead, w.cp.OriginSeq),
		LagSeconds: w.lagSeconds, Rate: w.rate.perSecond(now),
		Imported: w.imported, Filtered: w.filtered, DeadLetters: w.dead, LastError: w.lastError, FailedAt: w.failedAt,
	}
	w.mu.Unlock()
	st.LagEvents = st.ExportHead - st.ExportSeq
	st.Connected = w.m.leafConnected(peerAccount(w.spec.Peer))
	return st
}
