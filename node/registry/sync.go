package registry

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// syncedKV fsyncs its bucket's files after each write (fsync mode).
// Writes to the registry are rare (resources, link checkpoints at most
// every 250 ms per link, dead letters), so each syncs every file of the
// bucket's stream: a bucket's old revisions are deleted and its blocks
// compacted, so the last block is not the only one that changes.
type syncedKV struct {
	jetstream.KeyValue
	dir string
}

func (r *Registry) synced(kv jetstream.KeyValue, bucket string) jetstream.KeyValue {
	return syncedKV{KeyValue: kv, dir: r.streamDir("KV_" + bucket)}
}

func (kv syncedKV) sync(err error) error {
	if err != nil {
		return err
	}
	if err := eventlog.SyncFiles(kv.dir); err != nil {
		return fmt.Errorf("%w: fsync: %v", ErrUnavailable, err)
	}
	return nil
}

func (kv syncedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := kv.KeyValue.Put(ctx, key, value)
	return rev, kv.sync(err)
}

func (kv syncedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	rev, err := kv.KeyValue.PutString(ctx, key, value)
	return rev, kv.sync(err)
}

func (kv syncedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := kv.KeyValue.Create(ctx, key, value, opts...)
	return rev, kv.sync(err)
}

func (kv syncedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, revision)
	return rev, kv.sync(err)
}

func (kv syncedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return kv.sync(kv.KeyValue.Delete(ctx, key, opts...))
}

func (kv syncedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return kv.sync(kv.KeyValue.Purge(ctx, key, opts...))
}
