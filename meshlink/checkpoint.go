package meshlink

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// Checkpoint is where a link is, stored after each batch (at most every
// checkpointEvery, and at once after a dead letter). See linkWorker for
// why a checkpoint behind the log costs nothing.
type Checkpoint struct {
	ExportSeq uint64 `json:"export_seq"`
	OriginSeq uint64 `json:"origin_seq"`
	// LocalSeq is the seq, in this node's log, of the last event the link
	// appended: recovery looks for later ones (see recover).
	LocalSeq uint64 `json:"local_seq"`
	Started  bool   `json:"started"`
}

// checkpointEvery bounds how often a link writes its checkpoint.
const checkpointEvery = 250 * time.Millisecond

// recoverBatch is how many headers the recovery scan reads at once.
const recoverBatch = 1000

func (w *linkWorker) save(ctx context.Context, cp Checkpoint) error {
	if err := w.m.deps.Store.PutCheckpoint(ctx, w.spec.Name, cp); err != nil {
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
	cp, err := w.m.deps.Store.Checkpoint(ctx, w.spec.Name)
	if err != nil {
		return err
	}
	head, err := w.m.deps.Log.Head(ctx)
	if err != nil {
		return fmt.Errorf("read the log's head: %w", err)
	}
	if head > cp.LocalSeq {
		if cp, err = w.scanLog(ctx, js, cp, head); err != nil {
			return err
		}
	}
	dead, err := w.m.deps.Store.DeadLetterSeqs(ctx, w.spec.Name)
	if err != nil {
		return fmt.Errorf("count dead letters: %w", err)
	}
	w.mu.Lock()
	w.cp, w.dead = cp, uint64(len(dead))
	w.mu.Unlock()
	return nil
}

// scanLog reads the headers of the log from cp.LocalSeq to head and moves
// cp past every event this link appended there.
func (w *linkWorker) scanLog(ctx context.Context, js jetstream.JetStream, cp Checkpoint, head uint64) (Checkpoint, error) {
	cons, err := js.OrderedConsumer(ctx, w.m.deps.Log.Stream(), jetstream.OrderedConsumerConfig{
		MaxResetAttempts: fetchResets,
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      cp.LocalSeq + 1,
		HeadersOnly:      true,
	})
	if err != nil {
		return cp, fmt.Errorf("read the log: %w", err)
	}
	for seq := cp.LocalSeq; seq < head; {
		msgs, err := fetch(cons, recoverBatch)
		if err != nil {
			return cp, fmt.Errorf("read the log: %w", err)
		}
		if len(msgs) == 0 {
			return cp, fmt.Errorf("log ended at %d before its head %d", seq, head)
		}
		for _, msg := range msgs {
			md, err := msg.Metadata()
			if err != nil {
				return cp, err
			}
			seq = md.Sequence.Stream
			h := msg.Headers()
			if h.Get(eventlog.HeaderLink) != w.spec.Name {
				continue
			}
			es, _ := strconv.ParseUint(h.Get(eventlog.HeaderLinkSeq), 10, 64)
			os, _ := strconv.ParseUint(h.Get(eventlog.HeaderOriginSeq), 10, 64)
			if es > cp.ExportSeq {
				cp.ExportSeq, cp.OriginSeq = es, os
			}
			cp.LocalSeq = seq
		}
	}
	return cp, nil
}
