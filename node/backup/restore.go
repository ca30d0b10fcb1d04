package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// SHA256, if set, is the checksum the whole file must have (the one
	// `datamesh backup` printed).
	SHA256 string
	// Progress, if set, is told how many snapshot bytes of how many are
	// restored, after each chunk.
	Progress func(done, total int64)
}

// Restored says what Restore restored.
type Restored struct {
	Manifest Manifest
	// Streams are the restored streams with their state, which matches
	// the backup's.
	Streams []Stream
	// SHA256 and Size are the backup file's.
	SHA256 string
	Size   int64
}

// Restore creates a node's data directory dir from the backup in file. It
// refuses a dir that is not empty, and a file that is not a whole,
// unchanged backup (checked before anything is written). It runs a server
// of its own on dir, with no port open and the node's name as JetStream
// domain, restores every stream into its account through JetStream's
// restore API, checks each against the backup's state, and stops the
// server. Projections are not restored: the node rebuilds them from the
// log when it starts. On error, dir is left as empty as it was found.
func Restore(ctx context.Context, file, dir string, opts RestoreOptions, logger hclog.Logger) (*Restored, error) {
	if err := checkEmpty(dir); err != nil {
		return nil, err
	}
	c, err := checkFile(file)
	if err != nil {
		return nil, err
	}
	if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, c.sha256) {
		return nil, corrupt("backup %s has checksum %s, want %s", file, c.sha256, opts.SHA256)
	}
	created, err := prepareDir(dir)
	if err != nil {
		return nil, err
	}
	res, err := restoreAll(ctx, file, dir, c, opts, logger.Named("restore"))
	if err != nil {
		cleanDir(dir, created)
		return nil, err
	}
	res.SHA256, res.Size = c.sha256, c.size
	return res, nil
}

// checkEmpty refuses a dir that exists with something in it.
func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return kinded(ErrInvalid, err, "data directory %s: %v", dir, err)
	}
	if len(entries) > 0 {
		return kinded(ErrInvalid, nil, "data directory %s is not empty: restore creates a node's data, it does not merge into one", dir)
	}
	return nil
}

func checkFile(file string) (*contents, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, kinded(ErrInvalid, err, "backup: %v", err)
	}
	defer f.Close()
	c, err := check(f)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", file, err)
	}
	return c, nil
}

// prepareDir creates dir if need be (created: Restore made it).
func prepareDir(dir string) (created bool, err error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, kinded(ErrInvalid, err, "data directory: %v", err)
	}
	return created, nil
}

// cleanDir empties dir again after a failed restore (it was empty).
func cleanDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(path.Join(dir, e.Name()))
	}
}

func restoreAll(ctx context.Context, file, dir string, c *contents, opts RestoreOptions, log hclog.Logger) (*Restored, error) {
	m := c.manifest
	srv, conns, err := startRestoreServer(ctx, m, dir, log)
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
		srv.Close()
	}
	defer closeAll()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file is hashed again as it is restored: what is restored is what
	// check checked, even if the file changed in between.
	fileHash := sha256.New()
	hashed := io.TeeReader(f, fileHash)
	r := &restorer{tr: tar.NewReader(hashed), total: c.snapshotBytes, progress: opts.Progress}
	res := &Restored{Manifest: *m}
	for _, s := range m.Streams {
		if err := restoreOne(ctx, r, c, &s, conns[s.Account]); err != nil {
			return nil, err
		}
		res.Streams = append(res.Streams, s)
		log.Info("stream restored", "account", s.Account, "stream", s.Name, "messages", s.State.Messages, "last_seq", s.State.LastSeq)
	}
	if _, err := io.Copy(io.Discard, hashed); err != nil {
		return nil, corrupt("read: %v", err)
	}
	if sum := hex.EncodeToString(fileHash.Sum(nil)); sum != c.sha256 {
		return nil, corrupt("the backup file changed while it was restored (sha256 %s, checked %s)", sum, c.sha256)
	}
	// JetStream closes its files without an fsync at shutdown (and the
	// restore server does not sync writes): make the new directory durable
	// before saying it is restored.
	closeAll()
	if err := eventlog.SyncTree(dir); err != nil {
		return nil, fmt.Errorf("sync %s: %w", dir, err)
	}
	return res, nil
}

// startRestoreServer starts a server with no port on dir, with the
// manifest's accounts, and connects to each of them (by account name).
func startRestoreServer(ctx context.Context, m *Manifest, dir string, log hclog.Logger) (*embed.Server, map[string]*nats.Conn, error) {
	cfg := embed.Config{Name: m.Node, DataDir: dir, NoListen: true, LogLevel: hclog.Warn,
		ExportSubjects: meshlink.ExportSubjectPrefix + ".>"}
	for _, a := range m.Accounts {
		if a.Peer != "" {
			// The peer's leafnode user is not used: no port is open.
			cfg.Peers = append(cfg.Peers, embed.Peer{Name: a.Peer, Secret: nuid.Next()})
		}
	}
	srv, err := embed.New(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	conns := map[string]*nats.Conn{}
	if err := srv.Start(ctx); err != nil {
		return srv, conns, fmt.Errorf("start a server on %s: %w", dir, err)
	}
	for _, a := range m.Accounts {
		var nc *nats.Conn
		if a.Peer == "" {
			nc, err = srv.Connect(nats.Name("datamesh-restore"))
		} else {
			nc, err = srv.ConnectExport(a.Peer, nats.Name("datamesh-restore"))
		}
		if err != nil {
			return srv, conns, fmt.Errorf("connect to account %s: %w", a.Name, err)
		}
		conns[a.Name] = nc
	}
	return srv, conns, nil
}

// restoreOne restores stream s through nc (its account's connection) and
// checks that it holds what the backup recorded; s.State gets its state.
func restoreOne(ctx context.Context, r *restorer, c *contents, s *Stream, nc *nats.Conn) error {
	return restoreAs(ctx, r, c, s, nc, nil)
}

// restoreAs is restoreOne with the stream's config given (nil: the
// backup's): JetStream takes it as the restored stream's identity.
func restoreAs(ctx context.Context, r *restorer, c *contents, s *Stream, nc *nats.Conn, config json.RawMessage) error {
	if nc == nil {
		return corrupt("stream %s is in account %s, which the manifest does not list", s.Name, s.Account)
	}
	rec := c.records[streamDir(s.Account, s.Name)]
	if config != nil {
		rec.Config = config
	}
	want, err := rec.state()
	if err != nil {
		return corrupt("%s: state: %v", streamDir(s.Account, s.Name), err)
	}
	got, err := restoreStream(ctx, nc, rec, s.Name, func(send func([]byte) error) error {
		return r.chunks(streamDir(s.Account, s.Name), send)
	})
	if err != nil {
		return err
	}
	// An empty stream's first seq is 0 or last+1, depending on who says.
	if got.Messages != want.Messages || got.LastSeq != want.LastSeq || (want.Messages > 0 && got.FirstSeq != want.FirstSeq) {
		return fmt.Errorf("restored %s holds %d messages (seq %d..%d), the backup %d (seq %d..%d)",
			s.Name, got.Messages, got.FirstSeq, got.LastSeq, want.Messages, want.FirstSeq, want.LastSeq)
	}
	s.State = got
	return nil
}

// restorer reads the archive a second time, stream after stream (check
// has checked its layout and checksums).
type restorer struct {
	tr       *tar.Reader
	done     int64
	total    int64
	progress func(done, total int64)
	// pending is an entry read past the end of the previous stream.
	pending *tar.Header
}

// chunks sends every snapshot chunk of the stream in dir.
func (r *restorer) chunks(dir string, send func([]byte) error) error {
	for {
		hdr := r.pending
		r.pending = nil
		if hdr == nil {
			var err error
			if hdr, err = r.tr.Next(); err != nil {
				return fmt.Errorf("read the backup: %w", err)
			}
		}
		switch {
		case hdr.Name == manifestName || hdr.Name == path.Join(dir, streamFile):
			continue
		case path.Dir(hdr.Name) != dir || !strings.HasPrefix(path.Base(hdr.Name), snapshotFile+"."):
			r.pending = hdr // the next stream's
			return nil
		}
		b, err := io.ReadAll(r.tr)
		if err != nil {
			return fmt.Errorf("read the backup: %w", err)
		}
		if err := send(b); err != nil {
			return err
		}
		r.done += int64(len(b))
		if r.progress != nil {
			r.progress(r.done, r.total)
		}
	}
}
