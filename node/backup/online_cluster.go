package backup

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	apiStreamDelete = "$JS.API.STREAM.DELETE."
	// currentPoll is how often a restore looks whether every replica of a
	// restored stream has caught up.
	currentPoll = 20 * time.Millisecond
)

// restore writes a checked backup into the node: the marker, the checks
// that the node is empty, the export streams and the log, then the
// buckets' keys, links' first. A failure after the first stream is written
// leaves the marker: the node holds part of the backup, and no second
// restore may merge into it.
func (i *Import) restore(c *contents, p *plan) (*Imported, error) {
	ctx := i.ctx
	js, err := jetstream.New(i.nc)
	if err != nil {
		return nil, err
	}
	registry := strings.TrimPrefix(registryStream(i.r.cfg), kvStreamPrefix)
	if err := i.takeMarker(ctx, js, registry); err != nil {
		return nil, err
	}
	logConfig, replicas, err := i.checkEmpty(ctx, js, p)
	if err != nil {
		i.dropMarker(js, registry)
		return nil, err
	}
	res := &Imported{Manifest: *p.manifest, Replicas: replicas}
	if res.Streams, err = i.restoreStreams(ctx, c, p, logConfig, replicas); err != nil {
		return nil, cutShort(err)
	}
	for _, s := range p.bucketStreams {
		bucket := strings.TrimPrefix(s.Name, kvStreamPrefix)
		n, err := writeBucket(ctx, js, bucket, p.buckets[s.Name])
		if err != nil {
			return nil, cutShort(err)
		}
		res.Buckets = append(res.Buckets, BucketKeys{Bucket: bucket, Keys: n})
		i.r.log.Info("bucket restored", "bucket", bucket, "keys", n)
	}
	if err := i.dropMarker(js, registry); err != nil {
		return nil, cutShort(err)
	}
	return res, nil
}

func cutShort(err error) error {
	return fmt.Errorf("restore cut short, the node holds part of the backup: stop every server, empty their data directories, start them and restore again: %w", err)
}

// takeMarker creates the marker key, which only one restore can.
func (i *Import) takeMarker(ctx context.Context, js jetstream.JetStream, bucket string) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return unavailable(err, "open bucket %s", bucket)
	}
	v, _ := json.Marshal(map[string]any{"sha256": i.want.SHA256, "started": time.Now().UTC()})
	_, err = kv.Create(ctx, markerKey, v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return kinded(ErrNotEmpty, nil, "a restore into node %s runs through another server, or one was cut short (key %q of bucket %s): restore into a new cluster started on empty data directories",
			i.r.cfg.Node, markerKey, bucket)
	}
	if err != nil {
		return unavailable(err, "mark the restore in bucket %s", bucket)
	}
	return nil
}

func (i *Import) dropMarker(js jetstream.JetStream, bucket string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(i.ctx), apiTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err == nil {
		err = kv.Delete(ctx, markerKey)
	}
	if err != nil {
		return unavailable(err, "remove key %q of bucket %s", markerKey, bucket)
	}
	return nil
}

// checkEmpty refuses a node that holds events, keys (other than the
// marker) or any of the backup's export streams. It returns the config of
// the node's log, which the restored log keeps, and its replica count.
func (i *Import) checkEmpty(ctx context.Context, js jetstream.JetStream, p *plan) (json.RawMessage, int, error) {
	node := i.r.cfg.Node
	info, err := getStreamInfo(ctx, i.nc, p.log.Name)
	if err != nil {
		return nil, 0, unavailable(err, "the log")
	}
	if info.State.Messages > 0 || info.State.LastSeq > 0 {
		return nil, 0, kinded(ErrNotEmpty, nil, "the log of node %s holds %d events (last seq %d): restore into a new cluster started on empty data directories",
			node, info.State.Messages, info.State.LastSeq)
	}
	var mine, theirs struct {
		Subjects []string `json:"subjects"`
		Replicas int      `json:"num_replicas"`
	}
	if err := json.Unmarshal(info.Config, &mine); err != nil {
		return nil, 0, fmt.Errorf("the log's config: %w", err)
	}
	if err := json.Unmarshal(p.log.Config, &theirs); err != nil {
		return nil, 0, corrupt("the backup's log config: %v", err)
	}
	if !slices.Equal(mine.Subjects, theirs.Subjects) {
		return nil, 0, kinded(ErrInvalid, nil, "the backup's log holds subjects %v and this node's log %v: start the cluster with the standalone node's subject_prefix",
			theirs.Subjects, mine.Subjects)
	}
	for _, s := range p.bucketStreams {
		bucket := strings.TrimPrefix(s.Name, kvStreamPrefix)
		keys, err := bucketKeys(ctx, js, bucket)
		if err != nil {
			return nil, 0, unavailable(err, "list bucket %s", bucket)
		}
		if keys = slices.DeleteFunc(keys, func(k string) bool { return k == markerKey }); len(keys) > 0 {
			return nil, 0, kinded(ErrNotEmpty, nil, "bucket %s of node %s holds %d keys (%s, ...): restore into a new cluster started on empty data directories, before anything is applied",
				bucket, node, len(keys), keys[0])
		}
	}
	for _, s := range p.exports {
		nc, err := i.conn(s.Account)
		if err != nil {
			return nil, 0, err
		}
		_, err = getStreamInfo(ctx, nc, s.Name)
		var e *apiError
		switch {
		case errors.As(err, &e) && e.ErrCode == errStreamNotFound:
		case err == nil:
			return nil, 0, kinded(ErrNotEmpty, nil, "export stream %s of account %s exists on node %s: restore into a new cluster started on empty data directories", s.Name, s.Account, node)
		default:
			return nil, 0, unavailable(err, "export stream %s of account %s", s.Name, s.Account)
		}
	}
	return info.Config, max(1, mine.Replicas), nil
}

func bucketKeys(ctx context.Context, js jetstream.JetStream, bucket string) ([]string, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	l, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// restoreStreams restores the export streams, with the node's replica
// count, then the log, in place of the empty one and with its config. The
// buckets' chunks are passed over: readBuckets has read them.
func (i *Import) restoreStreams(ctx context.Context, c *contents, p *plan, logConfig json.RawMessage, replicas int) ([]Stream, error) {
	f, err := os.Open(i.spool)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &restorer{tr: tar.NewReader(f)}
	var restored []Stream
	for _, s := range p.manifest.Streams {
		nc, err := i.conn(s.Account)
		if err != nil {
			return nil, err
		}
		var config json.RawMessage
		switch {
		case slices.ContainsFunc(p.bucketStreams, func(b Stream) bool { return b.Name == s.Name && b.Account == s.Account }):
			if err := r.chunks(streamDir(s.Account, s.Name), func([]byte) error { return nil }); err != nil {
				return nil, err
			}
			continue
		case s.Account == globalAccount && s.Name == p.log.Name:
			config = logConfig
			if err := deleteStream(ctx, nc, s.Name); err != nil {
				return nil, err
			}
		default:
			if config, err = withReplicas(c.records[streamDir(s.Account, s.Name)].Config, replicas); err != nil {
				return nil, corrupt("%s: config: %v", streamDir(s.Account, s.Name), err)
			}
		}
		if err := restoreAs(ctx, r, c, &s, nc, config); err != nil {
			return nil, err
		}
		if err := waitCurrent(ctx, nc, s.Name, replicas, s.State.LastSeq); err != nil {
			return nil, err
		}
		restored = append(restored, s)
		i.r.log.Info("stream restored", "account", s.Account, "stream", s.Name, "messages", s.State.Messages, "last_seq", s.State.LastSeq, "replicas", replicas)
	}
	return restored, nil
}

// withReplicas returns config with its replica count set.
func withReplicas(config json.RawMessage, replicas int) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(config, &m); err != nil {
		return nil, err
	}
	m["num_replicas"] = replicas
	return json.Marshal(m)
}

func deleteStream(ctx context.Context, nc *nats.Conn, name string) error {
	var resp struct {
		Success bool `json:"success"`
	}
	if err := request(ctx, nc, apiStreamDelete+name, nil, &resp); err != nil {
		return unavailable(err, "delete the empty stream %s", name)
	}
	return nil
}

// waitCurrent waits until every replica of the stream has caught up with
// its leader at lastSeq: JetStream restores a stream on one server, and
// the others catch up after it has answered.
func waitCurrent(ctx context.Context, nc *nats.Conn, stream string, replicas int, lastSeq uint64) error {
	var last string
	for {
		var info struct {
			State   State `json:"state"`
			Cluster *struct {
				Leader   string `json:"leader"`
				Replicas []struct {
					Name    string `json:"name"`
					Current bool   `json:"current"`
					Offline bool   `json:"offline"`
					Lag     uint64 `json:"lag"`
				} `json:"replicas"`
			} `json:"cluster"`
		}
		err := request(ctx, nc, apiStreamInfo+stream, nil, &info)
		switch {
		case err != nil:
			last = err.Error()
		case info.State.LastSeq != lastSeq:
			last = fmt.Sprintf("its leader is at seq %d", info.State.LastSeq)
		case replicas <= 1:
			return nil
		case info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) < replicas-1:
			last = "not every replica is known yet"
		default:
			last = ""
			for _, p := range info.Cluster.Replicas {
				if !p.Current || p.Offline || p.Lag > 0 {
					last = fmt.Sprintf("replica %s lags %d", p.Name, p.Lag)
				}
			}
			if last == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return kinded(ErrUnavailable, ctx.Err(), "stream %s restored but not on every server (%s)", stream, last)
		case <-time.After(currentPoll):
		}
	}
}
