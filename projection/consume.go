package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readWholeLogShare is how much of the rest of the log must belong to the
// source for a rebuild to read the whole log and drop other aggregates
// itself. nats-server finds the next message of a wildcard filter by
// matching the filter against every subject of the block, once per message
// (profiled: 46% of a rebuild's CPU with 100,000 aggregates), while an
// unfiltered read is a linear walk. A source with fewer events is read
// through the filter, which lets the server skip whole blocks.
const readWholeLogShare = 4 // one event in four

// readWholeLogMin is the shortest replay that is worth the probe.
const readWholeLogMin = 10_000

// readWholeLog reports whether the worker should replay the whole log
// rather than let the server filter it: true when at least one event in
// readWholeLogShare of the rest of the log belongs to the source. It asks
// with a short-lived consumer, whose pending count the server computes
// from its subject index.
func (w *Worker) readWholeLog(ctx context.Context) bool {
	from := w.applied.Load() + 1
	st, err := w.conn().js.Stream(ctx, w.cfg.Stream)
	if err != nil {
		return false
	}
	state := st.CachedInfo().State
	if state.LastSeq < from || state.LastSeq-from+1 < readWholeLogMin {
		return false
	}
	rest := state.LastSeq - max(from, state.FirstSeq) + 1
	probe, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects:    w.filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return false
	}
	matching := probe.CachedInfo().NumPending
	_ = st.DeleteConsumer(ctx, probe.CachedInfo().Name)
	whole := matching*readWholeLogShare >= rest
	w.log.Debug("replay", "from", from, "log_events", rest, "source_events", matching, "read_whole_log", whole)
	return whole
}

// consume reads the log from the checkpoint and applies it batch by batch
// until ctx ends, the worker fails (errStopped) or a read or a store write
// fails (the error, for the caller to retry). Reading the whole log, it
// returns nil once caught up, for the caller to follow the log's tail
// through the filter instead.
func (w *Worker) consume(ctx context.Context, wholeLog bool) error {
	from := w.applied.Load() + 1
	// The consumer reads whole aggregates and the worker drops other types:
	// JetStream matches one wildcard per aggregate much faster than one
	// filter per aggregate and type (profiled: the multi-filter intersection
	// took 42% of a rebuild's CPU with 10,000 subjects).
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:   w.filters,
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      from,
		MaxResetAttempts: consumerResets,
	}
	if wholeLog {
		cfg.FilterSubjects = nil
	}
	cons, err := w.conn().js.OrderedConsumer(ctx, w.cfg.Stream, cfg)
	if err != nil {
		return readError("create consumer", err)
	}
	msgs := make(chan jetstream.Msg, 2*w.cfg.BatchSize)
	onError, errs := consumeErrors()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(w.cfg.BatchSize), onError)
	if err != nil {
		return readError("consume", err)
	}
	defer cc.Stop()
	w.markLiveIfCaughtUp(ctx)

	batch := make([]jetstream.Msg, 0, w.cfg.BatchSize)
	for {
		if wholeLog && w.isLive() {
			return nil
		}
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return errStopped
		case err := <-errs:
			return readError("read the log", err)
		case m := <-msgs:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < w.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		// Once ctx is done the consume callback drops messages, so a batch
		// gathered since then may have gaps: never apply it.
		if ctx.Err() != nil {
			return errStopped
		}
		if err := w.applyBatch(batch); err != nil {
			return err
		}
	}
}

func (w *Worker) isLive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == StateLive
}

// markLiveIfCaughtUp turns a worker with nothing to replay live at once.
func (w *Worker) markLiveIfCaughtUp(ctx context.Context) {
	relevant, err := w.relevantBetween(ctx, w.applied.Load()+1, 0)
	if err != nil || relevant {
		return
	}
	w.settleIfCaughtUp(0)
	w.mu.Lock()
	w.recovered()
	live := w.goLive()
	w.notify()
	w.mu.Unlock()
	w.wentLive(live)
}

// settleIfCaughtUp lets the store compact its file (compact.go) when a
// building worker has caught up (pending is 0), before it turns live: a
// rebuild's file is then the size of what it holds once the version is
// live. It runs on the worker's goroutine; a failure only costs disk.
func (w *Worker) settleIfCaughtUp(pending uint64) {
	if pending != 0 || w.isLive() {
		return
	}
	if err := w.store.settle(); err != nil {
		w.log.Warn("compact the projection file", "error", err)
	}
}

// goLive turns a building worker live; it reports whether it did. w.mu must be held.
func (w *Worker) goLive() bool {
	if w.state != StateBuilding {
		return false
	}
	w.state = StateLive
	w.log.Info("projection live", "applied_seq", w.applied.Load())
	return true
}

// wentLive calls the OnLive hook, outside the worker's lock.
func (w *Worker) wentLive(live bool) {
	if live && w.cfg.OnLive != nil {
		w.cfg.OnLive()
	}
}

// applyBatch folds and commits one batch. A handler failure under
// on_error: stop fails the worker (errStopped); a store error is returned
// for the worker to retry from its checkpoint.
func (w *Worker) applyBatch(batch []jetstream.Msg) error {
	events, pending, lastSeq, err := w.decodeBatch(batch)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return w.skipBatch(pending, lastSeq)
	}
	res, err := w.store.Apply(events, w.folder, w.cfg.Spec)
	if err != nil {
		return storeError(err)
	}
	last := events[len(events)-1]
	n := len(events)
	if res.Failure != nil {
		n = 0
		for _, ev := range events {
			if ev.Seq >= res.Failure.Seq {
				break
			}
			last, n = ev, n+1
		}
	}
	if n > 0 {
		w.applied.Store(last.Seq)
	}
	if res.Failure == nil && lastSeq > last.Seq {
		// The batch ended with events of other types: move past them too.
		if err := w.store.SetCheckpoint(lastSeq); err != nil {
			return storeError(err)
		}
		w.applied.Store(lastSeq)
	}
	w.publishChanges(res.Changes)
	if res.Failure == nil {
		w.settleIfCaughtUp(pending)
	}
	w.recordBatch(pending, len(res.Dead), n, last)
	if res.Failure != nil {
		w.fail(res.Failure, nil)
		return errStopped
	}
	return nil
}

// decodeBatch returns the batch's events of the source not applied yet,
// with the pending count and stream seq of the batch's last message.
func (w *Worker) decodeBatch(batch []jetstream.Msg) (events []*Event, pending, lastSeq uint64, err error) {
	applied := w.applied.Load()
	events = make([]*Event, 0, len(batch))
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("message metadata: %w", err)
		}
		pending, lastSeq = md.NumPending, md.Sequence.Stream
		if md.Sequence.Stream <= applied {
			continue // redelivered after a consumer reset
		}
		ev := toEvent(w.cfg.SubjectPrefix, m.Subject(), md.Sequence.Stream, m.Headers(), m.Data())
		if w.types[ev.Type] && w.aggregates[ev.Aggregate] {
			events = append(events, ev)
		}
	}
	return events, pending, lastSeq, nil
}

// skipBatch moves the checkpoint past a batch with no event of the source.
func (w *Worker) skipBatch(pending, lastSeq uint64) error {
	if lastSeq > w.applied.Load() {
		if err := w.store.SetCheckpoint(lastSeq); err != nil {
			return storeError(err)
		}
		w.applied.Store(lastSeq)
	}
	w.settleIfCaughtUp(pending)
	w.mu.Lock()
	w.recovered()
	w.pending = pending
	live := pending == 0 && w.goLive()
	w.notify()
	w.mu.Unlock()
	w.wentLive(live)
	return nil
}

// recordBatch updates the figures after a commit of n events, last the
// last one applied, and wakes the waiting queries.
func (w *Worker) recordBatch(pending uint64, dead, n int, last *Event) {
	w.mu.Lock()
	w.recovered()
	w.pending = pending
	w.dead += dead
	if n > 0 {
		w.lastTime = parseTime(last.Time)
	}
	w.rate.Add(n, time.Now())
	live := pending == 0 && w.goLive()
	w.notify()
	w.mu.Unlock()
	w.wentLive(live)
}

func (w *Worker) publishChanges(changes []Change) {
	if !w.cfg.Spec.Changes || len(changes) == 0 {
		return
	}
	prefix := w.cfg.ChangesPrefix + "." + w.cfg.Spec.Name + "."
	for _, c := range changes {
		b, _ := json.Marshal(c)
		if err := w.conn().nc.Publish(prefix+SubjectToken(c.Key), b); err != nil {
			w.log.Warn("publish change", "key", c.Key, "error", err)
		}
	}
}
