package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// Follower is told of each resource in the bucket, then of each change
// made to it by anyone: in a cluster, the other servers' applies,
// promotes and retires. The changes come from a watch of the bucket's
// stream, in order, with their values: never from a read that a lagging
// replica could answer (KV gets are direct gets, which any replica
// serves).
type Follower interface {
	FollowSpec(ctx context.Context, s *projection.Spec)
	FollowRetire(name string, version int)
	FollowAlias(ctx context.Context, name string, a projection.Alias)
}

// MeshFollower is told of each export and link in the bucket, then of
// each change (meshlink.Mesh on a cluster).
type MeshFollower interface {
	Follow(exports []*meshlink.Export, links []*meshlink.Link)
	ForgetExport(ctx context.Context, name string)
	ForgetLink(name string)
}

// Watch reads every resource of the bucket, then every change, until ctx
// ends: contracts go into the registry's validators, projection changes to
// f. It returns once the watch is set up; ready is closed once the
// current values have been delivered, done once the watch has stopped.
func (r *Registry) Watch(ctx context.Context, f Follower, mf MeshFollower, ready chan<- struct{}) (done <-chan struct{}, err error) {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: watch registry: %v", ErrUnavailable, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// Stop deletes the watch's consumer through the JetStream API, and
		// with no quorum left (the last server of a cluster closing) that
		// request waits nats.go's 5 s timeout: Close must not. It ends at
		// that timeout at the latest, or when the node's connection closes.
		defer func() { go func() { _ = w.Stop() }() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					if ready != nil {
						close(ready)
						ready = nil
					}
					continue
				}
				if err := r.follow(ctx, e, f, mf); err != nil {
					r.log.Error("follow a registry change", "key", e.Key(), "error", err)
				}
				r.followed.Store(e.Revision())
			}
		}
	}()
	return stopped, nil
}

// follow applies one entry of the bucket.
func (r *Registry) follow(ctx context.Context, e jetstream.KeyValueEntry, f Follower, mf MeshFollower) error {
	key, deleted := e.Key(), e.Operation() != jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, "export.") || strings.HasPrefix(key, "link."):
		if mf != nil {
			return followMesh(ctx, key, deleted, e.Value(), mf)
		}
	case strings.HasPrefix(key, "eventtype."):
		if deleted {
			return nil // contracts are never deleted
		}
		var c schemas.Contract
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return err
		}
		v, err := schemas.Compile(&c)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.contracts[c.Key()] = insertVersion(r.contracts[c.Key()], v)
		r.mu.Unlock()
	case strings.HasPrefix(key, "projection-active."):
		var a projection.Alias
		if deleted || json.Unmarshal(e.Value(), &a) != nil {
			return nil
		}
		f.FollowAlias(ctx, strings.TrimPrefix(key, "projection-active."), a)
	case strings.HasPrefix(key, "projection."):
		if deleted {
			name, version, ok := parseProjectionKey(key)
			if ok {
				f.FollowRetire(name, version)
			}
			return nil
		}
		var s projection.Spec
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return err
		}
		f.FollowSpec(ctx, &s)
	}
	return nil
}

// followMesh hands one export or link entry to mf.
func followMesh(ctx context.Context, key string, deleted bool, value []byte, mf MeshFollower) error {
	if name, ok := strings.CutPrefix(key, "export."); ok {
		if deleted {
			mf.ForgetExport(ctx, name)
			return nil
		}
		var x meshlink.Export
		if err := json.Unmarshal(value, &x); err != nil {
			return err
		}
		mf.Follow([]*meshlink.Export{&x}, nil)
		return nil
	}
	name := strings.TrimPrefix(key, "link.")
	if deleted {
		mf.ForgetLink(name)
		return nil
	}
	var l meshlink.Link
	if err := json.Unmarshal(value, &l); err != nil {
		return err
	}
	mf.Follow(nil, []*meshlink.Link{&l})
	return nil
}

// parseProjectionKey reads projection.<name>.v<version>.
func parseProjectionKey(key string) (string, int, bool) {
	rest := strings.TrimPrefix(key, "projection.")
	i := strings.LastIndex(rest, ".v")
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.Atoi(rest[i+2:])
	return rest[:i], v, err == nil
}

// barrierPoll is how often Barrier looks at what the watch has applied.
const barrierPoll = 5 * time.Millisecond

// Barrier waits until the watch has applied every change stored in the
// bucket when it is called: a change made through another server an
// instant before is then known here too. The bucket's last seq comes from
// its stream's leader. Admin operations on a clustered node start with it,
// so that they decide on what every server stored, not on a view that
// lags.
func (r *Registry) Barrier(ctx context.Context) error {
	st, err := r.js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return fmt.Errorf("%w: registry barrier: %v", ErrUnavailable, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("%w: registry barrier: %v", ErrUnavailable, err)
	}
	for r.followed.Load() < info.State.LastSeq {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: registry barrier: this server has not yet seen change %d (at %d)", ErrUnavailable, info.State.LastSeq, r.followed.Load())
		case <-time.After(barrierPoll):
		}
	}
	return nil
}
