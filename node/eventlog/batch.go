package eventlog

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Headers of JetStream's atomic batch publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

const (
	// MaxBatch is JetStream's limit on the messages of one atomic batch.
	MaxBatch = 1000
	// MaxBatchBytes bounds what one batch stages in the server.
	MaxBatchBytes = 8 << 20
)

// stage marks msgs as one atomic batch and publishes all but the last,
// which it returns: publishing it commits the batch, and its ack answers
// for the whole batch. Staged messages need no reply: a batch with a
// missing message is refused whole at commit.
func stage(nc *nats.Conn, msgs []*nats.Msg) (commit *nats.Msg, err error) {
	id := nuid.Next()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	commit = msgs[len(msgs)-1]
	commit.Header.Set(hdrBatchCommit, "1")
	for _, m := range msgs[:len(msgs)-1] {
		if err := nc.PublishMsg(m); err != nil {
			return nil, err
		}
	}
	return commit, nil
}

// unstage removes the batch headers, to write the messages one by one.
func unstage(msgs []*nats.Msg) {
	for _, m := range msgs {
		m.Header.Del(hdrBatchID)
		m.Header.Del(hdrBatchSeq)
		m.Header.Del(hdrBatchCommit)
	}
}

// PublishAtomic stores msgs (at most MaxBatch) as one atomic batch on the
// stream js writes to, and returns the last seq. A batch refused because
// some ids are stored already (a retry after a crash) is written again one
// by one, the stored ones acknowledged as duplicates.
func PublishAtomic(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 1 {
		ack, err := js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	commit, err := stage(nc, msgs)
	if err != nil {
		return 0, err
	}
	ack, err := js.PublishMsg(ctx, commit)
	if err == nil {
		return ack.Sequence, nil
	}
	if !isBatchDuplicate(err) {
		return 0, err
	}
	unstage(msgs)
	var seq uint64
	for _, m := range msgs {
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			return 0, err
		}
		seq = ack.Sequence
	}
	return seq, nil
}

// PublishChain stores msgs on a stream whose only writer is the caller and
// whose last seq is last, pipelined: every message is in flight at once,
// and each expects the seq its predecessor takes, so JetStream stores a
// prefix of msgs and refuses everything after a message it refused. No
// gap, no duplicate, and no atomic batch (whose staging costs a file and an
// fsync per batch on a one-replica stream). It returns the new last seq
// (the last stored if it fails).
func PublishChain(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, last uint64) (uint64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var pubErr error
	for i, m := range msgs {
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last+uint64(i), 10))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, f)
	}
	stored := last
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if want := last + uint64(i) + 1; ack.Sequence != want {
				return stored, fmt.Errorf("stored at seq %d, expected %d: another writer on the stream", ack.Sequence, want)
			}
			stored = ack.Sequence
		case err := <-f.Err():
			return stored, err
		case <-ctx.Done():
			return stored, ctx.Err()
		}
	}
	return stored, pubErr
}

// PublishPipelined publishes msgs to the stream js writes to, every one in
// flight at once, and returns each one's seq or error. JetStream stores
// them in order; a message it refused does not stop the ones after it.
func PublishPipelined(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (seqs []uint64, errs []error) {
	seqs, errs = make([]uint64, len(msgs)), make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if futures[i], errs[i] = js.PublishMsgAsync(m); errs[i] != nil {
			for j := i + 1; j < len(msgs); j++ {
				errs[j] = errs[i]
			}
			break
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			errs[i] = err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return seqs, errs
}
