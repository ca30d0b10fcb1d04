package meshlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

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
	task
	m    *Mesh
	spec *Link
	tr   Transformer
	log  hclog.Logger

	mu         sync.Mutex
	cp         Checkpoint
	state      string
	exportHead uint64
	ownerHead  uint64
	lagSeconds float64
	rate       eventlog.Rate
	imported   uint64
	filtered   uint64
	dead       uint64
	lastError  string
	// deadError is the export seq of the dead letter lastError tells of
	// (0: lastError tells of something else), for a replay to clear it.
	deadError uint64
	failedAt  uint64
	attempts  int // failed attempts in a row

	savedAt time.Time // of the checkpoint; only the worker's goroutine uses it

	replayMu sync.Mutex // one replay of dead letters at a time (see Mesh.Replay)
}

// newLinkWorker returns a worker for l, not running yet: l's Go
// transformer if the program registered one, else its compiled expressions.
func (m *Mesh) newLinkWorker(l *Link) (*linkWorker, error) {
	tr := m.cfg.Transforms[l.Name]
	if tr == nil {
		var err error
		if tr, err = Compile(l.Transform); err != nil {
			return nil, err
		}
	}
	return &linkWorker{m: m, spec: l, tr: tr, state: LinkConnecting,
		log: m.log.Named("link").With("link", l.Name, "peer", l.Peer)}, nil
}

// runLink starts w in place of any link of its name (on a clustered node
// that does not run the mesh, it only records w). m.mu must be held.
func (m *Mesh) runLink(w *linkWorker) {
	m.links[w.spec.Name] = w
	if !m.active {
		w.state = LinkStandby
		return
	}
	w.task.start(m.ctx, w.run)
	m.log.Info("link started", "link", w.spec.Name, "peer", w.spec.Peer, "export", w.spec.Export)
}

func (w *linkWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		var stop *linkStop
		if errors.As(err, &stop) {
			w.mu.Lock()
			w.state, w.lastError, w.deadError, w.failedAt = LinkFailed, stop.Error(), 0, stop.seq
			w.mu.Unlock()
			w.log.Error("link failed", "export_seq", stop.seq, "error", stop.err)
			return
		}
		w.mu.Lock()
		w.state, w.lastError, w.deadError = LinkConnecting, err.Error(), 0
		w.attempts++
		n := w.attempts
		w.mu.Unlock()
		w.log.Debug("link interrupted; retrying", "attempt", n, "retry_in", eventlog.RetryDelay(n), "error", err)
		if !backoff(ctx, n) {
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
func (e *linkStop) Unwrap() error { return e.err }

// runOnce imports until ctx ends or something fails.
func (w *linkWorker) runOnce(ctx context.Context) error {
	name := nats.Name("datamesh-link-" + w.spec.Name)
	local, err := w.m.deps.Dialer.Connect(name)
	if err != nil {
		return fmt.Errorf("connect to this node: %w", err)
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
	remote, err := w.m.deps.Dialer.ConnectPeer(w.spec.Peer, name)
	if err != nil {
		return fmt.Errorf("connect to peer %s: %w", w.spec.Peer, err)
	}
	defer remote.Close()
	defer context.AfterFunc(ctx, remote.Close)()
	st, err := w.openExport(ctx, remote)
	if err != nil {
		return err
	}
	cp, err := w.begin(ctx, st)
	if err != nil {
		return err
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
	w.state, w.lastError, w.deadError, w.attempts = LinkImporting, "", 0, 0
	w.mu.Unlock()
	return w.importLoop(ctx, ljs, remote, st, cons)
}

// openExport finds the export stream across the leafnode (JetStream
// domain = the peer's name).
func (w *linkWorker) openExport(ctx context.Context, remote *nats.Conn) (jetstream.Stream, error) {
	rjs, err := jetstream.NewWithDomain(remote, w.spec.Peer)
	if err != nil {
		return nil, err
	}
	st, err := rjs.Stream(ctx, exportStream(w.spec.Export))
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("peer %s has no export %q for this node (not granted, or not applied yet)", w.spec.Peer, w.spec.Export)
		}
		return nil, fmt.Errorf("reach export %s of %s: %w", w.spec.Export, w.spec.Peer, err)
	}
	return st, nil
}

// begin returns the checkpoint to read from; a link that never ran starts
// where its start policy says.
func (w *linkWorker) begin(ctx context.Context, st jetstream.Stream) (Checkpoint, error) {
	w.mu.Lock()
	cp := w.cp
	w.mu.Unlock()
	if cp.Started {
		return cp, nil
	}
	if w.spec.Start.Policy == StartNew {
		info, err := st.Info(ctx)
		if err != nil {
			return cp, fmt.Errorf("read export %s of %s: %w", w.spec.Export, w.spec.Peer, err)
		}
		cp.ExportSeq = info.State.LastSeq
	}
	cp.Started = true
	return cp, w.save(ctx, cp)
}

// importLoop reads the export and imports what arrives, batch by batch.
func (w *linkWorker) importLoop(ctx context.Context, ljs jetstream.JetStream, remote *nats.Conn, st jetstream.Stream, cons jetstream.Consumer) error {
	var headAt, idleSince time.Time
	for ctx.Err() == nil {
		if time.Since(headAt) >= time.Second {
			w.refreshHead(ctx, remote, st)
			headAt = time.Now()
		}
		msgs, err := fetch(cons, meshBatch)
		if err != nil {
			return fmt.Errorf("read export %s of %s: %w", w.spec.Export, w.spec.Peer, err)
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
		if err := w.importBatch(ctx, ljs, msgs); err != nil {
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
		owner, _ = eventlog.OriginSeqAt(ctx, nc, eventlog.DomainAPI(w.spec.Peer), exportStream(w.spec.Export), head)
	}
	w.mu.Lock()
	w.exportHead, w.ownerHead = head, owner
	if head <= w.cp.ExportSeq {
		w.lagSeconds = 0
	}
	w.mu.Unlock()
}

// importBatch transforms and appends one batch, then moves the checkpoint.
func (w *linkWorker) importBatch(ctx context.Context, js jetstream.JetStream, msgs []jetstream.Msg) error {
	w.mu.Lock()
	cp := w.cp
	w.mu.Unlock()
	var pending []imported
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
		originSeq, _ := strconv.ParseUint(msg.Headers().Get(eventlog.HeaderOriginSeq), 10, 64)
		var m *nats.Msg
		if originSeq >= w.spec.Start.Seq { // start: <seq> skips the owner's earlier events
			m, err = w.transform(msg.Subject(), msg.Headers(), msg.Data(), seq, originSeq)
		}
		switch {
		case err != nil:
			if w.spec.OnErrorPolicy() == OnErrorStop {
				// Append what came before, so the link stops exactly at seq.
				if _, e := w.appendImported(ctx, js, pending, &cp); e != nil {
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
			pending = append(pending, imported{out: m, src: msg, seq: seq, originSeq: originSeq})
		}
		cp.ExportSeq, cp.OriginSeq = seq, originSeq
	}
	refused, err := w.appendImported(ctx, js, pending, &cp)
	if err != nil {
		return err
	}
	dead += refused
	now := time.Now()
	// The checkpoint is written at most every checkpointEvery (each write
	// is an fsync): recover finds the batches appended since in the log.
	if now.Sub(w.savedAt) >= checkpointEvery || dead > 0 {
		if err := w.save(ctx, cp); err != nil {
			return err
		}
		w.savedAt = now
	}
	w.advance(cp, len(pending)-int(refused), filtered, dead, lastTime, now)
	return nil
}

// advance records a batch imported up to cp, for status.
func (w *linkWorker) advance(cp Checkpoint, imported int, filtered, dead uint64, lastTime, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cp = cp
	w.imported += uint64(imported)
	w.filtered += filtered
	w.dead += dead
	w.rate.Add(imported, now)
	if w.exportHead > cp.ExportSeq && !lastTime.IsZero() {
		w.lagSeconds = now.Sub(lastTime).Seconds()
	} else {
		w.lagSeconds = 0
	}
	w.exportHead = max(w.exportHead, cp.ExportSeq)
	w.ownerHead = max(w.ownerHead, cp.OriginSeq)
}

// transform turns one exported message (export seq seq) into the message
// to append, or nil if the filter drops it.
func (w *linkWorker) transform(subject string, h nats.Header, data []byte, seq, originSeq uint64) (*nats.Msg, error) {
	aggregate, id, typ, ok := eventlog.ParseSubject(exportSubjects(w.spec.Export), subject)
	if !ok {
		return nil, fmt.Errorf("unexpected export subject %q", subject)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	in := Event{Aggregate: aggregate, ID: id, Type: typ, EventID: h.Get(eventlog.HeaderOriginID),
		Source: h.Get(eventlog.HeaderSource), Time: h.Get(eventlog.HeaderTime), Node: h.Get(eventlog.HeaderOriginNode),
		Seq: originSeq, Data: v}
	out, keep, err := w.tr.Transform(in)
	if err != nil || !keep {
		return nil, err
	}
	body, err := json.Marshal(out.Data)
	if err != nil {
		return nil, fmt.Errorf("transformed data: %w", err)
	}
	d := &eventlog.Draft{
		Type:   out.Type,
		ID:     w.spec.Name + ":" + strconv.FormatUint(originSeq, 10),
		Source: in.Source,
		Time:   in.Time,
		Data:   body,
	}
	m, err := w.m.deps.Log.Prepare(out.Aggregate, out.ID, d)
	if err != nil {
		return nil, err
	}
	m.Header.Set(eventlog.HeaderOriginNode, in.Node)
	m.Header.Set(eventlog.HeaderOriginSeq, strconv.FormatUint(originSeq, 10))
	m.Header.Set(eventlog.HeaderOriginID, in.EventID)
	m.Header.Set(eventlog.HeaderLink, w.spec.Name)
	m.Header.Set(eventlog.HeaderLinkSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(eventlog.HeaderMeshPath, h.Get(eventlog.HeaderMeshPath))
	return m, nil
}

// imported is one event to append: the message for the log, and the
// exported message, export seq and owner seq it comes from.
type imported struct {
	out            *nats.Msg
	src            jetstream.Msg
	seq, originSeq uint64
}

// appendImported appends the events to the log, pipelined, waits until
// they are durable (fsync mode: group commit with the node's own appends),
// and records the last local seq in cp. No atomic batch: exactly once rests
// on the recovery scan of Dm-Link-Seq (and each event's Nats-Msg-Id), and
// an atomic batch costs a staging file per batch on a one-replica stream
// (docs/performance.md). JetStream stores pipelined messages in order, so
// what a failure leaves is a stored prefix, which a retry resumes after;
// unless the log refused an event and stored a later one (a storage limit
// hit by a large event but not by a small one): then each refused event is
// written again, alone, and if the log refuses it again it becomes a dead
// letter (refused counts them), so that resuming after the later ones
// loses nothing silently.
func (w *linkWorker) appendImported(ctx context.Context, js jetstream.JetStream, items []imported, cp *Checkpoint) (refused uint64, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	msgs := make([]*nats.Msg, len(items))
	for i, it := range items {
		msgs[i] = it.out
	}
	seqs, errs := eventlog.PublishPipelined(ctx, js, msgs)
	failed := -1
	for i, err := range errs {
		if err == nil {
			cp.LocalSeq = max(cp.LocalSeq, seqs[i])
		} else if failed < 0 {
			failed = i
		}
	}
	if failed >= 0 && !slices.ContainsFunc(errs[failed:], func(err error) bool { return err == nil }) {
		return 0, fmt.Errorf("append imported events: %w", errs[failed])
	}
	for i, e := range errs {
		if e == nil {
			continue
		}
		ack, err := js.PublishMsg(ctx, items[i].out)
		if err == nil {
			cp.LocalSeq = max(cp.LocalSeq, ack.Sequence)
			continue
		}
		if _, err := w.recordDeadLetter(ctx, items[i].src, items[i].seq, items[i].originSeq,
			fmt.Errorf("the log refused the imported event: %w", err)); err != nil {
			return refused, err
		}
		refused++
	}
	if err := w.m.deps.Log.Sync(ctx); err != nil {
		return refused, fmt.Errorf("append imported events: %w", err)
	}
	return refused, nil
}
