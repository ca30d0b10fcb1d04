package projection

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tidwall/buntdb"
)

// compactMinBytes is the file size below which a file is not worth
// compacting, at live or in the background.
const compactMinBytes = 1 << 20

// BuntDB's file is a log of every write: each batch rewrites the records of
// the documents it changed (and their history records), so a rebuild
// leaves a file several times the size of what it holds. BuntDB shrinks
// it by itself only past 32 MB and twice the size it had at the last
// shrink (or the live data's at open). A store compacts its file once a
// rebuild catches up, before the version turns live, and from then on
// lets BuntDB shrink it in the background from compactMinBytes.

// settle is called as the worker catches up with the log, before it turns
// live: it compacts the file if it grew to twice its size at open (or at
// the last compaction), a rebuild or a long catch-up, and from then on
// lets BuntDB shrink it in the background. A file that did not grow, such
// as one reopened at the head, is not touched.
func (s *Store) settle() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if size := fi.Size(); size >= compactMinBytes && size >= 2*s.compacted {
		if err := s.compact(); err != nil {
			return err
		}
	}
	var cfg buntdb.Config
	if err := s.db.ReadConfig(&cfg); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	cfg.AutoShrinkMinSize = compactMinBytes
	if err := s.db.SetConfig(cfg); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// compact rewrites the file with the records it holds, then syncs it:
// BuntDB renames the rewritten file over the old one without syncing it
// first, so a power cut right after a compaction can still lose it (as
// after one of BuntDB's own shrinks); a process crash cannot.
func (s *Store) compact() error {
	if err := s.db.Shrink(); err != nil && !errors.Is(err, buntdb.ErrShrinkInProcess) {
		return fmt.Errorf("compact: %w", err)
	}
	for _, p := range []string{s.path, filepath.Dir(s.path)} {
		if err := syncPath(p); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
	}
	if fi, err := os.Stat(s.path); err == nil {
		s.compacted = fi.Size()
	}
	return nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
