package backup

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/embed"
)

const (
	// globalAccount is the node's own account: log, registry, links.
	globalAccount = "$G"
	// kvStreamPrefix starts the streams of KV buckets.
	kvStreamPrefix = "KV_"
	// maxAttempts bounds the snapshots of one stream that a backup takes
	// until one is consistent (see Job.snapshotStream).
	maxAttempts = 50
	// retryPause is the pause between two attempts: a batch commit or a
	// checkpoint write under way ends within it.
	retryPause = 20 * time.Millisecond
)

// testHookBucketRead, set by tests only, runs between reading a bucket's
// snapshot and checking that the bucket did not change meanwhile.
var testHookBucketRead func(stream string)

// Config is what backups need of the node's configuration.
type Config struct {
	// Node is the node's name (its JetStream domain); Version DataMesh's.
	Node    string
	Version string
	// Log is the event log's stream (EVENTS).
	Log string
	// Buckets are the streams of the KV buckets, links' first
	// (KV_datamesh_links, KV_datamesh_registry): see Runner.
	Buckets []string
	// Peers are the configured peers: each has an export account.
	Peers []string
}

// Dialer opens in-process connections to the node's server; embed.Server
// implements it.
type Dialer interface {
	// Connect signs in with the node's own rights, in its own account.
	Connect(opts ...nats.Option) (*nats.Conn, error)
	// ConnectExport signs in to the account of the exports granted to peer.
	ConnectExport(peer string, opts ...nats.Option) (*nats.Conn, error)
}

var _ Dialer = (*embed.Server)(nil)

// Runner takes backups of the running node, one at a time.
//
// A backup is consistent across streams because of the order it takes
// their snapshots in; each snapshot is a point in time of its stream, and
// the streams keep changing in between:
//
//  1. the link checkpoints and dead letters (KV_datamesh_links) first;
//  2. the registry (KV_datamesh_registry);
//  3. the export streams;
//  4. the event log last.
//
// So the restored log is at or past everything the other streams point
// into it. A link's checkpoint names the last seq it appended to this log:
// the log was snapshotted later, so it holds that seq, and the events the
// link appended after its checkpoint too, which the link's recovery finds
// in the log and skips (meshlink/checkpoint.go): a restored link resumes
// without importing anything twice. Taken the other way round, a
// checkpoint could point past the restored log, and the link would never
// import the events in between. An export stream holds copies of log
// events (Dm-Origin-Seq); snapshotted before the log, it never holds a copy
// of an event the restored log lacks, so its worker resumes after its last
// copy and finds the events it has not copied yet. Export streams must be
// in the backup: the peers' link checkpoints count their seqs.
//
// A snapshot is a point in time only if nothing is removed from the stream
// while it is read (JetStream reads the messages up to the stream's last
// seq when the snapshot started). The log and the export streams never
// remove a message; a KV bucket removes a key's previous value when the
// key is written again. So a bucket's snapshot is kept in memory (buckets
// are small) and taken again if the bucket was written during it. And a
// snapshot may end inside an atomic batch that is being committed (group
// commit, a link's imports): it is taken again then, so the restored log
// holds whole batches only.
type Runner struct {
	cfg    Config
	dialer Dialer
	log    hclog.Logger

	// mu guards busy and the start of a job against Close.
	mu     sync.Mutex
	busy   bool
	closed bool
	// ctx ends at Close: a backup under way stops then.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a runner; Start readies it.
func New(cfg Config, dialer Dialer, logger hclog.Logger) *Runner {
	return &Runner{cfg: cfg, dialer: dialer, log: logger.Named("backup")}
}

// Start readies the runner; backups run in the callers' goroutines.
func (r *Runner) Start(ctx context.Context) error {
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return nil
}

// Close stops the backup under way and waits until its Job is closed.
// Safe to call twice.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
	})
	return nil
}

// takeTurn makes the caller the runner's one backup or restore, until
// endTurn; busy is the refusal's message (with the node's name) when
// another holds the turn. Close waits for every turn taken (wg).
func (r *Runner) takeTurn(busy string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.ctx == nil || r.closed:
		return kinded(ErrUnavailable, nil, "the node is shutting down")
	case r.busy:
		return kinded(ErrBusy, nil, busy, r.cfg.Node)
	}
	r.busy = true
	r.wg.Add(1)
	return nil
}

// endTurn lets the next backup or restore start.
func (r *Runner) endTurn() {
	r.mu.Lock()
	r.busy = false
	r.mu.Unlock()
}

// Job is one backup: Prepare lists what it will hold, WriteTo writes it,
// Close releases it (and lets the next backup start).
type Job struct {
	r        *Runner
	ctx      context.Context
	cancel   context.CancelFunc
	nc       *nats.Conn
	exports  map[string]*nats.Conn // by account
	manifest Manifest
	turn     sync.Once // ends the backup's turn
	release  sync.Once // closes the job
}

// Prepare starts a backup: it opens the connections it reads with and
// lists the streams and their state at this moment (the manifest). It
// returns ErrBusy while another backup is under way.
func (r *Runner) Prepare(ctx context.Context) (*Job, error) {
	if err := r.takeTurn("a backup of node %s is under way; one runs at a time"); err != nil {
		return nil, err
	}
	j := &Job{r: r, exports: map[string]*nats.Conn{}}
	j.ctx, j.cancel = context.WithCancel(r.ctx)
	if err := j.prepare(ctx); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

func (j *Job) prepare(ctx context.Context) error {
	cfg := j.r.cfg
	var err error
	if j.nc, err = j.r.dialer.Connect(nats.Name("datamesh-backup")); err != nil {
		return unavailable(err, "connect to the node")
	}
	j.manifest = Manifest{Format: Format, Node: cfg.Node, Version: cfg.Version, Created: time.Now().UTC(),
		Accounts: []Account{{Name: globalAccount}}}
	for _, name := range cfg.Buckets {
		if err := j.list(ctx, j.nc, globalAccount, name); err != nil {
			return err
		}
	}
	for _, peer := range cfg.Peers {
		account := embed.ExportAccount(peer)
		nc, err := j.r.dialer.ConnectExport(peer, nats.Name("datamesh-backup"))
		if err != nil {
			return unavailable(err, "connect to account %s", account)
		}
		j.exports[account] = nc
		j.manifest.Accounts = append(j.manifest.Accounts, Account{Name: account, Peer: peer})
		names, err := streamNames(ctx, nc)
		if err != nil {
			return unavailable(err, "list the streams of account %s", account)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := j.list(ctx, nc, account, name); err != nil {
				return err
			}
		}
	}
	return j.list(ctx, j.nc, globalAccount, cfg.Log)
}

func (j *Job) list(ctx context.Context, nc *nats.Conn, account, name string) error {
	info, err := getStreamInfo(ctx, nc, name)
	if err != nil {
		return unavailable(err, "%s in account %s", name, account)
	}
	j.manifest.Streams = append(j.manifest.Streams, Stream{Account: account, Name: name, Config: info.Config, State: info.State})
	return nil
}

// Manifest is what the backup will hold, as listed by Prepare.
func (j *Job) Manifest() Manifest { return j.manifest }

// Conn is the job's own connection to the node. The API sends the backup
// to its client on it too, so that a backup never queues up in front of
// the API's replies on the node's connection.
func (j *Job) Conn() *nats.Conn { return j.nc }

// EndTurn lets the next backup start while this job still holds its
// connections: the API calls it once the backup is written and before it
// tells its client so, so that a client that asks again at once is not
// refused. Close calls it too. Safe to call twice.
func (j *Job) EndTurn() {
	j.turn.Do(j.r.endTurn)
}

// Close closes the job's connections and ends the backup's turn. Safe to
// call twice.
func (j *Job) Close() error {
	j.release.Do(func() {
		j.cancel()
		for _, nc := range j.exports {
			nc.Close()
		}
		if j.nc != nil {
			j.nc.Close()
		}
		j.EndTurn()
		j.r.wg.Done()
	})
	return nil
}

// WriteTo writes the backup to w and returns the state of every stream as
// snapshotted, in the manifest's order. It stops when ctx ends or the
// runner closes.
func (j *Job) WriteTo(ctx context.Context, w io.Writer) ([]Stream, error) {
	defer context.AfterFunc(ctx, j.cancel)()
	start := time.Now()
	aw := newArchiveWriter(w, j.manifest.Created)
	if err := aw.file(manifestName, j.manifest); err != nil {
		return nil, j.failed(err, "write the manifest")
	}
	var taken []Stream
	for _, s := range j.manifest.Streams {
		st, err := j.snapshotStream(aw, s)
		if err != nil {
			return nil, j.failed(err, "stream %s of account %s", s.Name, s.Account)
		}
		s.State = st
		taken = append(taken, s)
	}
	if err := aw.close(); err != nil {
		return nil, j.failed(err, "end the archive")
	}
	j.r.log.Info("backup written", "streams", len(taken), "took", time.Since(start).Round(time.Millisecond))
	return taken, nil
}

// failed says what failed; an error caused by the end of the job's
// context says the node (or the client) went away.
func (j *Job) failed(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if j.ctx.Err() != nil {
		return kinded(ErrUnavailable, err, "backup stopped: the node is shutting down (%s)", msg)
	}
	return fmt.Errorf("backup: %s: %w", msg, err)
}

func (j *Job) conn(account string) *nats.Conn {
	if account == globalAccount {
		return j.nc
	}
	return j.exports[account]
}

// snapshotStream writes one stream's snapshot, taken again until it is
// consistent (see Runner).
func (j *Job) snapshotStream(aw *archiveWriter, s Stream) (State, error) {
	nc := j.conn(s.Account)
	for attempt := 1; ; attempt++ {
		snap, err := startSnapshot(j.ctx, nc, s.Name)
		if err != nil {
			return State{}, err
		}
		done, err := j.take(aw, nc, s, snap)
		if err != nil {
			return State{}, err
		}
		if done {
			return snap.state, nil
		}
		if attempt == maxAttempts {
			return State{}, fmt.Errorf("no consistent snapshot in %d attempts: the stream changed during each", attempt)
		}
		j.r.log.Debug("snapshot taken again", "stream", s.Name, "attempt", attempt)
		select {
		case <-j.ctx.Done():
			return State{}, j.ctx.Err()
		case <-time.After(retryPause):
		}
	}
}

// take writes snap unless it ends inside an atomic batch, or, for a
// bucket, the bucket was written while it was read (done false: take
// another). A bucket's snapshot is kept in memory until then; any other
// goes to the archive as JetStream sends it.
func (j *Job) take(aw *archiveWriter, nc *nats.Conn, s Stream, snap *snapshot) (done bool, err error) {
	defer snap.abandon()
	mid, err := midBatch(j.ctx, nc, s.Name, snap.state.LastSeq)
	if err != nil || mid {
		return false, err
	}
	rec := StreamRecord{Config: snap.Config, State: snap.State}
	if !strings.HasPrefix(s.Name, kvStreamPrefix) {
		if err := aw.beginStream(s.Account, s.Name, rec); err != nil {
			return false, err
		}
		if err := j.receive(snap, aw.writeChunk); err != nil {
			return false, err
		}
		aw.endStream()
		return true, nil
	}
	var chunks [][]byte
	if err := j.receive(snap, func(b []byte) error { chunks = append(chunks, b); return nil }); err != nil {
		return false, err
	}
	if testHookBucketRead != nil {
		testHookBucketRead(s.Name)
	}
	info, err := getStreamInfo(j.ctx, nc, s.Name)
	if err != nil || info.State.LastSeq != snap.state.LastSeq {
		return false, err
	}
	if err := aw.beginStream(s.Account, s.Name, rec); err != nil {
		return false, err
	}
	for _, c := range chunks {
		if err := aw.writeChunk(c); err != nil {
			return false, err
		}
	}
	aw.endStream()
	return true, nil
}

// receive hands each chunk of snap to write and then acks it, so a slow
// reader of the backup slows JetStream down.
func (j *Job) receive(snap *snapshot, write func([]byte) error) error {
	for {
		m, err := snap.next(j.ctx)
		if err != nil || m == nil {
			return err
		}
		if err := write(m.Data); err != nil {
			return err
		}
		if err := ack(m); err != nil {
			return err
		}
	}
}

func unavailable(cause error, format string, args ...any) error {
	return kinded(ErrUnavailable, cause, "%s: %v", fmt.Sprintf(format, args...), cause)
}
