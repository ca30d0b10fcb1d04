package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/schemas"
)

// DefaultAppendTimeout bounds the wait for JetStream's answer to a write.
const DefaultAppendTimeout = 5 * time.Second

// maxPendingAcks is how many appends may wait for JetStream's answer.
const maxPendingAcks = 4096

// Config is what the log needs of the node's configuration.
type Config struct {
	// Node is the node's name: the default ce-source is urn:datamesh:<node>.
	Node          string
	Stream        string
	SubjectPrefix string
	MaxEventBytes int
	DedupWindow   time.Duration
	// MaxBytes bounds the stream's size (discard new: a write beyond it is
	// refused, nothing stored is dropped); 0 or -1: unlimited.
	MaxBytes int64
	// RequireContracts refuses event types without a contract.
	RequireContracts bool
	// ReadMaxBytes bounds one page of Read (0: no bound).
	ReadMaxBytes int
	// Dir is the stream's directory (embed.Server.StreamDir). Its metadata
	// is fsynced once at start in both modes: JetStream writes it without
	// an fsync when sync_always is off, and a stream whose meta.inf is lost
	// comes back empty after a power loss. "" skips it.
	Dir string
	// Fsync: the log answers a write once it has fsynced it in Dir,
	// sharing each fsync among the writes waiting for it (Durable).
	Fsync bool
	// OnSync, if set, is told the writes each fsync made durable and how
	// long it took (the node's metrics). It must not block.
	OnSync func(writes int, took time.Duration)
	// Replicas of the stream (0: 1). With more than one, Dir and Fsync
	// must be off: JetStream's quorum acknowledges a write, and fsyncs it
	// on each server itself when it runs with sync_always.
	Replicas int
}

// Contracts checks event data against the latest contract of its type.
type Contracts interface {
	// Check returns the contract's schema URI; found is false when the
	// type has no contract. err (a *schemas.ViolationError) says why the
	// data does not satisfy it.
	Check(aggregate, typ string, data []byte) (schemaURI string, found bool, err error)
}

// Log is the node's append-only log.
type Log struct {
	cfg       Config
	nc        *nats.Conn
	contracts Contracts
	log       hclog.Logger

	js     jetstream.JetStream
	stream jetstream.Stream
	// durable answers writes once they are on disk; nil in os mode.
	durable *Durable
	// appends publishes appends asynchronously; JetStream's answers come to
	// onAck and onErr, which call the callback stored in waiting for the
	// message. No goroutine, channel or future per append: measured in
	// docs/performance.md.
	appends jetstream.JetStream
	waiting sync.Map // *nats.Msg → func(*jetstream.PubAck, error)

	// pending counts the appends not answered yet, so that Close answers
	// every accepted request before the connection goes.
	pending   sync.WaitGroup
	closeOnce sync.Once
}

// New returns a log on the connection nc (with the node's rights); Start
// opens its stream.
func New(cfg Config, nc *nats.Conn, contracts Contracts, logger hclog.Logger) *Log {
	return &Log{cfg: cfg, nc: nc, contracts: contracts, log: logger.Named("log")}
}

// streamConfig is the log's stream: file storage, no limits but MaxBytes
// (discard new: never drop a stored event), no deletes, atomic batches
// and direct gets for reads.
func (l *Log) streamConfig() jetstream.StreamConfig {
	maxBytes := l.cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1 // unlimited
	}
	return jetstream.StreamConfig{
		Name:               l.cfg.Stream,
		Description:        "DataMesh event log: <prefix>.<aggregate>.<id>.<type>",
		Subjects:           []string{l.cfg.SubjectPrefix + ".>"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxBytes:           maxBytes,
		MaxMsgSize:         MaxMsgSize(l.cfg.MaxEventBytes),
		Duplicates:         l.cfg.DedupWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Replicas:           max(1, l.cfg.Replicas),
	}
}

// MaxMsgSize is the largest stored message for events of up to maxEventBytes
// of data: room for the headers.
func MaxMsgSize(maxEventBytes int) int32 { return int32(maxEventBytes + 64*1024) }

// Start creates or updates the stream and the async publisher.
func (l *Log) Start(ctx context.Context) error {
	var err error
	l.js, err = jetstream.New(l.nc, jetstream.WithPublishAsyncTimeout(DefaultAppendTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if l.stream, err = EnsureStream(ctx, l.js, l.streamConfig()); err != nil {
		return fmt.Errorf("create event stream %s: %w", l.cfg.Stream, err)
	}
	if l.cfg.Dir != "" {
		// The stream's metadata and directories, before the first append.
		if err := SyncTree(l.cfg.Dir); err != nil {
			return fmt.Errorf("sync event stream %s: %w", l.cfg.Stream, err)
		}
		if l.cfg.Fsync {
			l.durable = NewDurable(NewStreamFiles(l.cfg.Dir), l.cfg.OnSync, l.log)
		}
	}
	l.appends, err = jetstream.New(l.nc, jetstream.WithPublishAsyncTimeout(DefaultAppendTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
		jetstream.WithPublishAsyncAckHandler(l.onAck), jetstream.WithPublishAsyncErrHandler(l.onErr))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// Close waits for in-flight appends to be answered. The connection is the
// caller's.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.pending.Wait()
		err = l.durable.Close()
	})
	return err
}

// Sync returns once every write to the log acknowledged before the call is
// durable (at once in os mode). Writers that publish to the stream on
// their own connection (link imports) call it before they count a write as
// done.
func (l *Log) Sync(ctx context.Context) error { return l.durable.Wait(ctx) }

// Prefix is the first token of the log's subjects.
func (l *Log) Prefix() string { return l.cfg.SubjectPrefix }

// Stream is the name of the log's stream.
func (l *Log) Stream() string { return l.cfg.Stream }

// Prepare checks one event against the log's rules and its contract and
// returns the message to store.
func (l *Log) Prepare(aggregate, id string, d *Draft) (*nats.Msg, error) {
	if !schemas.ValidToken(aggregate) || !schemas.ValidToken(id) {
		return nil, invalid("aggregate %q and id %q must each be one NATS token", aggregate, id)
	}
	if err := d.check(l.cfg.MaxEventBytes); err != nil {
		return nil, err
	}
	uri, found, err := l.contracts.Check(aggregate, d.Type, d.Data)
	if err != nil {
		return nil, err
	}
	if !found && l.cfg.RequireContracts {
		return nil, kinded(ErrNoContract, "event type %s.%s has no contract and this node requires one", aggregate, d.Type)
	}
	return d.message(l.cfg.SubjectPrefix, l.cfg.Node, aggregate, id, uri), nil
}

// Append is one checked single-event append waiting to be written.
type Append struct {
	Msg           *nats.Msg
	Aggregate, ID string
	Expected      *uint64
	// Done gets the event's seq, whether it was stored before (a
	// duplicate ce-id), or the error. It runs on the goroutine that reads
	// acks or, in fsync mode, on the one that fsyncs, so it must not block.
	Done func(seq uint64, duplicate bool, err error)
}

// Appender writes single appends.
type Appender interface {
	Append(a *Append)
}

var _ Appender = (*Log)(nil)

// Append publishes a without waiting: every append is in flight at once,
// and JetStream keeps their order. a.Done answers, in fsync mode once the
// event is on disk: appends that arrive together share one fsync (group
// commit, see Durable), with no atomic batch between them, so each keeps
// its own expected version and ce-id.
func (l *Log) Append(a *Append) {
	if a.Expected != nil {
		l.setExpectedVersion(a.Msg, a.Aggregate, a.ID, *a.Expected)
	}
	l.publishAsync(a.Msg, func(ack *jetstream.PubAck, err error) { l.finish(a, ack, err) })
}

// finish answers a single append from JetStream's ack or refusal, once
// what it stored (or found stored) is durable.
func (l *Log) finish(a *Append, ack *jetstream.PubAck, err error) {
	var seq uint64
	dup := false
	if err == nil {
		seq, dup = ack.Sequence, ack.Duplicate
	} else if seq, _, err = l.resolveRefused(a.Aggregate, a.ID, []*nats.Msg{a.Msg}, a.Expected, err); err == nil {
		dup = true
	}
	if err != nil {
		a.Done(seq, false, err)
		return
	}
	l.durable.After(func(err error) {
		if err != nil {
			seq, dup = 0, false
		}
		a.Done(seq, dup, err)
	})
}

// AppendBatch stores msgs, all of aggregate/id, as one atomic batch: all
// events or none. done gets the first and last seq, or the error.
func (l *Log) AppendBatch(aggregate, id string, msgs []*nats.Msg, expected *uint64, done func(first, last uint64, duplicate bool, err error)) {
	if expected != nil {
		l.setExpectedVersion(msgs[0], aggregate, id, *expected)
	}
	commit, err := stage(l.nc, msgs)
	if err != nil {
		done(0, 0, false, Unavailable("stage batch: %v", err))
		return
	}
	count := uint64(len(msgs))
	l.publishAsync(commit, func(ack *jetstream.PubAck, err error) {
		var first, last uint64
		dup := false
		if err == nil {
			first, last = ack.Sequence-count+1, ack.Sequence
		} else if first, last, err = l.resolveRefused(aggregate, id, msgs, expected, err); err == nil {
			dup = true
		}
		if err != nil {
			done(first, last, false, err)
			return
		}
		l.durable.After(func(err error) {
			if err != nil {
				first, last, dup = 0, 0, false
			}
			done(first, last, dup, err)
		})
	})
}

// publishAsync sends m to the stream and calls done with the ack or the
// error once JetStream answers. It does not block on the answer, so a
// single API subscription can keep many appends in flight. done runs on
// the goroutine that reads acks when the write succeeded, so it must not
// block; on a failure it runs on a goroutine of its own and may.
func (l *Log) publishAsync(m *nats.Msg, done func(*jetstream.PubAck, error)) {
	l.pending.Add(1)
	l.waiting.Store(m, done)
	if _, err := l.appends.PublishMsgAsync(m, jetstream.WithStallWait(DefaultAppendTimeout)); err != nil {
		l.onErr(nil, m, err)
	}
}

// onAck answers an append that JetStream stored.
func (l *Log) onAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	if done, ok := l.waiting.LoadAndDelete(m); ok {
		defer l.pending.Done()
		done.(func(*jetstream.PubAck, error))(ack, nil)
	}
}

// onErr answers an append that JetStream refused or did not answer in time.
// The library may call it with its lock held, and the answer may need to
// read the log (is it a duplicate?), so it answers on a goroutine.
func (l *Log) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	if done, ok := l.waiting.LoadAndDelete(m); ok {
		go func() {
			defer l.pending.Done()
			done.(func(*jetstream.PubAck, error))(nil, err)
		}()
	}
}

// AppendOnce appends an imported event unless the log holds its ce-id
// already (a replay cut short after its append).
func (l *Log) AppendOnce(ctx context.Context, m *nats.Msg) error {
	agg, id, _, ok := ParseSubject(l.cfg.SubjectPrefix, m.Subject)
	if ceID := m.Header.Get(nats.MsgIdHdr); ok && ceID != "" {
		_, _, found, err := l.findStored(ctx, agg, id, []string{ceID}, 0)
		if err != nil {
			return Unavailable("check for duplicates: %v", err)
		}
		if found {
			return nil
		}
	}
	if _, err := l.js.PublishMsg(ctx, m); err != nil {
		return publishError(err, nil)
	}
	return l.Sync(ctx)
}

// setExpectedVersion makes JetStream refuse m unless the aggregate's last
// event has seq v (0: the aggregate has no events).
func (l *Log) setExpectedVersion(m *nats.Msg, aggregate, id string, v uint64) {
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(v, 10))
	m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, AggregateFilter(l.cfg.SubjectPrefix, aggregate, id))
}

// Head is the log's last seq.
func (l *Log) Head(ctx context.Context) (uint64, error) {
	st, err := l.State(ctx)
	if err != nil {
		return 0, err
	}
	return st.LastSeq, nil
}

// State is the stream's state now: messages, bytes, first and last seq.
func (l *Log) State(ctx context.Context) (jetstream.StreamState, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return info.State, nil
}
