package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// eventLog is the node's append-only log: one JetStream stream whose
// subjects are <prefix>.<aggregate>.<id>.<type>.
type eventLog struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	log    hclog.Logger

	// appends publishes appends asynchronously; JetStream's answers come to
	// onAck and onErr, which call the callback stored in waiting for the
	// message. No goroutine, channel or future per append: measured in
	// docs/performance.md.
	appends jetstream.JetStream
	waiting sync.Map // *nats.Msg → func(*jetstream.PubAck, error)

	// pending counts the appends not answered yet, so that Close answers
	// every accepted request before the connection goes.
	pending sync.WaitGroup
}

// streamConfig is the log's stream: file storage, no limits, no deletes,
// atomic batches and direct gets for reads.
func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               cfg.StreamName,
		Description:        "DataMesh event log: <prefix>.<aggregate>.<id>.<type>",
		Subjects:           []string{cfg.SubjectPrefix + ".>"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgSize:         int32(cfg.MaxEventBytes + 64*1024),
		Duplicates:         time.Duration(cfg.DedupWindow),
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
}

func openEventLog(ctx context.Context, cfg Config, nc *nats.Conn, js jetstream.JetStream, logger hclog.Logger) (*eventLog, error) {
	st, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("create event stream %s: %w", cfg.StreamName, err)
	}
	l := &eventLog{cfg: cfg, nc: nc, js: js, stream: st, log: logger.Named("log")}
	l.appends, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(DefaultAppendTimeout),
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncAckHandler(l.onAck), jetstream.WithPublishAsyncErrHandler(l.onErr))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return l, nil
}

// close waits for in-flight appends to be answered.
func (l *eventLog) close() { l.pending.Wait() }

// aggregateSubject is the wildcard over every event of one aggregate.
func (l *eventLog) aggregateSubject(aggregate, id string) string {
	return l.cfg.SubjectPrefix + "." + aggregate + "." + id + ".*"
}

// publish sends m to the stream and calls done with the ack or the error
// once JetStream answers. It does not block on the answer, so a single API
// subscription can keep many appends in flight. done runs on the goroutine
// that reads acks when the write succeeded, so it must not block; on a
// failure it runs on a goroutine of its own and may.
func (l *eventLog) publish(m *nats.Msg, done func(*jetstream.PubAck, error)) {
	l.pending.Add(1)
	l.waiting.Store(m, done)
	if _, err := l.appends.PublishMsgAsync(m, jetstream.WithStallWait(DefaultAppendTimeout)); err != nil {
		l.onErr(nil, m, err)
	}
}

// onAck answers an append that JetStream stored.
func (l *eventLog) onAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	if done, ok := l.waiting.LoadAndDelete(m); ok {
		defer l.pending.Done()
		done.(func(*jetstream.PubAck, error))(ack, nil)
	}
}

// onErr answers an append that JetStream refused or did not answer in time.
// The library may call it with its lock held, and the answer may need to
// read the log (is it a duplicate?), so it answers on a goroutine.
func (l *eventLog) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	if done, ok := l.waiting.LoadAndDelete(m); ok {
		go func() {
			defer l.pending.Done()
			done.(func(*jetstream.PubAck, error))(nil, err)
		}()
	}
}

// publishError maps a JetStream publish failure to an API error.
func publishError(err error, expected *uint64) *Error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			cur, perr := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(apiErr.Description, "wrong last sequence:")), 10, 64)
			if expected != nil && perr == nil {
				return errVersionConflict(*expected, cur)
			}
			return newError(CodeVersionConflict, 409, "%s", apiErr.Description)
		case 10054: // JSStreamMessageExceedsMaximumErr
			return errTooLarge("%s", apiErr.Description)
		case 10199: // JSAtomicPublishTooLargeBatchErrF
			return errTooLarge("%s", apiErr.Description)
		}
		return errUnavailable("event log refused the write: %s", apiErr.Description)
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) {
		return errUnavailable("event log did not acknowledge in time; the event may be stored: retry with the same ce-id")
	}
	return errUnavailable("event log: %v", err)
}

// setExpectedVersion makes JetStream refuse m unless the aggregate's last
// event has seq v (0: the aggregate has no events).
func (l *eventLog) setExpectedVersion(m *nats.Msg, aggregate, id string, v uint64) {
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(v, 10))
	m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, l.aggregateSubject(aggregate, id))
}

// head is the log's last seq.
func (l *eventLog) head(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}
