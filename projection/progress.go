package projection

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progressTimeout bounds the count of the source's events behind one status.
const progressTimeout = 2 * time.Second

// sourceCount is how many events of the projection's source the stream
// holds, and how many of them lie after the checkpoint, as counted for one
// head and checkpoint. Status reuses it while neither moved: a failed or
// stopped version, or a rebuild polled faster than it commits, costs no
// further request.
type sourceCount struct {
	mu               sync.Mutex
	head, applied    uint64
	total, remaining uint64
	ok               bool
}

// sourceProgress returns how many events of the source the stream holds
// and how many of them the worker has still to apply (the one it failed
// at included), from the server's subject index. ok is false when the
// count could not be made: the caller falls back to the log's head.
func (w *Worker) sourceProgress(head, applied uint64) (total, remaining uint64, ok bool) {
	if head == 0 || len(w.subjects) == 0 || w.conn().js == nil {
		return 0, 0, false
	}
	c := &w.count
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.head == head && c.applied == applied {
		return c.total, c.remaining, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), progressTimeout)
	defer cancel()
	st, err := w.conn().js.Stream(ctx, w.cfg.Stream)
	if err != nil {
		return 0, 0, false
	}
	total = c.total
	if !c.ok || c.head != head {
		if total, err = w.pendingFrom(ctx, st, 0); err != nil {
			return 0, 0, false
		}
	}
	if remaining, err = w.pendingFrom(ctx, st, applied+1); err != nil {
		return 0, 0, false
	}
	// Events appended between the two counts can make remaining the larger.
	total = max(total, remaining)
	c.head, c.applied, c.total, c.remaining, c.ok = head, applied, total, remaining, true
	return total, remaining, true
}

// pendingFrom counts the source's events from seq from on (0: the whole
// stream) with a short-lived consumer filtered to the source's subjects,
// whose pending count the server computes from its subject index.
func (w *Worker) pendingFrom(ctx context.Context, st jetstream.Stream, from uint64) (uint64, error) {
	cfg := jetstream.ConsumerConfig{
		FilterSubjects:    w.subjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	probe, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	n := probe.CachedInfo().NumPending
	_ = st.DeleteConsumer(ctx, probe.CachedInfo().Name)
	return n, nil
}

// progress fills s.Progress, and for a version that is not live its
// LagEvents and ETASeconds, from the events of its own source: a version
// that failed at the second of its three events is a third done however
// long the rest of the log is. s.State, s.Applied, s.Head and s.Rate must
// be set.
func (w *Worker) progress(s *Status) {
	s.Progress = 1
	if s.State == StateLive {
		return
	}
	if total, remaining, ok := w.sourceProgress(s.Head, s.Applied); ok {
		s.LagEvents = remaining
		if total > 0 {
			s.Progress = float64(total-remaining) / float64(total)
		}
	} else if s.Head > 0 {
		s.Progress = min(1, float64(s.Applied)/float64(s.Head))
	}
	if s.State == StateBuilding && s.Rate > 0 {
		s.ETASeconds = float64(s.LagEvents) / s.Rate
	}
}
