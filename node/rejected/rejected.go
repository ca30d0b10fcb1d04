// Package rejected keeps the rejected record: the events published to
// dm.append without a reply subject that the node refused, each with its
// error, in a bounded JetStream stream of their own (REJECTED, subjects
// dm.rejected.<aggregate>). Publishing there also announces each event on
// that core subject to whoever subscribes. The API writes the record and
// replays it; this package only holds it.
package rejected

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/kind"
	"github.com/datamesh/datamesh/node/protocol"
)

// The record's retention: the oldest events go first once either bound is
// reached (discard old).
const (
	DefaultMaxAge   = 7 * 24 * time.Hour
	DefaultMaxBytes = 256 << 20
	// closeTimeout bounds the wait for the record's writes in flight at Close.
	closeTimeout = 5 * time.Second
	// maxPending bounds the record's writes in flight.
	maxPending = 4096
)

// Headers a record carries beside the headers the event was published with
// (those named Nats-* are dropped: they would steer JetStream).
const (
	HeaderSubject   = "Dm-Rejected-Subject"   // the dm.append subject
	HeaderError     = "Dm-Rejected-Error"     // the error reply's JSON body
	HeaderID        = "Dm-Rejected-Id"        // the event's ce-id, or the one given
	HeaderType      = "Dm-Rejected-Type"      // the event's type, if known
	HeaderTime      = "Dm-Rejected-Time"      // when it was refused (RFC 3339)
	HeaderTruncated = "Dm-Rejected-Truncated" // "true": the body was dropped
	// HeaderPrefix starts every header of ours.
	HeaderPrefix = "Dm-Rejected-"
)

// Kinds of error the record returns.
var (
	ErrNotFound    = errors.New("not in the rejected record")
	ErrUnavailable = errors.New("rejected record unavailable")
)

// Config is the record's stream.
type Config struct {
	Stream   string        // default protocol.RejectedStream
	MaxAge   time.Duration // default DefaultMaxAge
	MaxBytes int64         // default DefaultMaxBytes
	// Dir is the stream's directory: its metadata is fsynced once it is
	// created (JetStream runs without sync_always; see
	// eventlog.StreamFiles). The record's writes are not fsynced one by
	// one: a publish is at-most-once already. "" skips it.
	Dir string
	// Replicas of the stream (0: 1).
	Replicas int
}

// Record is the rejected record.
type Record struct {
	cfg    Config
	nc     *nats.Conn
	log    hclog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	lost   atomic.Uint64

	closeOnce sync.Once
}

// New returns the record on the node's connection; Start opens its stream.
func New(cfg Config, nc *nats.Conn, logger hclog.Logger) *Record {
	if cfg.Stream == "" {
		cfg.Stream = protocol.RejectedStream
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	return &Record{cfg: cfg, nc: nc, log: logger.Named("rejected")}
}

// Start creates or updates the stream.
func (r *Record) Start(ctx context.Context) error {
	var err error
	r.js, err = jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			r.lostOne(m, err)
		}))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	r.stream, err = eventlog.EnsureStream(ctx, r.js, jetstream.StreamConfig{
		Name:        r.cfg.Stream,
		Description: "DataMesh rejected record: published events the node refused, with their error",
		Subjects:    []string{protocol.SubjectRejected + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      r.cfg.MaxAge,
		MaxBytes:    r.cfg.MaxBytes,
		AllowDirect: true,
		Replicas:    max(1, r.cfg.Replicas),
	})
	if err != nil {
		return fmt.Errorf("create rejected stream %s: %w", r.cfg.Stream, err)
	}
	if r.cfg.Dir != "" {
		if err := eventlog.SyncTree(r.cfg.Dir); err != nil {
			return fmt.Errorf("sync rejected stream %s: %w", r.cfg.Stream, err)
		}
	}
	return nil
}

// Close waits (a while) for the record's writes in flight.
func (r *Record) Close() error {
	r.closeOnce.Do(func() {
		if r.js == nil {
			return
		}
		select {
		case <-r.js.PublishAsyncComplete():
		case <-time.After(closeTimeout):
			r.log.Error("rejected events still unwritten at close", "pending", r.js.PublishAsyncPending())
		}
	})
	return nil
}

// Add writes m (subject dm.rejected.<aggregate>) without waiting: it may
// be called from the log's ack goroutine. A write that fails is logged
// with the event's subject and error, and counted.
func (r *Record) Add(m *nats.Msg) {
	if r.js == nil {
		r.lostOne(m, errors.New("the rejected record is not open"))
		return
	}
	if _, err := r.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Second)); err != nil {
		r.lostOne(m, err)
	}
}

func (r *Record) lostOne(m *nats.Msg, err error) {
	r.lost.Add(1)
	r.log.Error("a refused published event could not be recorded", "subject", m.Header.Get(HeaderSubject),
		"id", m.Header.Get(HeaderID), "refusal", m.Header.Get(HeaderError), "error", err)
}

// List returns up to limit records after seq after, of aggregate ("" all),
// in order; next continues the list (0: no more).
func (r *Record) List(ctx context.Context, aggregate string, after uint64, limit int) (msgs []*nats.Msg, next uint64, err error) {
	filter := protocol.SubjectRejected + ".>"
	if aggregate != "" {
		filter = protocol.SubjectRejected + "." + aggregate
	}
	req := eventlog.GetRequest{Seq: after + 1, NextBySubject: filter, Batch: limit, MaxBytes: 8 << 20}
	pending, err := eventlog.DirectGet(ctx, r.nc, eventlog.API, r.cfg.Stream, req, func(m *nats.Msg) error {
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, 0, kind.New(ErrUnavailable, "list: %v", err)
	}
	if pending > 0 && len(msgs) > 0 {
		next, _ = eventlog.MsgSeq(msgs[len(msgs)-1])
	}
	return msgs, next, nil
}

// Get returns the record at seq.
func (r *Record) Get(ctx context.Context, seq uint64) (*nats.Msg, error) {
	var got *nats.Msg
	_, err := eventlog.DirectGet(ctx, r.nc, eventlog.API, r.cfg.Stream, eventlog.GetRequest{Seq: seq}, func(m *nats.Msg) error {
		got = m
		return nil
	})
	if errors.Is(err, eventlog.ErrNoMessage) {
		return nil, kind.New(ErrNotFound, "no rejected event at seq %d (replayed, or past the retention)", seq)
	}
	if err != nil {
		return nil, kind.New(ErrUnavailable, "read rejected seq %d: %v", seq, err)
	}
	return got, nil
}

// Delete removes the record at seq (once replayed).
func (r *Record) Delete(ctx context.Context, seq uint64) error {
	if err := r.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return kind.New(ErrUnavailable, "remove rejected seq %d: %v", seq, err)
	}
	return nil
}

// Status counts the record.
func (r *Record) Status(ctx context.Context) (protocol.RejectedStatus, error) {
	info, err := r.stream.Info(ctx)
	if err != nil {
		return protocol.RejectedStatus{}, kind.New(ErrUnavailable, "rejected stream: %v", err)
	}
	return protocol.RejectedStatus{Stream: r.cfg.Stream, Count: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, MaxAgeSeconds: r.cfg.MaxAge.Seconds(),
		MaxBytes: r.cfg.MaxBytes, LostSinceStart: r.lost.Load()}, nil
}

// Aggregate is the aggregate token of a record's subject.
func Aggregate(subject string) string {
	return strings.TrimPrefix(subject, protocol.SubjectRejected+".")
}
