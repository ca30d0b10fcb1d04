package eventlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// StreamFiles makes the writes of one file-stored, one-replica JetStream
// stream durable, for a server that runs without sync_always (the node
// owns the fsync in fsync mode: docs/performance.md, "Group commit").
//
// It relies on two facts of nats-server's file store, checked by
// TestFileStoreLayoutAndFlushInPlace: a stream's messages live in
// <stream dir>/msgs/<n>.blk, n counting up from 1 as blocks fill; and a
// one-replica stream writes each message into its block file (to the OS)
// before it acknowledges it. So once a write is acknowledged, an fsync of
// its block file (and of the msgs directory, for a block created since the
// last fsync) makes it survive a power loss.
type StreamFiles struct {
	dir string // the stream's directory

	// mu: fsyncs of the open block run under its read lock, so that
	// several run at once (Durable's workers); opening and moving to a new
	// block take the write lock.
	mu      sync.RWMutex
	fd      *os.File // the last block, kept open
	blk     uint64   // its number
	treeSet bool     // the whole tree was synced once
}

// NewStreamFiles returns the syncer of the stream whose files are in dir
// (embed.Server.StreamDir).
func NewStreamFiles(dir string) *StreamFiles { return &StreamFiles{dir: dir} }

// Sync makes every write the stream acknowledged before the call durable.
// Calls may overlap: the file system then commits them together.
func (s *StreamFiles) Sync() error {
	s.mu.RLock()
	if s.fd != nil && !s.sealed() {
		err := s.fd.Sync()
		s.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", s.fd.Name(), err)
		}
		return nil
	}
	s.mu.RUnlock()
	return s.syncSwitching()
}

// sealed reports whether the open block has a successor (or whether that
// could not be told).
func (s *StreamFiles) sealed() bool {
	_, err := os.Stat(s.blockPath(s.blk + 1))
	return !errors.Is(err, fs.ErrNotExist)
}

// syncSwitching is Sync when there is no block open yet or the open one
// is sealed: it opens the last one, syncing those it leaves behind.
func (s *StreamFiles) syncSwitching() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.treeSet {
		// The stream's metadata (meta.inf, written without an fsync when
		// sync_always is off) and the directories above it.
		if err := SyncTree(s.dir); err != nil {
			return err
		}
		s.treeSet = true
	}
	if s.fd == nil {
		n, err := lastBlock(s.msgs())
		if err != nil || n == 0 {
			return err // no block yet: nothing written, and the tree is synced
		}
		if err := s.open(n); err != nil {
			return err
		}
	}
	newBlock := false
	for {
		// A block that follows the open one was created after the open one
		// was sealed: sync the sealed one for the last time, move on.
		if _, err := os.Stat(s.blockPath(s.blk + 1)); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return err
		}
		if err := s.fd.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", s.fd.Name(), err)
		}
		s.fd.Close()
		if err := s.open(s.blk + 1); err != nil {
			return err
		}
		newBlock = true
	}
	if err := s.fd.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.fd.Name(), err)
	}
	if newBlock {
		return syncDir(s.msgs())
	}
	return nil
}

// Close releases the open block file.
func (s *StreamFiles) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd == nil {
		return nil
	}
	err := s.fd.Close()
	s.fd = nil
	return err
}

func (s *StreamFiles) msgs() string { return filepath.Join(s.dir, "msgs") }

func (s *StreamFiles) blockPath(n uint64) string {
	return filepath.Join(s.msgs(), strconv.FormatUint(n, 10)+".blk")
}

func (s *StreamFiles) open(n uint64) error {
	fd, err := os.Open(s.blockPath(n))
	if err != nil {
		return err
	}
	s.fd, s.blk = fd, n
	return nil
}

// lastBlock returns the highest block number in dir (0: none).
func lastBlock(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	var last uint64
	for _, e := range entries {
		if n, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".blk"), 10, 64); err == nil && strings.HasSuffix(e.Name(), ".blk") {
			last = max(last, n)
		}
	}
	return last, nil
}

// SyncTree fsyncs every file and directory under dir, then dir's parents
// up to the file system's root (so that dir itself is found after a power
// loss). Used once per stream, and after writes that nats-server does not
// sync when sync_always is off (a new stream, a restore).
func SyncTree(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(path)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return syncFile(path)
	})
	if err != nil {
		return err
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if err := syncDir(p); err != nil {
			return err
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed while we walked: nats-server replaced it
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

func syncDir(path string) error { return syncFile(path) }

// SyncFiles fsyncs every file of a stream's directory (its blocks, index
// and metadata) and its msgs directory: for small streams whose blocks
// are rewritten (a KV bucket's), where following the last block is not
// enough.
func SyncFiles(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, "msgs")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				if err := syncFile(filepath.Join(d, e.Name())); err != nil {
					return err
				}
			}
		}
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}
