package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/kind"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/schemas"
)

// Kinds of error the registry returns (errors.Is); the API maps them to
// wire codes.
var (
	// ErrConflict: a version exists with other content, or is older.
	ErrConflict = errors.New("conflict")
	// ErrIncompatible: a contract change would break producers; the error
	// also unwraps to a *schemas.IncompatibleError with the reasons.
	ErrIncompatible = errors.New("incompatible")
	// ErrInvalid: a resource does not compile.
	ErrInvalid = errors.New("invalid resource")
	// ErrUnavailable: the bucket did not answer.
	ErrUnavailable = errors.New("registry unavailable")
)

func kinded(k, cause error, format string, args ...any) error {
	return kind.Wrap(k, cause, format, args...)
}

// Registry is a node's resources and link state.
type Registry struct {
	js     jetstream.JetStream
	prefix string
	log    hclog.Logger
	// streamDir maps a bucket's stream to its directory (nil: none), where
	// the stream's metadata is fsynced at start and, with fsync, each
	// write before it returns.
	streamDir func(stream string) string
	fsync     bool
	// replicas of both buckets.
	replicas int

	kv    jetstream.KeyValue // Bucket
	links jetstream.KeyValue // LinksBucket

	mu        sync.RWMutex
	contracts map[string][]*schemas.Validator // Contract.Key() → versions, ascending

	// followed is the last revision of the bucket the watch applied (a
	// cluster; see Watch and Barrier).
	followed atomic.Uint64
}

// New returns a registry on js; subjectPrefix is the log's, for catalog
// entries. streamDir gives the directory of a bucket's stream: JetStream
// runs without sync_always, so the node fsyncs the buckets' metadata at
// start and, with fsync, each write before it returns. Start opens the
// buckets and loads the contracts.
func New(js jetstream.JetStream, subjectPrefix string, streamDir func(stream string) string, fsync bool, logger hclog.Logger) *Registry {
	return &Registry{js: js, prefix: subjectPrefix, streamDir: streamDir, fsync: fsync, log: logger.Named("registry"),
		contracts: map[string][]*schemas.Validator{}, replicas: 1}
}

// WithReplicas makes the buckets replicated (a cluster); call before Start.
func (r *Registry) WithReplicas(n int) *Registry {
	r.replicas = max(1, n)
	return r
}

// Start opens (or creates) both buckets and loads the stored contracts.
func (r *Registry) Start(ctx context.Context) error {
	var err error
	r.kv, err = eventlog.EnsureKeyValue(ctx, r.js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "DataMesh resources: contracts, projections, links",
		Storage:     jetstream.FileStorage,
		Replicas:    r.replicas,
	})
	if err != nil {
		return fmt.Errorf("open registry: %w", err)
	}
	r.links, err = eventlog.EnsureKeyValue(ctx, r.js, jetstream.KeyValueConfig{
		Bucket:      LinksBucket,
		Description: "DataMesh link checkpoints and dead letters",
		Storage:     jetstream.FileStorage,
		Replicas:    r.replicas,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", LinksBucket, err)
	}
	if r.streamDir != nil {
		for _, bucket := range []string{Bucket, LinksBucket} {
			if err := eventlog.SyncTree(r.streamDir("KV_" + bucket)); err != nil {
				return fmt.Errorf("sync %s: %w", bucket, err)
			}
		}
		if r.fsync {
			r.kv, r.links = r.synced(r.kv, Bucket), r.synced(r.links, LinksBucket)
		}
	}
	return r.loadContracts(ctx)
}

// Close does nothing: the buckets live in the server. It is here so that
// the registry has the lifecycle of every part.
func (r *Registry) Close() error { return nil }

// listAttempt bounds one listing of a bucket's keys. A listing is an
// ordered consumer on the bucket's stream; on a cluster under load its
// creation is sometimes never answered (as a stream create can be, see
// eventlog.Ensure), so a listing that takes longer is tried again.
const listAttempt = 5 * time.Second

// listKeys returns every key of kv that matches filter, trying again a
// listing that does not end within listAttempt, until ctx ends.
func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, listAttempt)
		keys, err := listKeysOnce(actx, kv, filter)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return keys, err
		}
	}
}

// listKeysOnce reads the lister to its end (a lister left early keeps a
// goroutine blocked) and fails if ctx ended first: the lister then stops
// early, without an error.
func listKeysOnce(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// loadAll decodes the value of every key of kv that matches filter.
func loadAll[T any](ctx context.Context, kv jetstream.KeyValue, filter string) ([]*T, error) {
	keys, err := listKeys(ctx, kv, filter)
	if err != nil {
		return nil, err // the caller says what it listed
	}
	out := make([]*T, 0, len(keys))
	for _, key := range keys {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", key, err)
		}
		v := new(T)
		if err := json.Unmarshal(e.Value(), v); err != nil {
			return nil, fmt.Errorf("load %s: %w", key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// put stores v as JSON at key.
func put(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, key, b)
	return err
}

// get decodes the value at key into v; found is false if there is none.
func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) (found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(e.Value(), v)
}
