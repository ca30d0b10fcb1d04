package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/embed"
)

// A restore into a running node (Import) is how a standalone node moves
// into a cluster: the cluster is started on empty data directories, and a
// backup of the standalone node is sent to one of its servers, which
// restores it while every server runs. Why it is safe while the node's
// parts run (see Import.Finish for the steps):
//
//   - It refuses a node that holds anything: events, resources, link
//     state, export copies, or a projection (a program's own). So no part
//     reads what it replaces: no projection or export reads the log, no
//     link reads a checkpoint.
//   - The log and the export streams are restored through JetStream's
//     restore API with the node's replica count: the same events at the
//     same seqs, with the same headers and times. The log replaces the
//     empty one the node created (its config, the node's own, is kept);
//     the log's readers find the stream by name.
//   - The buckets are not replaced: their keys are written again, link
//     state first, resources last, in the order the backup's bucket holds
//     them. Every server follows the registry with a watch (node/cluster.go)
//     and so takes the resources as if they were applied through any
//     server: contracts, projections (rebuilt from the restored log),
//     exports and links (which resume from their restored checkpoints and
//     export streams). Replacing a bucket's stream instead would pull it
//     from under every server's watch.
//   - Each restored stream has every replica current before the next step,
//     so no server starts a projection or a link on a replica that lags.

// Upload is what a client announces before it sends a backup file.
type Upload struct {
	Size   int64
	SHA256 string
}

// markerKey is the registry key a restore holds while it runs: one
// restore at a time across the cluster's servers (a key is created once),
// and a restore cut short leaves it, so that no second one merges into
// what the first left.
const markerKey = "restore"

// Import is one restore into the running node: the client's file is
// written to it (spooled to a file in the node's data directory) and
// Finish restores it. Close releases it.
type Import struct {
	r       *Runner
	ctx     context.Context
	cancel  context.CancelFunc
	nc      *nats.Conn
	exports map[string]*nats.Conn // by account
	want    Upload
	spool   string
	f       *os.File
	hash    hash.Hash
	size    int64
	release sync.Once
}

// BeginRestore starts a restore of the backup the client announces: it
// takes the runner's turn (a backup and a restore never run at once on a
// server) and opens the spool file. It returns ErrBusy while a backup or
// another restore is under way on this server.
func (r *Runner) BeginRestore(ctx context.Context, u Upload) (*Import, error) {
	if u.Size <= 0 || len(u.SHA256) != 2*sha256.Size {
		return nil, kinded(ErrInvalid, nil, "announce the backup file's size and SHA-256 (64 hex digits)")
	}
	if err := r.takeTurn("a backup or a restore of node %s is under way on this server; one runs at a time"); err != nil {
		return nil, err
	}
	i := &Import{r: r, want: Upload{Size: u.Size, SHA256: strings.ToLower(u.SHA256)}, exports: map[string]*nats.Conn{}, hash: sha256.New()}
	i.ctx, i.cancel = context.WithCancel(r.ctx)
	if err := i.open(); err != nil {
		i.Close()
		return nil, err
	}
	return i, nil
}

func (i *Import) open() error {
	var err error
	if i.nc, err = i.r.dialer.Connect(nats.Name("datamesh-restore")); err != nil {
		return unavailable(err, "connect to the node")
	}
	dir := i.r.spoolDir()
	if i.f, err = os.CreateTemp(dir, "restore-*.dmbackup.partial"); err != nil {
		return kinded(ErrUnavailable, err, "spool the backup in %s: %v", dir, err)
	}
	i.spool = i.f.Name()
	return nil
}

// spoolDir is where an upload is kept until it is checked: the node's data
// directory (the dialer knows its layout), or the system's temporary one.
func (r *Runner) spoolDir() string {
	if d, ok := r.dialer.(interface {
		StreamDir(account, stream string) string
	}); ok {
		// <data>/jetstream/<account>/streams/<stream>
		return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(d.StreamDir(globalAccount, "x")))))
	}
	return os.TempDir()
}

// Conn is the import's own connection to the node: the API receives the
// client's chunks on it, so that they never queue up behind the API's
// replies.
func (i *Import) Conn() *nats.Conn { return i.nc }

// Write appends the next bytes of the backup file.
func (i *Import) Write(p []byte) (int, error) {
	if i.size+int64(len(p)) > i.want.Size {
		return 0, corrupt("the backup file is longer than the %d bytes announced", i.want.Size)
	}
	n, err := i.f.Write(p)
	i.hash.Write(p[:n])
	i.size += int64(n)
	if err != nil {
		return n, kinded(ErrUnavailable, err, "spool the backup: %v", err)
	}
	return n, nil
}

// Close removes the spooled file, closes the connections and ends the
// turn. Safe to call twice.
func (i *Import) Close() error {
	i.release.Do(func() {
		i.cancel()
		if i.f != nil {
			i.f.Close()
			os.Remove(i.spool)
		}
		for _, nc := range i.exports {
			nc.Close()
		}
		if i.nc != nil {
			i.nc.Close()
		}
		i.r.endTurn()
		i.r.wg.Done()
	})
	return nil
}

// Imported says what a restore into the running node restored.
type Imported struct {
	Manifest Manifest
	// Streams are the streams restored through JetStream's restore API
	// (export streams, then the log) with their state, which matches the
	// backup's.
	Streams []Stream
	// Keys are the keys written again in each bucket (by bucket name).
	Buckets []BucketKeys
	// Replicas of the restored streams.
	Replicas int
	SHA256   string
	Size     int64
}

// BucketKeys is how many keys a restore wrote into a bucket.
type BucketKeys struct {
	Bucket string
	Keys   int
}

// Finish checks the whole file, then restores it into the node: every
// check that can refuse comes before anything is written. ctx bounds the
// restore (a large log takes a while); the runner's Close ends it too.
func (i *Import) Finish(ctx context.Context) (*Imported, error) {
	defer context.AfterFunc(ctx, i.cancel)()
	if err := i.f.Close(); err != nil {
		return nil, kinded(ErrUnavailable, err, "spool the backup: %v", err)
	}
	i.f = nil
	defer os.Remove(i.spool)
	sum := hex.EncodeToString(i.hash.Sum(nil))
	if i.size != i.want.Size || sum != i.want.SHA256 {
		return nil, corrupt("received %d bytes with sha256 %s, the client announced %d with sha256 %s", i.size, sum, i.want.Size, i.want.SHA256)
	}
	c, err := checkFile(i.spool)
	if err != nil {
		return nil, err
	}
	p, err := i.plan(c)
	if err != nil {
		return nil, err
	}
	if p.buckets, err = readBuckets(i.ctx, i.spool, c, p, i.r.spoolDir(), i.r.log); err != nil {
		return nil, err
	}
	if err := i.checkLinkPeers(p); err != nil {
		return nil, err
	}
	res, err := i.restore(c, p)
	if err != nil {
		return nil, err
	}
	res.SHA256, res.Size = c.sha256, c.size
	return res, nil
}

// plan is what a checked backup restores: its streams by role.
type plan struct {
	manifest *Manifest
	// bucketStreams are the KV streams (links' first), exports the export
	// streams, log the event log's: each as the manifest lists it.
	bucketStreams []Stream
	exports       []Stream
	log           Stream
	// buckets are the keys and values of each bucket stream, in the order
	// its stream holds them (filled by readBuckets).
	buckets map[string][]entry
}

// plan checks that the backup is of this node and that the node is set up
// to hold it: the same name (the JetStream domain, and the origin of every
// exported event), the same log stream, every peer an export was granted
// to configured.
func (i *Import) plan(c *contents) (*plan, error) {
	m, cfg := c.manifest, i.r.cfg
	if m.Node != cfg.Node {
		return nil, kinded(ErrInvalid, nil, "the backup is of node %s and this node is %s: start the cluster with name %s", m.Node, cfg.Node, m.Node)
	}
	peers := map[string]bool{}
	for _, p := range cfg.Peers {
		peers[embed.ExportAccount(p)] = true
	}
	p := &plan{manifest: m}
	for _, s := range m.Streams {
		switch {
		case s.Account == globalAccount && s.Name == cfg.Log:
			p.log = s
		case s.Account == globalAccount && strings.HasPrefix(s.Name, kvStreamPrefix):
			p.bucketStreams = append(p.bucketStreams, s)
		case peers[s.Account]:
			p.exports = append(p.exports, s)
		case s.Account == globalAccount:
			return nil, corrupt("the backup holds stream %s, which is not one of a node's", s.Name)
		default:
			return nil, kinded(ErrInvalid, nil, "the backup holds export %s for account %s, whose peer this node does not configure: add the peer under peers (with the secret or nkey the standalone node had)", s.Name, s.Account)
		}
	}
	if p.log.Name == "" {
		return nil, kinded(ErrInvalid, nil, "the backup holds no stream %s: this node's log is %s; start the cluster with the standalone node's stream_name", cfg.Log, cfg.Log)
	}
	for _, want := range cfg.Buckets {
		found := false
		for _, s := range p.bucketStreams {
			found = found || s.Name == want
		}
		if !found {
			return nil, corrupt("the backup holds no bucket stream %s", want)
		}
	}
	return p, nil
}

// checkLinkPeers refuses links to peers the node does not configure: their
// workers could not connect, and the checkpoints would wait in vain.
func (i *Import) checkLinkPeers(p *plan) error {
	peers := map[string]bool{}
	for _, peer := range i.r.cfg.Peers {
		peers[peer] = true
	}
	for _, e := range p.buckets[registryStream(i.r.cfg)] {
		if !strings.HasPrefix(e.key, "link.") {
			continue
		}
		peer := linkPeer(e.value)
		if !peers[peer] {
			return kinded(ErrInvalid, nil, "the backup's link %s imports from peer %q, which this node does not configure: add it under peers (with the secret or nkey the standalone node had)",
				strings.TrimPrefix(e.key, "link."), peer)
		}
	}
	return nil
}

// registryStream is the registry bucket's stream: the last of Buckets.
func registryStream(cfg Config) string {
	if len(cfg.Buckets) == 0 {
		return ""
	}
	return cfg.Buckets[len(cfg.Buckets)-1]
}

// conn is the import's connection to account, opened on first use.
func (i *Import) conn(account string) (*nats.Conn, error) {
	if account == globalAccount {
		return i.nc, nil
	}
	if nc := i.exports[account]; nc != nil {
		return nc, nil
	}
	for _, peer := range i.r.cfg.Peers {
		if embed.ExportAccount(peer) == account {
			nc, err := i.r.dialer.ConnectExport(peer, nats.Name("datamesh-restore"))
			if err != nil {
				return nil, unavailable(err, "connect to account %s", account)
			}
			i.exports[account] = nc
			return nc, nil
		}
	}
	return nil, fmt.Errorf("account %s is no export account of this node", account)
}
