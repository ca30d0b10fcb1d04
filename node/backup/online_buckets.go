package backup

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// entry is one key of a bucket and its value.
type entry struct {
	key   string
	value []byte
}

// readBuckets reads the keys and values of the backup's buckets. Their
// snapshots are restored into a server of its own, on a temporary
// directory with no port open (as Restore does), and read there: a
// JetStream snapshot is the stream's files, which only a server reads. The
// keys come in the order the bucket's stream holds them, the order they
// were last written in.
func readBuckets(ctx context.Context, file string, c *contents, p *plan, tmp string, log hclog.Logger) (map[string][]entry, error) {
	dir, err := os.MkdirTemp(tmp, "restore-buckets-")
	if err != nil {
		return nil, kinded(ErrUnavailable, err, "read the backup's buckets: %v", err)
	}
	defer os.RemoveAll(dir)
	m := &Manifest{Node: c.manifest.Node, Accounts: []Account{{Name: globalAccount}}}
	srv, conns, err := startRestoreServer(ctx, m, dir, log.Named("buckets"))
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
		srv.Close()
	}()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &restorer{tr: tar.NewReader(f)}
	nc := conns[globalAccount]
	out := map[string][]entry{}
	for _, s := range p.bucketStreams {
		// The buckets are first in a backup (see Runner): the archive is
		// read up to the last of them.
		if err := r.skipUntil(streamDir(s.Account, s.Name)); err != nil {
			return nil, err
		}
		if err := restoreOne(ctx, r, c, &s, nc); err != nil {
			return nil, fmt.Errorf("read the backup's bucket %s: %w", s.Name, err)
		}
		if out[s.Name], err = bucketEntries(ctx, nc, strings.TrimPrefix(s.Name, kvStreamPrefix)); err != nil {
			return nil, fmt.Errorf("read the backup's bucket %s: %w", s.Name, err)
		}
	}
	return out, nil
}

// skipUntil reads past the chunks of every stream before the one in dir.
func (r *restorer) skipUntil(dir string) error {
	for {
		hdr := r.pending
		r.pending = nil
		if hdr == nil {
			var err error
			if hdr, err = r.tr.Next(); err != nil {
				return fmt.Errorf("read the backup: %w", err)
			}
		}
		if strings.HasPrefix(hdr.Name, dir+"/") {
			r.pending = hdr
			return nil
		}
	}
}

// bucketEntries lists the live keys of bucket with their values, in the
// order of the bucket's stream.
func bucketEntries(ctx context.Context, nc *nats.Conn, bucket string) ([]entry, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var entries []entry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("the watch of bucket %s ended early", bucket)
			}
			if e == nil {
				return entries, nil
			}
			entries = append(entries, entry{key: e.Key(), value: e.Value()})
		}
	}
}

// linkPeer is the peer of a stored link (its JSON), "" if unreadable.
func linkPeer(value []byte) string {
	var l struct {
		Peer string `json:"peer"`
	}
	_ = json.Unmarshal(value, &l)
	return l.Peer
}

// writeBucket writes entries into the node's bucket, in their order.
func writeBucket(ctx context.Context, js jetstream.JetStream, bucket string, entries []entry) (int, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0, unavailable(err, "open bucket %s", bucket)
	}
	n := 0
	for _, e := range entries {
		if e.key == markerKey {
			continue // a backup of a node while a restore ran into it
		}
		if _, err := kv.Put(ctx, e.key, e.value); err != nil {
			return n, unavailable(err, "write key %s of bucket %s", e.key, bucket)
		}
		n++
	}
	return n, nil
}
