package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// MaxReadLimit is the most events one Read returns.
	MaxReadLimit = 10000
)

// staleRetries bounds how often Read reads again a page that a lagging
// replica answered (see Read); replicas catch up within milliseconds.
const staleRetries = 8

// Read returns up to limit events matching filter from seq from on, with
// one batched direct get. next is the seq to continue from, 0 at the end.
//
// On a replicated log any replica answers a direct get, one that lags the
// leader included, and the leader acknowledged a write before every
// replica has it: a read right after a write could miss it. A replica
// holds a prefix of the log, so a page that is not the last one is right;
// the last page is checked with the leader (is there a matching event
// after it?) and read again while it lags.
func (l *Log) Read(ctx context.Context, filter string, from uint64, limit int) (records []Record, next uint64, err error) {
	for attempt := 0; ; attempt++ {
		records, next, err = l.readOnce(ctx, filter, from, limit)
		if err != nil || next != 0 || max(1, l.cfg.Replicas) == 1 {
			return records, next, err
		}
		if len(records) >= limit {
			// A full page: the next read checks what comes after it.
			return records, records[len(records)-1].Seq + 1, nil
		}
		after := from
		if len(records) > 0 {
			after = records[len(records)-1].Seq + 1
		}
		_, err := LeaderGet(ctx, l.nc, API, l.cfg.Stream, GetRequest{Seq: after, NextBySubject: filter})
		switch {
		case errors.Is(err, ErrNoMessage):
			return records, 0, nil
		case err != nil:
			return nil, 0, fmt.Errorf("read: ask the stream's leader for the last events: %w", err)
		case attempt == staleRetries:
			return nil, 0, fmt.Errorf("read: the replica that answered lags the stream's leader; retry")
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(time.Duration(1<<attempt) * time.Millisecond):
		}
	}
}

func (l *Log) readOnce(ctx context.Context, filter string, from uint64, limit int) (records []Record, next uint64, err error) {
	records = []Record{}
	req := GetRequest{Seq: from, NextBySubject: filter, Batch: limit, MaxBytes: l.cfg.ReadMaxBytes}
	pending, err := DirectGet(ctx, l.nc, API, l.cfg.Stream, req, func(m *nats.Msg) error {
		seq, err := MsgSeq(m)
		if err != nil {
			return err
		}
		records = append(records, NewRecord(l.cfg.SubjectPrefix, m.Header.Get(nats.JSSubject), seq, m.Header, m.Data))
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if pending > 0 && len(records) > 0 {
		next = records[len(records)-1].Seq + 1
	}
	return records, next, nil
}

// findStored looks for events with exactly these ids, in a row, among the
// aggregate's events from seq from on. It is how a retry that JetStream
// refuses (a batch with a known id, or a retry whose expected version has
// moved on because the first try succeeded) is recognised as a duplicate.
func (l *Log) findStored(ctx context.Context, aggregate, id string, ids []string, from uint64) (first, last uint64, found bool, err error) {
	var run []uint64
	for {
		page, next, err := l.Read(ctx, AggregateFilter(l.cfg.SubjectPrefix, aggregate, id), from, MaxReadLimit)
		if err != nil {
			return 0, 0, false, err
		}
		for _, r := range page {
			ceID := r.EventID()
			if len(run) == 0 && ceID != ids[0] {
				continue
			}
			if ceID != ids[len(run)] {
				return 0, 0, false, nil
			}
			if run = append(run, r.Seq); len(run) == len(ids) {
				return run[0], r.Seq, true, nil
			}
		}
		if next == 0 {
			return 0, 0, false, nil
		}
		from = next
	}
}

// clientIDs returns the ce-ids the client gave, or nil if any event has none.
func clientIDs(msgs []*nats.Msg) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		if ids[i] = m.Header.Get(nats.MsgIdHdr); ids[i] == "" {
			return nil
		}
	}
	return ids
}

// resolveRefused turns a refused write into the seqs of the stored events
// when every event is already stored (err nil: a duplicate); otherwise it
// returns the refusal as one of the log's errors.
func (l *Log) resolveRefused(aggregate, id string, msgs []*nats.Msg, expected *uint64, cause error) (first, last uint64, err error) {
	err = publishError(cause, expected)
	isDup := isBatchDuplicate(cause)
	if isDup {
		err = kinded(ErrDuplicateBatch, "some event ids of this batch are already stored, but not as this same batch; a batch is stored whole or not at all")
	}
	_, conflict := err.(*VersionConflictError)
	ids := clientIDs(msgs)
	if ids == nil || (!isDup && !conflict) {
		return 0, 0, err
	}
	var from uint64
	if expected != nil && !isDup {
		from = *expected + 1
	}
	first, last, found, ferr := l.findStored(context.Background(), aggregate, id, ids, from)
	if ferr != nil {
		return 0, 0, Unavailable("check for duplicates: %v", ferr)
	}
	if !found {
		return 0, 0, err
	}
	return first, last, nil
}
