package eventlog

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureAttempt bounds one attempt at creating a stream or a bucket.
const ensureAttempt = 2 * time.Second

// Ensure runs create until it succeeds, ctx ends or it fails with something
// other than a timeout, each attempt bounded by ensureAttempt. The servers
// of a cluster start together and create the same streams: JetStream then
// creates the stream but may never answer the concurrent identical
// requests (seen with nats-server 2.15.2). The next attempt finds the
// stream and updates it to the same config, which answers at once.
//
// A cluster that has just formed also answers for a moment that JetStream
// is unavailable (503) or that it knows too few servers to place the
// replicas (no suitable peers): those are retried too, until ctx ends.
func Ensure(ctx context.Context, create func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, ensureAttempt)
		err := create(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errNoPeers is JetStream's "no suitable peers for placement".
const errNoPeers = 10005

func transient(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code == 503 || api.ErrorCode == errNoPeers
	}
	// An invalid response: a cluster member whose account had no
	// JetStream yet rejected the stream's placement (the server starting).
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrInvalidJetStreamResponse)
}

// EnsureStream creates or updates a stream (see Ensure).
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := Ensure(ctx, func(ctx context.Context) (err error) {
		st, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	return st, err
}

// EnsureKeyValue creates or updates a bucket (see Ensure).
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := Ensure(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	return kv, err
}
